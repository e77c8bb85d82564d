"""k-fold cross-validation: one experiment trained on every fold of a LETOR data set.

LETOR results are means over folds (MQ2008: ``Fold1`` .. ``Fold5``, each with its own train,
vali and test files). :func:`run_cv` is what ``ltr cv`` calls: it trains the experiment once
per fold through :func:`~ltr.training.experiment.run_experiment`, exactly as ``ltr train --set
data.root=<fold>`` would (same seed, same MLflow and TensorBoard tracking; each fold's MLflow
run is named ``<cv dir>/<fold>`` and tagged ``ltr.cv_dir``, ``ltr.fold``), and averages the
folds' test metrics. The layout, under ``tracking.output_dir`` like every run::

    <YYYYmmdd-HHMMSS>-<experiment name>-cv/
        cv.json                           written at the start and after every fold
        Fold1/<YYYYmmdd-HHMMSS>-<name>/   the fold's run directory, as ltr train writes it
        Fold2/...

``cv.json``: ``folds_dir``; ``config`` (resolved, ``data.root`` null: each fold sets its own);
``folds`` (``name``, ``data_root``, ``run_dir`` and ``test``, the test metrics of the run's
``metrics.json``, both null until the fold is done); ``metrics``: per test metric the ``mean``,
the sample standard deviation ``std`` (null for fewer than two folds) and the ``count`` of folds
it averages (folds done whose value is not null).

:func:`resume_cv` continues a cv directory: a fold whose run has its ``metrics.json`` is done, a
fold whose run has ``checkpoints/last.pt`` resumes through ``run_experiment``'s resume path, any
other fold trains from the start; every fold run must have the config of ``cv.json`` (a hand
edit of it is refused before any fold trains). Under ``torchrun`` the folds train one after the
other, each one DDP job as ``ltr train`` runs it, in one process group; rank 0 names the cv
directory, decides what each fold needs, and alone writes ``cv.json``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import re
import shlex
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ltr._console_log import log_command_to, next_run_lines, run_console
from ltr._fs import atomic_write_json, file_sha256, read_json
from ltr.config import ExperimentConfig, load_config
from ltr.data.layout import FILE_NAMES, find_data_file
from ltr.errors import ConfigError, DataNotFoundError, DivergedError, LtrError
from ltr.experiments.cv_record import CV_FILE, read_cv_json
from ltr.experiments.mlflow_tracker import check_mlflow
from ltr.experiments.tracking import Run, json_safe, training_lock
from ltr.lifecycle.provenance import file_changed, recorded_file
from ltr.training.distributed import Distributed, per_rank_batch_size, process_group
from ltr.training.experiment import (
    config_changes,
    load_run_config,
    resolve_device,
    run_experiment,
)

__all__ = [
    "CV_LOG",
    "CvResult",
    "Fold",
    "FoldResult",
    "find_folds",
    "load_cv_config",
    "resume_cv",
    "run_cv",
    "summarize_folds",
]

logger = logging.getLogger(__name__)

_FOLD_NAME = re.compile(r"fold(\d+)", re.IGNORECASE)
_SUMMARY_METRIC = "ndcg@10"  # in every metrics.json (TEST_METRICS)
CV_LOG = "cv.log"  # what ltr cv printed, every session (the ltr command line only)
# what --resume may change: where and how fast a fold trains, not what it learns
_RESUMABLE_CHANGES = ("training.device=", "training.num_threads=")
# what may differ between the cv's config and a fold run's: the above and where it is tracked
_FOLD_RUN_CHANGES = ("training.device", "training.num_threads", "tracking.")


@dataclass(frozen=True)
class Fold:
    """One fold folder: its name (``Fold3``) and absolute path."""

    name: str
    root: Path


@dataclass(frozen=True)
class FoldResult:
    """A fold of a cv: its run directory and test metrics (None until it is done)."""

    fold: Fold
    run_dir: Path | None = None
    test: Mapping[str, float | None] | None = None


@dataclass(frozen=True)
class CvResult:
    """What ``cv.json`` holds, for the table of ``ltr cv``."""

    cv_dir: Path
    config: ExperimentConfig
    folds: list[FoldResult]
    metrics: dict[str, dict[str, Any]]  # name -> {mean, std, count}


def find_folds(folds_dir: str | Path) -> list[Fold]:
    """The subfolders ``Fold<N>`` (any case) of ``folds_dir`` in numeric order.

    Raises:
        DataNotFoundError: ``folds_dir`` is not a folder, holds no fold folder, or a fold lacks
            its training or test file (validation files are optional, as for ``data.root``).
        ConfigError: two folders carry the same number (``Fold1`` and ``fold01``).
    """
    folds_dir = Path(folds_dir)
    if not folds_dir.is_dir():
        problem = "is not a folder" if folds_dir.exists() else "does not exist"
        raise DataNotFoundError(f"folds folder {folds_dir} {problem}")
    numbered: dict[int, Path] = {}
    for path in sorted(folds_dir.iterdir()):
        match = _FOLD_NAME.fullmatch(path.name)
        if match is None:
            continue
        if not path.is_dir():  # a file, or a link to nowhere: one fold fewer than it seems
            logger.warning("folds folder %s: %s is not a folder; skipped", folds_dir, path.name)
            continue
        number = int(match.group(1))
        if number in numbered:
            raise ConfigError(
                f"folds folder {folds_dir}: {numbered[number].name} and {path.name} are both "
                f"fold {number}; keep one"
            )
        numbered[number] = path
    if not numbered:
        raise DataNotFoundError(
            f"folds folder {folds_dir} holds no fold folders (looked for subfolders named "
            "Fold<N>, any case, e.g. Fold1)"
        )
    folds = [Fold(path.name, path.resolve()) for _, path in sorted(numbered.items())]
    for fold in folds:
        _check_fold_files(fold)
    return folds


def load_cv_config(
    path: str | Path,
    overrides: Iterable[str] = (),
    *,
    model: str | None = None,
    loss: str | None = None,
) -> ExperimentConfig:
    """The experiment of ``ltr cv --config``: :func:`~ltr.config.load_config`, with the data
    root left to the folds (a file without ``data.root`` is fine)."""
    # a placeholder that satisfies validation; run_cv gives every fold its own root
    return load_config(path, [*overrides, "data.root=."], model=model, loss=loss)


def run_cv(
    config: ExperimentConfig,
    folds_dir: str | Path,
    *,
    quiet: bool = False,
    dist: Distributed | None = None,
    on_cv_dir: Callable[[Path], None] | None = None,
) -> CvResult | None:
    """Train ``config`` on every fold of ``folds_dir``; write and return the cv's summary.

    ``config.data.root`` is replaced by each fold's folder; ``quiet``: no line per fold;
    ``on_cv_dir`` is called once, on rank 0, with the (absolute) cv directory as soon as it
    exists, whether the cv then ends, fails or is stopped (``ltr cv --quiet`` prints it).

    Returns:
        The result, on rank 0; None on the other ranks of a distributed job.

    Raises:
        ConfigError: ``config`` names explicit data files (``data.train``, ``data.valid``,
            ``data.test``), which would take the place of every fold's.
        DataNotFoundError: see :func:`find_folds`.
        LtrError: whatever ``run_experiment`` raises for a fold.
    """
    explicit = [f"data.{key}" for key in ("train", "valid", "test") if getattr(config.data, key)]
    if explicit:
        raise ConfigError(
            f"{', '.join(explicit)}: explicit data files conflict with the folds, which give "
            "every fold its own files; set them to null"
        )
    folds = find_folds(folds_dir)
    dist = dist or Distributed()
    per_rank_batch_size(config.training.batch_size, dist.world_size)  # fail before any work
    device = dist.device(resolve_device(config.training.device))
    with process_group(dist, device):  # one group for every fold; run_experiment reuses it
        check_mlflow(config, rank=dist.rank)  # a bad store fails before the cv dir exists
        made = Run.create(
            config.tracking.output_dir,
            f"{config.experiment.name}-cv",
            rank=dist.rank,
            tensorboard=False,
        )
        # the note covers the wait for the other ranks: rank 0's directory already exists
        with _note_cv_resume_on_interrupt(made.dir.resolve(), folds, dist):
            if dist.is_main:
                if on_cv_dir is not None:
                    on_cv_dir(made.dir.resolve())
                log_command_to(made.dir / CV_LOG)
            cv_dir = Path(dist.broadcast_object(str(made.dir.resolve())))
            with training_lock(cv_dir, rank=dist.rank):
                stored = config.resolved()
                stored["data"]["root"] = None
                state = {"folds_dir": str(Path(folds_dir).resolve()), "config": stored}
                _write_state(cv_dir, state, [FoldResult(fold) for fold in folds], dist)
                stages = _fold_stages(cv_dir, config, folds, dist)
                return _train_folds(cv_dir, config, folds, stages, state, quiet=quiet, dist=dist)


def resume_cv(
    cv_dir: str | Path,
    overrides: Iterable[str] = (),
    *,
    quiet: bool = False,
    dist: Distributed | None = None,
    on_cv_dir: Callable[[Path], None] | None = None,
) -> CvResult | None:
    """Continue the cv of ``cv_dir`` (its ``cv.json``): done folds are kept, an interrupted
    fold resumes from its ``last.pt``, folds not started train.

    ``overrides``: ``--set`` items for the folds still to train: ``training.device`` or
    ``training.num_threads`` (every fold keeps the rest of the config of the folds done).
    ``on_cv_dir``: as for :func:`run_cv`, called once ``cv_dir`` is known to be a cv directory,
    before any check of whether it may continue (a refused resume names it too).

    Raises:
        ConfigError: an override of a field a resumed run may not change, or a fold whose
            run was trained with another config than ``cv.json``'s (edited since).
        DataNotFoundError: ``cv_dir`` has no ``cv.json``, or a fold still to train lacks its
            folder or files (checked before any fold trains).
        DataFormatError: ``cv.json`` is not valid JSON or not the layout of ltr cv.
    """
    cv_dir, overrides = Path(cv_dir).resolve(), list(overrides)
    state = read_cv_json(cv_dir)
    dist = dist or Distributed()
    if dist.is_main and on_cv_dir is not None:  # a cv directory: named before any refusal
        on_cv_dir(cv_dir)
    fixed = [item for item in overrides if not item.startswith(_RESUMABLE_CHANGES)]
    if fixed:
        raise ConfigError(
            f"cannot resume {cv_dir} with {', '.join(fixed)}: the folds done keep their config, "
            f"so only {', '.join(_RESUMABLE_CHANGES)} may change"
        )
    with training_lock(cv_dir, rank=dist.rank):  # refused at once, before any check
        return _resume_cv(cv_dir, state, overrides, quiet=quiet, dist=dist)


def _resume_cv(
    cv_dir: Path,
    state: Mapping[str, Any],
    overrides: list[str],
    *,
    quiet: bool,
    dist: Distributed,
) -> CvResult | None:
    """:func:`resume_cv` under the cv's lock."""
    raw = copy.deepcopy(state["config"])
    raw["data"]["root"] = "."  # a placeholder that satisfies validation, as in load_cv_config
    config = load_config(base=raw, overrides=overrides)
    folds = [Fold(entry["name"], Path(entry["data_root"])) for entry in state["folds"]]
    device = dist.device(resolve_device(config.training.device))
    with process_group(dist, device), _note_cv_resume_on_interrupt(cv_dir, folds, dist):
        stages = _fold_stages(cv_dir, config, folds, dist)
        if dist.is_main:  # a refused resume leaves cv.log as it was, as ltr train its train.log
            log_command_to(cv_dir / CV_LOG, resumed=True)
        stored = {"folds_dir": state["folds_dir"], "config": state["config"]}
        return _train_folds(
            cv_dir, config, folds, stages, stored, quiet=quiet, dist=dist, overrides=overrides
        )


def summarize_folds(tests: Sequence[Mapping[str, float | None]]) -> dict[str, dict[str, Any]]:
    """Per metric of the folds' test metrics: ``mean``, sample ``std`` (ddof=1; None below two
    folds) and ``count``, over the folds whose value is not None (NaN in metrics.json)."""
    names = list(dict.fromkeys(name for test in tests for name in test))
    summary: dict[str, dict[str, Any]] = {}
    for name in names:
        values = np.array([test[name] for test in tests if test.get(name) is not None], float)
        summary[name] = {
            "mean": float(values.mean()) if values.size else None,
            "std": float(values.std(ddof=1)) if values.size > 1 else None,
            "count": int(values.size),
        }
    return summary


def _fold_stages(
    cv_dir: Path, config: ExperimentConfig, folds: Sequence[Fold], dist: Distributed
) -> list[tuple[str, Any]]:
    """Where each fold stands (:func:`_fold_stage`: the stage and its run, a Path once started),
    checked for every fold before any trains."""
    # rank 0 looks; every rank takes its decisions
    stages: list[tuple[str, Any]] = dist.broadcast_object(
        [_fold_stage(cv_dir / fold.name) for fold in folds] if dist.is_main else None
    )
    for fold, (stage, found) in zip(folds, stages, strict=True):
        if found is not None:  # cv.json may have been edited since the fold ran
            _check_fold_config(found, _fold_config(config, fold, cv_dir), fold)
        if stage == "done":  # its metrics describe the files it read then
            _check_fold_data(found, fold)
        if stage != "done":  # a resumed cv's data may have moved
            _check_fold_files(fold)
    return stages


def _train_folds(
    cv_dir: Path,
    config: ExperimentConfig,
    folds: Sequence[Fold],
    stages: Sequence[tuple[str, Any]],
    state: dict[str, Any],
    *,
    quiet: bool,
    dist: Distributed,
    overrides: Iterable[str] = (),
) -> CvResult | None:
    """Bring every fold to done, in order, writing ``cv.json`` after each (rank 0)."""
    # quiet: the fold lines go to cv.log alone
    console = run_console(quiet=quiet or not dist.is_main, stderr=True, command=True)
    results = [FoldResult(fold) for fold in folds]
    restart = (  # after a divergence: a new cv with a changed config (the user's file, unknown)
        f"ltr cv --config <config> --folds {shlex.quote(str(state['folds_dir']))} "
        f"--set training.learning_rate={config.training.learning_rate / 10:g}"
    )
    for i, (fold, (stage, found)) in enumerate(zip(folds, stages, strict=True)):
        started = time.perf_counter()
        next_run_lines()  # the fold's own warnings go to its train.log, the cv's lines do not
        tags = {
            "mlflow.runName": f"{cv_dir.name}/{fold.name}",
            "ltr.cv_dir": str(cv_dir),
            "ltr.fold": fold.name,
        }
        if stage == "done":
            run_dir, outcome = found, f"{fold.name} done before"
        elif stage == "interrupted":
            resumed = load_run_config(found, overrides)
            with _note_cv_resume_on_error(cv_dir, folds, dist, restart):
                run_dir = run_experiment(
                    resumed, resume=found, quiet=True, dist=dist, mlflow_tags=tags
                )
            outcome = f"resumed {fold.name} in {time.perf_counter() - started:.1f} s"
        else:
            with _note_cv_resume_on_error(cv_dir, folds, dist, restart):
                run_dir = run_experiment(
                    _fold_config(config, fold, cv_dir), quiet=True, dist=dist, mlflow_tags=tags
                )
            outcome = f"trained {fold.name} in {time.perf_counter() - started:.1f} s"
        if not dist.is_main:  # rank 0 reads the reports and writes cv.json
            continue
        report = _read_report(run_dir)
        results[i] = FoldResult(fold, run_dir, report["test"])
        _write_state(cv_dir, state, results, dist)
        value = report["test"].get(_SUMMARY_METRIC)
        shown = "n/a" if value is None else f"{value:.4f}"
        console.print(
            f"Fold {i + 1}/{len(folds)}: {outcome}: test {_SUMMARY_METRIC}={shown} "
            f"(best epoch {report['best_epoch']} of {report['epochs']}); {_shown(run_dir, cv_dir)}",
            highlight=False,
        )
    if not dist.is_main:
        return None
    metrics = summarize_folds([result.test for result in results if result.test is not None])
    return CvResult(cv_dir, config, results, metrics)


@contextlib.contextmanager
def _note_cv_resume_on_interrupt(
    cv_dir: Path, folds: Sequence[Fold], dist: Distributed
) -> Iterator[None]:
    """On Ctrl-C or SIGTERM, replace the notes of the interruption (a fold's ``ltr train
    --resume`` hint, which would leave the later folds and ``cv.json`` behind) with the cv's."""
    try:
        yield
    except KeyboardInterrupt as stop:
        if dist.is_main:
            stop.__notes__ = [_cv_resume_note(cv_dir, folds)]
        raise


@contextlib.contextmanager
def _note_cv_resume_on_error(
    cv_dir: Path, folds: Sequence[Fold], dist: Distributed, restart: str
) -> Iterator[None]:
    """An error that stops a fold's training says, as a stop does, how far the cv got and how
    to go on: bad data, with the command that continues the cv once the cause is fixed; a
    divergence, which the cv's own config would repeat on a resume, with ``restart``, the
    command that starts a new cv with a changed config."""
    try:
        yield
    except LtrError as error:
        if dist.is_main:
            if isinstance(error, DivergedError):
                error.add_note(
                    f"{_cv_progress(cv_dir, folds)}; ltr cv --resume would train with the same "
                    f"config and diverge again: start a new cv with the change, e.g. {restart}"
                )
            else:
                error.add_note(_cv_resume_note(cv_dir, folds, fixed_first=True))
        raise


def _cv_resume_note(cv_dir: Path, folds: Sequence[Fold], *, fixed_first: bool = False) -> str:
    """Which fold the stop cut, how many are done, and the command that finishes the cv."""
    if not (cv_dir / CV_FILE).is_file():  # stopped before the cv began
        return f"{cv_dir} holds no {CV_FILE} yet (stopped before its first fold); delete it"
    then = "once that is fixed, continue" if fixed_first else "continue"
    return f"{_cv_progress(cv_dir, folds)}; {then} with: ltr cv --resume {shlex.quote(str(cv_dir))}"


def _cv_progress(cv_dir: Path, folds: Sequence[Fold]) -> str:
    """``stopped in Fold2, 1 of 5 folds done``."""
    done = [_fold_stage(cv_dir / fold.name)[0] == "done" for fold in folds]
    cut = next((fold.name for fold, is_done in zip(folds, done, strict=True) if not is_done), None)
    where = "every fold is done" if cut is None else f"stopped in {cut}"
    return f"{where}, {sum(done)} of {len(folds)} folds done"


def _fold_config(config: ExperimentConfig, fold: Fold, cv_dir: Path) -> ExperimentConfig:
    """``config`` with ``data.root`` the fold and its run going to ``<cv_dir>/<fold name>``."""
    return config.model_copy(
        update={
            "data": config.data.model_copy(update={"root": fold.root}),
            "tracking": config.tracking.model_copy(update={"output_dir": cv_dir / fold.name}),
        }
    )


def _fold_stage(fold_dir: Path) -> tuple[str, Path | None]:
    """Where a fold stands: ``done`` (the latest run with a ``metrics.json``), else
    ``interrupted`` (the latest with a ``last.pt``), else ``new`` (not started, or stopped before
    its first epoch ended)."""
    runs = sorted(path for path in fold_dir.iterdir() if path.is_dir()) if fold_dir.is_dir() else []
    for stage, marker in (("done", "metrics.json"), ("interrupted", "checkpoints/last.pt")):
        marked = [run for run in runs if (run / marker).is_file()]
        if marked:
            return stage, marked[-1]
    return "new", None


def _shown(path: Path, cv_dir: Path) -> Path:
    """``path`` relative to the cv directory when it lies inside it."""
    return path.relative_to(cv_dir) if path.is_relative_to(cv_dir) else path


def _check_fold_config(run_dir: Path, wanted: ExperimentConfig, fold: Fold) -> None:
    """Refuse a fold run trained with another config than the cv's: one cv, one config."""
    changed = config_changes(
        load_run_config(run_dir).resolved(), wanted.resolved(), allowed=_FOLD_RUN_CHANGES
    )
    if changed:
        raise ConfigError(
            f"fold {fold.name}'s run {run_dir} was trained with another config than the cv's "
            f"{CV_FILE} ({', '.join(changed)}); every fold of a cv trains with one config: "
            f"restore {CV_FILE} or start a new cv"
        )


def _check_fold_data(run_dir: Path, fold: Fold) -> None:
    """Refuse to add to a cv whose finished fold read data files that have changed since: its
    mean would mix metrics of the old files with folds trained on the new ones."""
    report = _read_report(run_dir)
    for split in ("train", "valid", "test"):
        recorded = recorded_file(report, split)  # None for runs from before ltr recorded files
        if recorded is None:
            continue
        path = Path(recorded["path"])
        now = file_sha256(path) if path.is_file() else "missing"
        if now != recorded["sha256"]:
            raise ConfigError(
                f"fold {fold.name} is done, but its run "
                f"{file_changed(run_dir.name, split, recorded, now)}; one cv measures one "
                "version of the data: restore that file or start a new cv"
            )


def _check_fold_files(fold: Fold) -> None:
    if not fold.root.is_dir():
        raise DataNotFoundError(
            f"fold {fold.name}: its folder {fold.root} does not exist; restore it"
        )
    for split in ("train", "test"):
        if find_data_file(fold.root, split) is None:
            raise DataNotFoundError(
                f"fold {fold.name} ({fold.root}) has no {split} file (looked for "
                f"{', '.join(FILE_NAMES[split])})"
            )


def _read_report(run_dir: Path) -> dict[str, Any]:
    """The run's ``metrics.json``; it must hold test metrics."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise DataNotFoundError(f"{run_dir} has no metrics.json")
    report = read_json(path)
    if not isinstance(report, dict) or not isinstance(report.get("test"), dict):
        raise LtrError(f"{path}: no test metrics; every fold needs a test file")
    return report


def _write_state(
    cv_dir: Path, state: Mapping[str, Any], results: Sequence[FoldResult], dist: Distributed
) -> None:
    if not dist.is_main:
        return
    folds = [
        {
            "name": result.fold.name,
            "data_root": str(result.fold.root),
            "run_dir": None if result.run_dir is None else str(result.run_dir),
            "test": None if result.test is None else dict(result.test),
        }
        for result in results
    ]
    metrics = summarize_folds([result.test for result in results if result.test is not None])
    atomic_write_json(cv_dir / CV_FILE, json_safe({**state, "folds": folds, "metrics": metrics}))
