"""Hyper-parameter search with Optuna: what ``ltr tune`` runs.

The experiment YAML declares the search in its ``tune`` section (:class:`ltr.config.TuneConfig`):
dotted config fields mapped to dimensions (log-uniform learning rate, hidden-layer choices,
dropout, loss parameters, batch size). Each trial is one ordinary training run
(:func:`ltr.training.run_experiment`) of the YAML with the trial's values set; its objective is
the validation ``tune.metric`` of its best epoch (higher is better).

- **Pruning.** A small tracker reports every epoch's validation value to Optuna; when the
  pruner (``median`` or ``hyperband``) gives up on the trial, it raises
  :class:`~ltr.experiments.tracking.RunStopped`, which ends the training run (the MLflow run is
  marked KILLED) and the trial counts as PRUNED.
- **Storage.** Default ``sqlite:///<tracking.output_dir>/optuna.db`` (absolute path), so
  several ``ltr tune`` processes on one machine share a study: start the same command in two
  shells. Across machines give every worker one PostgreSQL URL
  (``--storage postgresql://user:pass@db:5432/optuna``, needs a driver such as ``psycopg``).
  ``--study`` defaults to ``experiment.name``; an existing study is joined, so an interrupted
  study resumes where it stopped (trials of a killed process stay RUNNING and are marked FAILED
  after a heartbeat grace period of :data:`GRACE_PERIOD_SECONDS`).
- **N.** ``--trials N`` is the study's total of finished trials (COMPLETE or PRUNED), over every
  process and every earlier session: a study with 3 finished trials run with ``--trials 5`` runs
  2 more; with 5 it runs none. Workers sharing a study stop starting trials once N have
  finished, so parallel workers may overshoot by at most one running trial each. Failed trials
  (a diverging run, a bad value) do not count.
- **Stopping.** Ctrl-C or SIGTERM (through the CLI) stops each running trial at its next
  training batch, in every ``n_jobs`` thread, never inside Optuna's or MLflow's bookkeeping: a
  trial past its last batch finishes, and no new one starts. Optuna marks a stopped trial FAIL
  (it has no state for a trial stopped on purpose), its MLflow run and the parent are KILLED,
  the outputs below are written, and the interruption's note (the CLI's closing line) names
  the study, its storage, the finished trials, the best so far and the trials stopped.
- **MLflow.** With ``tracking.mlflow`` on, the study has one parent run (named
  ``study-<study>``, created by the process that created the study, its id kept in the study's
  user attributes) and every trial's run is its child (tag ``mlflow.parentRunId``).
- **Outputs** in ``<tracking.output_dir>/tune-<study>/``, rewritten when each process ends:
  ``best_config.yaml`` (the YAML with the best trial's values, without ``tune``, ready for
  ``ltr train --config``), ``trials.csv`` and ``trials.json`` (every trial: state, value,
  values, run directory of every trial that got one, last epoch reported, the error of a failed
  one, ``stopped by SIGINT`` for a stopped one),
  ``optimization_history.png`` and ``param_importances.png`` (needs two completed trials whose
  values differ). The trials' run
  directories are under ``trials/`` there. The parent MLflow run gets the same files.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import logging
import math
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.text import Text

from ltr._extras import require_extra
from ltr._fs import atomic_path, atomic_write_json, atomic_write_text
from ltr._signals import (
    Interrupted,
    deferred_interrupts,
    last_interruption,
    raise_if_interrupted,
)
from ltr.config import ExperimentConfig, SearchDimension, TuneConfig, dotted_items, load_config
from ltr.errors import ConfigError, LtrError
from ltr.experiments.mlflow_tracker import MLflowTracker, mlflow_available, resolve_tracking_uri
from ltr.experiments.tracking import RunStopped

with require_extra("tune"):
    import optuna

__all__ = [
    "GRACE_PERIOD_SECONDS",
    "TuneResult",
    "default_storage",
    "fixed_config",
    "run_study",
    "trial_config",
]

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 30
GRACE_PERIOD_SECONDS = 120  # a RUNNING trial silent this long belongs to a dead process
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
PARENT_ATTR = "mlflow_parent"  # study user attribute: {"tracking_uri", "run_id"}
FIXED_ATTR = "fixed_config"  # study user attribute: {dotted field: value} trials share
# where outputs go and what runs them, not what a trial learns: workers may differ in these
_UNFIXED = ("tracking", "training.device")


@dataclass(frozen=True)
class TuneResult:
    """How a study stands when this process's share of it ends.

    Attributes:
        study: the study's name.
        out_dir: ``<tracking.output_dir>/tune-<study>``.
        n_complete: trials completed in the study (every process).
        n_pruned: trials pruned in the study.
        best_trial: number of the best completed trial (None without one).
        best_value: its objective.
        best_config: path of ``best_config.yaml`` (None without a completed trial).
        n_ended_here: trials this process ran to their end (finished or failed).
        n_finished_here: those of them that finished (COMPLETE or PRUNED).
        first_failure: ``trial N: <error>`` of the first trial this process saw fail.
        timed_out: ``timeout_seconds`` ended the search before the study had ``trials``.
    """

    study: str
    out_dir: Path
    n_complete: int
    n_pruned: int
    best_trial: int | None
    best_value: float | None
    best_config: Path | None
    n_ended_here: int = 0
    n_finished_here: int = 0
    first_failure: str | None = None
    timed_out: bool = False


class TrialPruned(RunStopped, optuna.TrialPruned):
    """Ends the training run (a :class:`RunStopped`) and tells Optuna the trial was pruned."""


def default_storage(output_dir: str | Path) -> str:
    """``sqlite:///<output_dir>/optuna.db`` with an absolute path (the folder is created)."""
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(Path(output_dir) / 'optuna.db').resolve()}"


def run_study(
    config: ExperimentConfig,
    *,
    trials: int,
    storage: str | None = None,
    study_name: str | None = None,
    n_jobs: int = 1,
    timeout_seconds: float | None = None,
    quiet: bool = False,
) -> TuneResult:
    """Run (or join, or resume) the Optuna study of ``config.tune`` until it has ``trials``.

    Args:
        config: the experiment with a ``tune`` section.
        trials: the study's total of finished trials to reach (see the module docstring).
        storage: an Optuna RDB URL; default :func:`default_storage` of ``tracking.output_dir``.
        study_name: default ``experiment.name``.
        n_jobs: trials run side by side in threads of this process. They share torch's
            random generator, so above 1 a trial's result depends on the trials beside it;
            separate processes sharing ``storage`` are the reproducible way to parallelize.
            Each trial's ``train.log`` holds its own lines.
        timeout_seconds: start no trial after this many seconds.
        quiet: no per-trial lines.

    Raises:
        ConfigError: no ``tune`` section, a value of the space the config refuses, a
            ``tune.metric`` that validation does not compute, or an existing study of that
            name run with other fixed settings (data, epochs, ...: see :func:`fixed_config`).
    """
    tune = _check_tune(config)
    # trials, the study's fixed settings and best_config.yaml name the data from any folder
    config = config.model_copy(update={"data": config.data.absolute()})
    metric = tune.metric or config.training.early_stopping_metric
    name = study_name or config.experiment.name
    out_dir = Path(config.tracking.output_dir) / f"tune-{name}"
    storage = storage or default_storage(config.tracking.output_dir)
    console = Console(stderr=True, quiet=quiet, soft_wrap=True, markup=False)
    study, created = _open_study(storage, name, tune, config.training.num_epochs)
    _check_fixed_config(study, fixed_config(config), storage)
    parent = _parent_run(study, created, config, storage)
    done = _count(study, FINISHED)
    where = f"Study {name!r} in {_safe_url(storage)}"
    if done >= trials:  # '5 of 3 trials finished' would read as a miscount
        console.print(
            f"{where} already has {done} finished trials (>= --trials {trials}); nothing to run",
            highlight=False,
        )
    else:
        console.print(f"{where}: {done} of {trials} trials finished", highlight=False)
    stopped: list[int] = []  # trials a stop ended, in this process
    ended: list[optuna.trial.FrozenTrial] = []  # trials this process ran to their end
    explained: list[int] = []  # failed trials whose reason the per-trial line or the note gives
    error: BaseException | None = None
    started = time.monotonic()
    try:
        # a stop waits for a safe point: a trial's next batch (in every thread), the end of a
        # trial or of the search; Optuna's bookkeeping is never cut, so no trial stays RUNNING
        with deferred_interrupts(), _quiet_failed_trials(explained):
            study.optimize(
                _objective(config, metric, out_dir, parent, name, stopped, explained),
                n_trials=max(trials - done, 0),
                timeout=timeout_seconds,
                n_jobs=n_jobs,
                catch=(LtrError,),  # one diverging trial must not end the search
                callbacks=[
                    optuna.study.MaxTrialsCallback(trials, states=FINISHED),
                    _progress(console, metric),
                    lambda _, trial: ended.append(trial),
                    _stop_when_interrupted,
                ],
            )
    except BaseException as caught:
        error = caught
    try:
        with deferred_interrupts():  # the outputs and the parent MLflow run end whole
            result = _finish(study, config, metric, out_dir, parent, error)
        if error is not None:
            raise error
        failed = [t for t in ended if t.state == optuna.trial.TrialState.FAIL]
        result = dataclasses.replace(
            result,
            n_ended_here=len(ended),
            n_finished_here=sum(t.state in FINISHED for t in ended),
            first_failure=None if not failed else f"trial {failed[0].number}: {_why(failed[0])}",
            timed_out=timeout_seconds is not None
            and time.monotonic() - started >= timeout_seconds
            and result.n_complete + result.n_pruned < trials,
        )
    except KeyboardInterrupt as stop:  # replaces the stopped trials' resume hints
        stop.__notes__ = [_stopped_note(study, storage, trials, metric, stopped)]
        raise
    return result


def trial_config(
    config: ExperimentConfig, values: Mapping[str, Any], *, output_dir: Path | None = None
) -> ExperimentConfig:
    """``config`` with each dotted field of ``values`` set, validated, without ``tune``.

    Raises:
        ConfigError: ``<dotted.field>: <problem>`` when a value is refused.
    """
    raw = config.resolved()
    for key, value in values.items():
        _set_dotted(raw, key, value)
    raw["tune"] = None
    if output_dir is not None:
        raw["tracking"]["output_dir"] = str(output_dir)
    return load_config(base=raw)


def fixed_config(config: ExperimentConfig) -> dict[str, Any]:
    """What every trial of the study shares: the config as ``{dotted field: value}``.

    Everything but the searched fields (``tune.space``), the outputs (``tracking``) and the
    device; a study resumed or joined with other values would rank trials that trained on other
    data or settings side by side. Data paths are absolute: ``syn`` means another folder in
    another working directory.
    """
    assert config.tune is not None
    searched = tuple(config.tune.space)
    config = config.model_copy(update={"data": config.data.absolute()})
    flat = dotted_items(json.loads(json.dumps(config.resolved(), default=str)))
    return {
        key: value
        for key, value in flat.items()
        if not any(key == k or key.startswith(f"{k}.") for k in (*searched, *_UNFIXED))
        and not key.startswith("tune.space.")  # the space is in the study's trials
    }


def _check_fixed_config(study: optuna.Study, fixed: dict[str, Any], storage: str) -> None:
    """Record the study's fixed config on first use; refuse to continue it with another."""
    from ltr.training.experiment import same_paths  # training imports experiments

    recorded = study.user_attrs.get(FIXED_ATTR)
    if recorded is None:  # a new study, or one from before fingerprints
        study.set_user_attr(FIXED_ATTR, fixed)
        return
    # a study recorded before data paths were absolute holds them relative to where it ran
    before, now = same_paths(recorded), same_paths(fixed)
    differ = sorted(key for key in {*before, *now} if before.get(key) != now.get(key))
    if differ:
        shown = ", ".join(
            f"{key} ({fixed.get(key)!r} here, {recorded.get(key)!r} in the study)"
            for key in differ[:5]
        )
        more = f" and {len(differ) - 5} more" if len(differ) > 5 else ""
        raise ConfigError(
            f"study {study.study_name!r} in {_safe_url(storage)} ran with other fixed settings: "
            f"{shown}{more}; give another --study name, or the study's settings back"
        )


# --------------------------------------------------------------------------------------------
# The study, its objective and its pruning reporter
# --------------------------------------------------------------------------------------------


def _check_tune(config: ExperimentConfig) -> TuneConfig:
    """Fail before any trial: no section, a bound or choice the config refuses, a bad metric."""
    if config.tune is None:
        raise ConfigError(
            "the config has no tune section; see configs/experiments/tune_lambdarank.yaml"
        )
    metric = config.tune.metric or config.training.early_stopping_metric
    computed = [*config.evaluation.metrics, config.training.early_stopping_metric]
    if metric not in computed:
        raise ConfigError(
            f"tune.metric: {metric} is not computed on validation; add it to "
            f"evaluation.metrics (now {', '.join(config.evaluation.metrics)})"
        )
    for key, dimension in config.tune.space.items():
        _check_searchable(key)
        for value in _extremes(dimension):
            try:
                trial_config(config, {key: value})
            except ConfigError as error:
                message = f"tune.space[{key}]: the value {value!r} is refused: {error}"
                raise ConfigError(message) from None
    return config.tune


def _check_searchable(key: str) -> None:
    """Refuse a space key that :func:`trial_config` overrides: searching it would vary nothing
    while the trial lines show the drawn values."""
    if key == "tune" or key.startswith("tune."):
        raise ConfigError(
            f"tune.space[{key}]: trials run without the tune section, so searching it varies "
            "nothing; search a field outside tune"
        )
    if key == "tracking.output_dir":
        raise ConfigError(
            f"tune.space[{key}]: every trial writes under the study's trials folder, so "
            "searching tracking.output_dir varies nothing"
        )


def _extremes(dimension: SearchDimension) -> list[Any]:
    if dimension.type == "categorical":
        return list(dimension.choices or [])
    low, high = dimension.low, dimension.high
    return [int(v) for v in (low, high)] if dimension.type == "int" else [low, high]  # type: ignore[arg-type]


def _open_study(
    url: str, name: str, tune: TuneConfig, num_epochs: int
) -> tuple[optuna.Study, bool]:
    """Create the study, or load it when it exists; True when this process created it."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # ltr prints one line per trial
    storage = _storage(url)
    sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler()
    if tune.seed is not None:
        sampler = _TrialSeededSampler(tune.seed)
    pruner: optuna.pruners.BasePruner = optuna.pruners.NopPruner()
    # epochs count from 1: the first a pruner may stop a trial at is the one after the warmup
    first_epoch = min(tune.pruner_warmup_epochs + 1, num_epochs)
    if tune.pruner == "median":
        pruner = optuna.pruners.MedianPruner(
            n_startup_trials=tune.pruner_startup_trials, n_warmup_steps=first_epoch
        )
    elif tune.pruner == "hyperband":
        pruner = _Hyperband(
            n_startup_trials=tune.pruner_startup_trials,
            min_resource=first_epoch,
            max_resource=num_epochs,
        )
    kwargs: dict[str, Any] = {"storage": storage, "study_name": name, "direction": "maximize"}
    try:
        study = optuna.create_study(sampler=sampler, pruner=pruner, **kwargs)
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        pass
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    return study, False


class _Hyperband(optuna.pruners.HyperbandPruner):
    """Hyperband whose first rung is ``min_resource`` epochs (the warmup) and which prunes no
    trial before ``n_startup_trials`` trials completed, as the median pruner does."""

    def __init__(self, *, n_startup_trials: int, min_resource: int, max_resource: int) -> None:
        super().__init__(min_resource=min_resource, max_resource=max_resource)
        self.n_startup_trials = n_startup_trials

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        # asked even during the startup: it records the trial's value at each rung it reaches,
        # which later trials are compared with
        verdict = super().prune(study, trial)
        return verdict and _count(study, (optuna.trial.TrialState.COMPLETE,)) >= (
            self.n_startup_trials
        )


class _TrialSeededSampler(optuna.samplers.BaseSampler):
    """TPE whose random draws for trial ``n`` come from a generator seeded with ``(seed, n)``.

    One seeded generator per process would make workers that start together (two shells, or
    a resumed and a new process) draw the same values: each starts from the same state. The
    trial number is unique in a study (the storage hands it out), so seeding each trial's draws
    with it gives concurrent workers different values, a resumed study new ones, and one worker
    the same trials for the same seed: TPE's other input, the finished trials, is the same then.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._samplers: dict[int, optuna.samplers.TPESampler] = {}  # by trial number
        self._lock = threading.Lock()  # --n-jobs threads start and end trials side by side

    def _for(self, trial: optuna.trial.FrozenTrial) -> optuna.samplers.TPESampler:
        with self._lock:
            sampler = self._samplers.get(trial.number)
            if sampler is None:
                state = np.random.SeedSequence([self.seed, trial.number]).generate_state(1)
                sampler = self._samplers[trial.number] = optuna.samplers.TPESampler(
                    seed=int(state[0])
                )
            return sampler

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, optuna.distributions.BaseDistribution]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        search_space: dict[str, optuna.distributions.BaseDistribution],
    ) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: optuna.distributions.BaseDistribution,
    ) -> Any:
        sampler = self._for(trial)
        return sampler.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        state: optuna.trial.TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._for(trial).after_trial(study, trial, state, values)
        with self._lock:
            self._samplers.pop(trial.number, None)


def _storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage with a heartbeat; retried while another process creates the tables."""
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):  # wait for another worker's write lock instead of failing
        engine_kwargs["connect_args"] = {"timeout": 60}
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                # optuna still calls the heartbeat experimental; it is what resumes a study
                # whose process was killed, so we rely on it knowingly
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=HEARTBEAT_SECONDS,
                    grace_period=GRACE_PERIOD_SECONDS,
                )
        except Exception as error:  # sqlalchemy's OperationalError, IntegrityError, ...
            if attempt == 4 or not _another_worker_creating(error):
                cause = (str(error).strip().splitlines() or [type(error).__name__])[0]
                message = f"cannot open the Optuna storage {_safe_url(url)}: {cause}"
                raise ConfigError(message) from error  # SQLAlchemy's next lines: a link
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _another_worker_creating(error: Exception) -> bool:
    """An error of two workers creating the same tables at once, which a retry gets past (a bad
    URL, a missing driver or an unreachable server would only fail again, slower)."""
    text = str(error).lower()
    return type(error).__name__ == "IntegrityError" or "already exists" in text or "locked" in text


def _objective(
    config: ExperimentConfig,
    metric: str,
    out_dir: Path,
    parent: MLflowTracker | None,
    study_name: str,
    stopped: list[int],
    explained: list[int],
) -> Callable[[optuna.Trial], float]:
    """Train one trial; a stop (Ctrl-C, SIGTERM) adds its number to ``stopped`` and ends it,
    and Optuna marks it FAIL (it has no state for a trial stopped on purpose). A trial that
    fails with an :class:`LtrError` (e.g. it diverged) keeps the error as its user attribute
    ``error``, which the per-trial line shows; the search goes on. Either way its number goes
    to ``explained``."""

    def objective(trial: optuna.Trial) -> float:
        try:
            raise_if_interrupted()  # a trial Optuna started just as the search was stopped
            return _train_trial(trial, config, metric, out_dir, parent, study_name)
        except KeyboardInterrupt as stop:
            stopped.append(trial.number)
            explained.append(trial.number)
            how = stop.signal_name if isinstance(stop, Interrupted) else "KeyboardInterrupt"
            trial.set_user_attr("error", f"stopped by {how}")
            raise
        except LtrError as error:
            trial.set_user_attr("error", str(error))
            explained.append(trial.number)
            raise

    return objective


def _train_trial(
    trial: optuna.Trial,
    config: ExperimentConfig,
    metric: str,
    out_dir: Path,
    parent: MLflowTracker | None,
    study_name: str,
) -> float:
    """One training run of ``config`` with the trial's values; its validation ``metric``."""
    from ltr.training.experiment import run_experiment  # training imports experiments

    assert config.tune is not None
    values = {key: _suggest(trial, key, dim) for key, dim in config.tune.space.items()}
    trial_cfg = trial_config(config, values, output_dir=out_dir / "trials")
    tags = None
    if parent is not None:
        tags = {
            "mlflow.parentRunId": parent.run_id,
            "mlflow.runName": f"trial-{trial.number}",
            "ltr.optuna.study": study_name,
            "ltr.optuna.trial": str(trial.number),
        }
    reporter = _PruningReporter(trial, f"valid/{metric}")
    run_dir = run_experiment(
        trial_cfg,
        quiet=True,
        trackers=[reporter],
        mlflow_tags=tags,
        # known once the run exists: a pruned, failed or stopped trial keeps it too
        on_run_dir=lambda path: trial.set_user_attr("run_dir", str(path)),
    )
    report = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    value = report["valid"].get(metric)
    return math.nan if value is None else float(value)  # NaN: Optuna fails the trial


def _why(trial: optuna.trial.FrozenTrial) -> str:
    """Why a failed trial failed: its error, else the reason Optuna recorded (a NaN value)."""
    error = trial.user_attrs.get("error") or trial.system_attrs.get("fail_reason")
    return str(error) if error else "no reason recorded"


def _stop_when_interrupted(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """After a trial that ended before a stop reached it: start no other."""
    if last_interruption() is not None:
        study.stop()


@contextlib.contextmanager
def _quiet_failed_trials(explained: list[int]) -> Iterator[None]:
    """Drop Optuna's warnings (``Trial 3 failed ...``, with a traceback) about the failed trials
    in ``explained``: the per-trial line gives the error, the closing line names stopped ones."""

    def keep(record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(message.startswith(f"Trial {number} failed") for number in explained)

    optuna_logger = logging.getLogger("optuna.study._optimize")  # where optuna logs failures
    optuna_logger.addFilter(keep)
    try:
        yield
    finally:
        optuna_logger.removeFilter(keep)


def _stopped_note(
    study: optuna.Study, storage: str, trials: int, metric: str, stopped: list[int]
) -> str:
    """What a stopped search leaves: the study, where it is, its best trial, the trials the stop
    ended, and how to continue."""
    finished = _count(study, FINISHED)
    complete = _count(study, (optuna.trial.TrialState.COMPLETE,))
    best = _best(study)
    best_text = (
        "no trial completed yet"
        if best is None
        else f"best trial {best.number} with {metric}={best.value:.4f}"
    )
    note = (
        f"study {study.study_name!r} in {_safe_url(storage)}: {finished} of {trials} trials "
        f"finished ({complete} complete, {finished - complete} pruned), {best_text}; "
    )
    named = ""
    if stopped:
        numbers = ", ".join(str(number) for number in sorted(stopped))
        named = f"{'trials' if len(stopped) > 1 else 'trial'} {numbers}"
        note += f"{named} stopped, marked FAIL; "
    if finished >= trials:  # the stop came as the search ended
        return note + "the study is complete, nothing to continue"
    note += "run the same ltr tune command again to continue the study with new trials"
    if stopped:  # a FAIL trial is never restarted: the next command samples fresh ones
        note += f" ({named} {'are' if len(stopped) > 1 else 'is'} not resumed)"
    return note


def _suggest(trial: optuna.Trial, key: str, dimension: SearchDimension) -> Any:
    """Draw ``key``; list-valued choices travel through Optuna as their JSON text."""
    if dimension.type == "categorical":
        choices = dimension.choices or []
        if all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
            return trial.suggest_categorical(key, choices)
        return json.loads(trial.suggest_categorical(key, [json.dumps(c) for c in choices]))
    low, high = float(dimension.low or 0), float(dimension.high or 0)
    if dimension.type == "int":
        return trial.suggest_int(key, int(low), int(high), step=dimension.step or 1)
    return trial.suggest_float(key, low, high, log=dimension.type == "loguniform")


class _PruningReporter:
    """A tracker that reports ``key`` to the trial every epoch and stops the run when pruned."""

    def __init__(self, trial: optuna.Trial, key: str) -> None:
        self.trial, self.key = trial, key

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        if self.key not in metrics:  # the final numbers (best/..., test/...) are not epochs
            return
        self.trial.report(float(metrics[self.key]), step)
        if self.trial.should_prune():
            self.trial.set_user_attr("pruned_at_epoch", step)
            raise TrialPruned(f"trial {self.trial.number} pruned at epoch {step}")

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        pass

    def close(self, error: BaseException | None = None) -> None:
        pass


def _progress(
    console: Console, metric: str
) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        state = trial.state.name.lower()
        if trial.state == optuna.trial.TrialState.COMPLETE:
            state = f"{metric}={trial.value:.4f}"
        elif trial.state == optuna.trial.TrialState.PRUNED:
            state = f"pruned at epoch {trial.user_attrs.get('pruned_at_epoch', '?')}"
        elif "error" in trial.user_attrs:
            state = f"failed: {trial.user_attrs['error']}"
        best = _best(study)
        best_text = "" if best is None else f" (best {best.value:.4f}, trial {best.number})"
        facts = [_trial_seconds(trial), _params_text(trial.params)]
        details = "; ".join(fact for fact in facts if fact)
        line = f"Trial {trial.number}: {state}{best_text}" + (f"; {details}" if details else "")
        console.print(Text(line), highlight=False)

    return report


def _trial_seconds(trial: optuna.trial.FrozenTrial) -> str:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return ""
    return f"{(trial.datetime_complete - trial.datetime_start).total_seconds():.1f} s"


def _params_text(params: Mapping[str, Any]) -> str:
    """``training.learning_rate=0.00031 model.dropout=0.2`` -> ``learning_rate=0.00031
    dropout=0.2``: the last part of each key, unless two keys share it."""
    last = [key.rsplit(".", 1)[-1] for key in params]
    names = [
        short if last.count(short) == 1 else key for key, short in zip(params, last, strict=True)
    ]
    values = params.values()
    return " ".join(f"{name}={_compact(v)}" for name, v in zip(names, values, strict=True))


def _compact(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------------------------
# MLflow parent run and outputs
# --------------------------------------------------------------------------------------------


def _parent_run(
    study: optuna.Study, created: bool, config: ExperimentConfig, storage: str
) -> MLflowTracker | None:
    """The study's parent MLflow run: made by the study's creator, found by everyone else."""
    if not config.tracking.mlflow or not mlflow_available():
        return None
    uri = resolve_tracking_uri(config.tracking.mlflow_uri)
    found = study.user_attrs.get(PARENT_ATTR)
    if not created and found is None:  # the creator may be making it right now
        for _ in range(60):
            time.sleep(0.5)
            found = study.user_attrs.get(PARENT_ATTR)  # read from the storage each time
            if found is not None:
                break
    if found is not None and found["tracking_uri"] == uri:
        return MLflowTracker.reopen(uri, found["experiment_id"], found["run_id"])
    parent = MLflowTracker.start(
        uri,
        config.experiment.name,
        run_name=f"study-{study.study_name}",
        tags={"ltr.optuna.study": study.study_name, "ltr.optuna.storage": _safe_url(storage)},
    )
    assert config.tune is not None
    parent.log_params({"tune": config.tune.model_dump(mode="json")})
    study.set_user_attr(PARENT_ATTR, parent.info)
    return parent


def _finish(
    study: optuna.Study,
    config: ExperimentConfig,
    metric: str,
    out_dir: Path,
    parent: MLflowTracker | None,
    error: BaseException | None,
) -> TuneResult:
    """Write the outputs (best config, trials, plots), mirror them to the parent run."""
    out_dir.mkdir(parents=True, exist_ok=True)
    best = _best(study)
    files = [_write_trials_csv(study, out_dir / "trials.csv"), out_dir / "trials.json"]
    atomic_write_json(out_dir / "trials.json", [_trial_record(t) for t in study.trials])
    best_config = None
    if best is not None:
        best_config = out_dir / "best_config.yaml"
        assert config.tune is not None
        values = {k: _decoded(config.tune.space[k], v) for k, v in best.params.items()}
        best_cfg = trial_config(config, values, output_dir=config.tracking.output_dir)
        header = (
            f"# Best trial {best.number} of Optuna study {study.study_name!r}: "
            f"valid {metric} = {best.value:.6f}\n# ltr train --config {best_config}\n"
        )
        atomic_write_text(best_config, header + best_cfg.to_yaml())
        files.append(best_config)
    files.extend(_plots(study, out_dir, metric))
    if parent is not None:
        for path in files:
            parent.log_artifact(path)
        if best is not None and best.value is not None:
            n_finished = _count(study, FINISHED)
            parent.log_metrics({f"best/valid/{metric}": best.value}, n_finished)
        parent.close(error)
    return TuneResult(
        study=study.study_name,
        out_dir=out_dir,
        n_complete=_count(study, (optuna.trial.TrialState.COMPLETE,)),
        n_pruned=_count(study, (optuna.trial.TrialState.PRUNED,)),
        best_trial=None if best is None else best.number,
        best_value=None if best is None else best.value,
        best_config=best_config,
    )


def _plots(study: optuna.Study, out_dir: Path, metric: str) -> list[Path]:
    """``optimization_history.png``, and ``param_importances.png`` when it can be computed."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
    from optuna.visualization import matplotlib as plots

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return []
    written = []
    drawers: dict[str, Callable[..., Any]] = {
        "optimization_history": plots.plot_optimization_history
    }
    varied = {k for k in complete[0].params if len({str(t.params.get(k)) for t in complete}) > 1}
    if len(complete) >= 2 and varied:
        drawers["param_importances"] = plots.plot_param_importances
    for name, draw in drawers.items():
        with warnings.catch_warnings():
            # optuna marks its matplotlib backend experimental; that is its notice, not ours
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                axes = draw(study, target_name=f"valid {metric}")
            except (ValueError, RuntimeError) as error:
                logger.warning("no %s plot: %s", name, error)
                continue
        if name == "optimization_history":  # trials are whole numbers
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        figure = axes.figure
        assert isinstance(figure, Figure)
        figure.set_size_inches(9, 5.5)
        figure.tight_layout()
        path = out_dir / f"{name}.png"
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=110)
        plt.close(figure)
        written.append(path)
    return written


def _write_trials_csv(study: optuna.Study, path: Path) -> Path:
    records = [_trial_record(t) for t in study.trials]
    keys = sorted({key for record in records for key in record["params"]})
    columns = ["number", "state", "value", "pruned_at_epoch", "seconds", "run_dir", "error", *keys]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        params = record["params"]
        row = [record.get(c) for c in columns[:7]] + [params.get(k) for k in keys]
        writer.writerow(["" if cell is None else cell for cell in row])
    atomic_write_text(path, text.getvalue())
    return path


def _trial_record(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    seconds = None
    if trial.datetime_start is not None and trial.datetime_complete is not None:
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
    return {
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.value,
        "pruned_at_epoch": trial.user_attrs.get("pruned_at_epoch"),
        "seconds": seconds,
        "run_dir": trial.user_attrs.get("run_dir"),
        "error": trial.user_attrs.get("error"),
        "params": trial.params,
        "epoch_values": {str(k): v for k, v in sorted(trial.intermediate_values.items())},
    }


def _decoded(dimension: SearchDimension, value: Any) -> Any:
    """A trial's value as the config wants it (list choices travelled as JSON text)."""
    choices = dimension.choices or []
    if any(not (c is None or isinstance(c, (bool, int, float, str))) for c in choices):
        return json.loads(value)
    return value


def _best(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return max(complete, key=lambda t: t.value or -math.inf, default=None)


def _count(study: optuna.Study, states: tuple[optuna.trial.TrialState, ...]) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"tune.space: {key}: {part} is not a section")
        node = child
    node[leaf] = value


def _safe_url(url: str) -> str:
    """The storage URL without its password (it goes to logs and MLflow tags)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a database URL: nothing to hide that we can parse
        return url
