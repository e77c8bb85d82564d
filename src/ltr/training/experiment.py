"""One experiment end to end: data, normalizer, model, loss, run directory, training, test.

:func:`run_experiment` is what ``ltr train`` calls. The steps, in order:

1. Find the data (:func:`resolve_data_paths`): explicit ``data.train/valid/test`` paths win over
   the files in ``data.root`` (``train``, ``vali`` or ``valid``, ``test``; ``.txt`` or
   ``.txt.gz``). Without a validation file, ``data.valid_fraction`` of the training queries
   (split by query, seeded with ``data.split_seed``) validate; the test file is never used to pick
   a model (a validation file that is the test or the training file, by path or by bytes, is
   refused). Without a test file the run reports validation numbers only.
2. Fit the normalizer on the training queries only; transform train, validation and test once.
3. Seed torch with ``training.seed``, build the scorer and the loss, create the run directory
   (or reopen it to resume), write ``config.yaml`` and ``preprocessor.json``.
4. :func:`ltr.training.trainer.train`.
5. Reload ``checkpoints/best.pt`` and score the whole test file: ``metrics.json`` and
   ``test_per_query.tsv``. ``metrics.json["data"]`` records each data file's path, sha256,
   queries and documents as read in step 1 (:func:`load_splits`), so later comparisons know
   which bytes produced the numbers even if a file is edited in place.
6. Mirror it all into MLflow (:mod:`ltr.experiments.mlflow_tracker`; ``tracking.mlflow``):
   per-epoch metrics as they come, then the best epoch's and the test numbers and the files.

Interrupted (Ctrl-C, or SIGTERM through the CLI) at any step, the run keeps whole files only
(every write is atomic) and the :class:`KeyboardInterrupt` gets a note naming the epoch in
``last.pt`` and the ``--resume`` command (or, before the first checkpoint, the new directory to
delete: it is named from the moment it exists); resuming ends with the weights and test numbers
of an uninterrupted run, and a run stopped after its last epoch is resumed by testing it. A stop
while the run ends (``metrics.json``, the final MLflow numbers and files: :meth:`Run.finish`)
waits for that end, and the note says the run finished.

Under ``torchrun`` (``dist`` from :meth:`Distributed.from_env`) every process runs these steps
inside the job's process group (:mod:`ltr.training.distributed`): each loads the data and fits
the same normalizer, trains on its shard of the training queries with ``training.batch_size``
as the global batch, and validates on its shard of the validation queries. Rank 0 creates and
names the run directory (the others take the name from it) and alone writes files, prints and
evaluates the test set. ``--resume`` reads ``last.pt`` on every rank, so the run directory must
be on a file system all processes share.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from rich.console import Console

from ltr._console_log import log_console_to, run_console
from ltr._fs import missing_file, same_bytes
from ltr._messages import closest_hint
from ltr._signals import deferred_interrupts
from ltr.config import (
    DEVICE_PATTERN,
    DEVICE_RULE,
    DataConfig,
    ExperimentConfig,
    TrainingConfig,
    dotted_items,
    load_config,
    split_report_name,
)
from ltr.data.dataset import BatchLoader, QueryDataset, split_by_query
from ltr.data.layout import FILE_NAMES, data_files_in, find_data_file
from ltr.data.letor import LetorData, load_letor, warn_if_narrower
from ltr.data.preprocessing import NO_FEATURES, Normalizer
from ltr.data.summary import describe_data, file_digests
from ltr.errors import ConfigError, DataFormatError, DataNotFoundError, LtrError
from ltr.evaluation import evaluate_scores, refuse_gain_overflow
from ltr.experiments.cv_record import CV_FILE
from ltr.experiments.mlflow_tracker import (
    RUN_ARTIFACTS,
    attach_mlflow,
    check_mlflow,
    read_run_file,
)
from ltr.experiments.tracking import Run, Tracker, training_lock
from ltr.losses import LossFn, build_loss
from ltr.metrics import PRESETS, gain_overflows
from ltr.models import build_model, fit_input_encodings
from ltr.training.checkpoint import check_feature_count, load_checkpoint
from ltr.training.distributed import (
    Distributed,
    per_rank_batch_size,
    process_group,
    shard_loader,
)
from ltr.training.trainer import Loaders, TrainResult, score_data, train, validation_metrics

__all__ = [
    "DataPaths",
    "Distributed",
    "Splits",
    "check_resume_dir",
    "config_changes",
    "last_checkpoint",
    "load_run_config",
    "load_splits",
    "report_test_metrics",
    "resolve_data_paths",
    "resolve_device",
    "run_experiment",
    "same_paths",
]

logger = logging.getLogger(__name__)

# always in metrics.json, whatever evaluation.metrics lists
TEST_METRICS = ("ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "map", "mrr")
NO_RELEVANT_POLICIES = ("zero", "one", "skip")
# the official LETOR 4.0 script's NDCG@10 (Eval-Score-4.0.pl), in metrics.json beside them
LETOR_NDCG10 = "ndcg@10[preset=letor]"
DATA_PATHS = ("data.root", "data.train", "data.valid", "data.test")
LOG_FILE = "train.log"  # what the command printed (the ltr command line only: _console_log)
# fields a resumed run may change; anything else must match the run's config.yaml
RESUMABLE_CHANGES = (
    "training.num_epochs",  # not with a cosine schedule: it spans num_epochs
    "training.early_stopping_patience",
    "training.device",
    "training.num_threads",
    "tracking.output_dir",
    "tracking.tensorboard",
    "tracking.mlflow",  # and tracking.mlflow_uri; a resumed run stays in its mlflow.json store
    "experiment.description",
)


@dataclass(frozen=True)
class DataPaths:
    train: Path
    valid: Path | None
    test: Path | None


@dataclass(frozen=True)
class Splits:
    """The three data sets; ``valid`` is carved from train when there is no validation file.

    ``files``: what ``metrics.json["data"]`` records (:func:`load_splits` with ``record_files``),
    else None.
    """

    train: LetorData
    valid: LetorData
    test: LetorData | None
    valid_from_train: bool
    files: dict[str, Any] | None = None


def run_experiment(
    config: ExperimentConfig,
    *,
    resume: Path | None = None,
    quiet: bool = False,
    dist: Distributed | None = None,
    trackers: Sequence[Tracker] = (),
    mlflow_tags: Mapping[str, str] | None = None,
    on_run_dir: Callable[[Path], None] | None = None,
) -> Path:
    """Train one experiment and test its best epoch; returns the run directory.

    Args:
        config: the experiment.
        resume: a run directory to continue from its ``checkpoints/last.pt``; ``config`` must
            equal the run's own except for :data:`RESUMABLE_CHANGES` (e.g. more epochs). A run
            stopped after its last epoch but before ``metrics.json`` is only tested.
        quiet: print nothing (tests); ranks other than 0 never print. Else the test line goes
            to stdout (the result), the rest to stderr (progress); the run directory is
            ``on_run_dir``'s to show.
        dist: this process's place in a torchrun job (:meth:`Distributed.from_env`); None for
            one process. The process group is joined here and left on return or error.
        trackers: more trackers for the run, after TensorBoard and MLflow (``ltr tune``'s
            pruning reporter).
        mlflow_tags: extra tags of the MLflow run (``mlflow.parentRunId`` nests it).
        on_run_dir: called once, on rank 0, with the (absolute) run directory as soon as it
            is the run being worked on: a new one once it exists, a resumed one once it is
            known to be a run directory, before any check of whether it may continue; whether
            the run then ends, fails, is refused or is stopped (``ltr train`` prints it, as
            ``mktemp`` does).

    Returns:
        The run directory, absolute (the same on every rank).

    Raises:
        DataNotFoundError: a data file or the data root is missing.
        ConfigError: a resumed run with a different config (or another
            ``training.num_epochs`` with a cosine schedule) or a data file edited since the
            run started (checkpoints record each file's sha256), or a finished one (it has its
            ``metrics.json``) with no epoch left to train (its ``num_epochs`` done, or stopped
            early and the patience not raised; a run interrupted after its last epoch but
            before ``metrics.json`` resumes to test its best epoch); a distributed
            job whose ``training.batch_size`` is not divisible by the number of processes.
        LtrError: a missing or corrupt checkpoint, training divergence.
    """
    dist = dist or Distributed()
    if resume is not None:  # the run worked on is known at once: named before any refusal
        check_resume_dir(resume)
        last_checkpoint(resume)  # a run directory
        resume = resume.resolve()
        if dist.is_main and on_run_dir is not None:
            on_run_dir(resume)
    per_rank_batch_size(config.training.batch_size, dist.world_size)  # fail before any work
    device = dist.device(resolve_device(config.training.device))
    with process_group(dist, device), _lock_resumed_run(resume, dist):
        return _run(
            config,
            resume=resume,
            quiet=quiet or not dist.is_main,
            dist=dist,
            device=device,
            trackers=trackers,
            mlflow_tags=mlflow_tags,
            on_run_dir=on_run_dir,
        )


def _run(
    config: ExperimentConfig,
    *,
    resume: Path | None,
    quiet: bool,
    dist: Distributed,
    device: torch.device,
    trackers: Sequence[Tracker] = (),
    mlflow_tags: Mapping[str, str] | None = None,
    on_run_dir: Callable[[Path], None] | None = None,
) -> Path:
    """:func:`run_experiment` inside the process group: prepare, open the run, train, test."""
    console = run_console(quiet=quiet, stderr=True)  # progress; quiet: train.log alone
    results = run_console(quiet=quiet)  # the test line
    config = config.model_copy(update={"data": config.data.absolute()})  # what config.yaml holds
    if config.training.num_threads is not None:
        torch.set_num_threads(config.training.num_threads)
    checkpoint = None
    if resume is not None:  # every check before a file of the run (or TensorBoard's) is written
        checkpoint = _checkpoint_to_resume(resume, config)
    splits, normalizer = _load_data(config, resume, checkpoint, dist, console)
    if resume is not None and checkpoint is not None:  # every refusal is behind: it goes ahead
        console.print(
            f"resuming {resume} from checkpoints/last.pt "
            f"(epoch {checkpoint['epoch']} of {config.training.num_epochs})",
            highlight=False,
        )
    train_data, valid_data = map(normalizer.transform_data, (splits.train, splits.valid))
    model, loss_fn, loader = _build_training(config, train_data, dist)
    note = _ResumeNote(
        config.training.num_epochs,
        config.tracking.mlflow,
        writer=dist.is_main,
        dist=dist,
    )
    with note, contextlib.ExitStack() as held:
        run = note.run = _start_run(config, resume, dist, note, held, on_run_dir)
        with run:
            _open_run(run, config, normalizer, trackers, mlflow_tags)
            if checkpoint is not None and dist.is_main:
                _restore_best_checkpoint(run, checkpoint)
            meta = {
                "config": config.resolved(),
                "normalizer": normalizer.to_dict(),
                "n_features": train_data.n_features,
                "data": splits.files,  # what a resume must find again
            }
            result = train(
                model,
                loss_fn,
                Loaders(train=loader, valid=valid_data),
                config.training,
                run,
                evaluation=config.evaluation,
                meta=meta,
                resume_from=checkpoint,
                device=device,
                quiet=quiet,
                dist=dist,
            )
            if dist.is_main:  # rank 0 tests the best epoch and writes the report
                _test_and_finish(run, model, result, config, splits, normalizer, device, results)
    return run.dir


def _checkpoint_to_resume(resume: Path, config: ExperimentConfig) -> dict[str, Any]:
    """The resumed run's ``last.pt``, once the config may continue it and epochs are left."""
    checkpoint = load_checkpoint(last_checkpoint(resume))
    _check_resumable(resume, checkpoint["config"], config.resolved())
    if (resume / "metrics.json").is_file():  # else it stopped before its test: finish that
        _check_epochs_left(checkpoint, config.training)
    return checkpoint


def _load_data(
    config: ExperimentConfig,
    resume: Path | None,
    checkpoint: Mapping[str, Any] | None,
    dist: Distributed,
    console: Console,
) -> tuple[Splits, Normalizer]:
    """The splits and their normalizer: fitted on train, or the resumed run's own (after
    checking that its data files are the ones it was trained on)."""
    splits = load_splits(  # a resume hashes on every rank: each must take the same decision
        config.data,
        console=console,
        resuming=resume is not None,
        record_files=dist.is_main or resume is not None,
        gain=config.evaluation.gain,
        early_stopping_metric=config.training.early_stopping_metric,
    )
    if checkpoint is None:
        return splits, Normalizer(config.data.normalization).fit(splits.train)
    assert resume is not None and splits.files is not None
    _check_same_data_files(resume, checkpoint.get("data"), splits.files)
    check_feature_count(checkpoint, splits.train.n_features, "the training data")
    return splits, Normalizer.from_dict(checkpoint["normalizer"], source=str(resume))


def _build_training(
    config: ExperimentConfig, train_data: LetorData, dist: Distributed
) -> tuple[torch.nn.Module, LossFn, BatchLoader]:
    """The seeded scorer, the loss and this rank's loader of the (normalized) training data."""
    training = config.training
    torch.manual_seed(training.seed)  # on every rank: the weights start identical
    model = build_model(config.model.name, train_data.n_features, **config.model.params)
    fit_input_encodings(model, train_data.features)  # the same on every rank: all of train
    loss_fn = build_loss(config.loss.name, config.loss.params)
    dataset = QueryDataset(
        train_data,
        max_list_length=config.data.max_list_length,
        list_sampling=config.data.list_sampling,
    )
    loader = shard_loader(  # this rank's shard, batch_size // world_size queries per batch
        dataset,
        dist,
        batch_size=training.batch_size,
        seed=training.seed,
        bucket_by_length=training.bucket_by_length,
    )
    return model, loss_fn, loader


def _open_run(
    run: Run,
    config: ExperimentConfig,
    normalizer: Normalizer,
    trackers: Sequence[Tracker],
    mlflow_tags: Mapping[str, str] | None,
) -> None:
    """Attach the trackers and write what the run is: ``config.yaml``, ``preprocessor.json``
    and the params."""
    attach_mlflow(run, config, tags=mlflow_tags)
    run.trackers.extend(trackers)
    run.write_text("config.yaml", config.to_yaml())
    run.write_json("preprocessor.json", normalizer.to_dict())
    run.log_params(config.resolved())


def _test_and_finish(
    run: Run,
    model: torch.nn.Module,
    result: TrainResult,
    config: ExperimentConfig,
    splits: Splits,
    normalizer: Normalizer,
    device: torch.device,
    results: Console,
) -> None:
    """Test the best epoch's weights and end the run: ``test_per_query.tsv``, ``metrics.json``
    and the final MLflow numbers (:meth:`Run.finish`); the test line goes to ``results``.

    Raises:
        LtrError: ``best.pt`` holds another epoch than the run's best one.
    """
    best = load_checkpoint(result.best_checkpoint)
    if best["epoch"] != result.best_epoch:
        raise LtrError(
            f"{result.best_checkpoint} holds epoch {best['epoch']}, not the run's best epoch "
            f"{result.best_epoch}, whose weights are gone; it cannot be tested: train a new run"
        )
    model.load_state_dict(best["model"])
    best_record = next(r for r in result.history if r["epoch"] == result.best_epoch)
    report: dict[str, Any] = {
        "best_epoch": result.best_epoch,
        "epochs": result.epochs,
        "stopped_early": result.stopped_early,
        "early_stopping_metric": config.training.early_stopping_metric,
        "valid": {
            key.removeprefix("valid_"): value
            for key, value in best_record.items()
            if key.startswith("valid_")
        },
        "valid_from_train": splits.valid_from_train,
        "conventions": {
            "gain": config.evaluation.gain,
            "no_relevant": config.evaluation.no_relevant,
        },
        "test": None,
        "data": splits.files,
    }
    if splits.test is not None:
        test_data = normalizer.transform_data(splits.test)
        scores = score_data(model, test_data, batch_size=config.training.batch_size, device=device)
        report["test"], per_query = report_test_metrics(test_data, scores, config)
        report["test_queries"] = test_data.n_queries
        run.write_table("test_per_query.tsv", {"qid": test_data.query_ids, **per_query})
        shown = ", ".join(f"{k}={v:.4f}" for k, v in report["test"].items() if "[" not in k)
        results.print(f"Test (best epoch {result.best_epoch}): {shown}", highlight=False)
    final: dict[str, float] = {"best/epoch": result.best_epoch or 0}
    final.update({f"best/valid/{k}": v for k, v in report["valid"].items()})
    final.update({f"test/{k}": v for k, v in (report["test"] or {}).items()})
    run.finish(report, final, result.best_epoch or 0, RUN_ARTIFACTS)


def _restore_best_checkpoint(run: Run, last: Mapping[str, Any]) -> None:
    """Rewrite ``best.pt`` from the resumed ``last.pt`` when a stop came between the two
    writes of the best epoch (``last.pt`` is written first): ``last.pt`` then holds the best
    epoch, and ``best.pt`` is missing or holds an earlier one."""
    best_epoch = last["state"]["best_epoch"]
    if best_epoch is None or last["epoch"] != best_epoch:
        return
    path = run.checkpoint_path("best")
    if not path.is_file() or load_checkpoint(path)["epoch"] != best_epoch:
        logger.info("%s: rewritten from checkpoints/last.pt, which holds the best epoch", path)
        run.save_checkpoint("best", last)


def _lock_resumed_run(
    resume: Path | None, dist: Distributed
) -> contextlib.AbstractContextManager[None]:
    """The resumed run's :func:`training_lock`, taken before any work (new runs take theirs in
    :func:`_start_run`)."""
    if resume is None:
        return contextlib.nullcontext()
    return training_lock(resume, rank=dist.rank)


def _start_run(
    config: ExperimentConfig,
    resume: Path | None,
    dist: Distributed,
    note: _ResumeNote,
    held: contextlib.ExitStack,
    on_run_dir: Callable[[Path], None] | None,
) -> Run:
    """The run directory, new or reopened, named to ``note`` and (a new one, on rank 0) to
    ``on_run_dir`` as soon as it exists, before the trackers start; a new one is locked in
    ``held`` (:func:`training_lock`) as soon as it exists. On rank 0 the console is copied to
    its ``train.log`` (:func:`log_console_to`) from then on."""
    if resume is not None:  # run_experiment named it to on_run_dir at once
        note.run_dir = resume
        if dist.is_main:  # every refusal is behind: this session goes into the run's log
            held.enter_context(log_console_to(resume / LOG_FILE, resumed=True))
        return Run.open(resume, rank=dist.rank, tensorboard=config.tracking.tensorboard)
    check_mlflow(config, rank=dist.rank)  # a bad store fails before the run dir exists
    made = None
    if dist.is_main:
        with deferred_interrupts():  # a directory made is a directory the note and user know
            output_dir = config.tracking.output_dir.resolve()  # printed paths: absolute
            made = note.run_dir = Run.make_dir(output_dir, config.experiment.name)
            held.enter_context(training_lock(made))
            if on_run_dir is not None:
                on_run_dir(made)
            held.enter_context(log_console_to(made / LOG_FILE))
    note.run_dir = Path(dist.broadcast_object(str(made)))  # rank 0 named and created it
    return Run(note.run_dir, rank=dist.rank, tensorboard=config.tracking.tensorboard)


@dataclass
class _ResumeNote:
    """On Ctrl-C or SIGTERM inside it, note on the interruption what the run keeps and how to
    continue it (the CLI prints the notes in its closing line); ``run_dir`` is set once the
    directory exists, ``run`` once its trackers run (the writer, rank 0, notes). A torchrun
    job (``dist``) is continued with torchrun, as many machines and processes per machine
    (:attr:`Distributed.launcher`)."""

    num_epochs: int
    mlflow: bool
    writer: bool
    dist: Distributed
    run_dir: Path | None = None
    run: Run | None = None

    def __enter__(self) -> _ResumeNote:
        return self

    def __exit__(self, exc_type: Any, stop: BaseException | None, traceback: Any) -> None:
        if isinstance(stop, KeyboardInterrupt) and self.writer and self.run_dir is not None:
            stop.add_note(self.text())

    def text(self) -> str:
        """What the stop left in ``run_dir``."""
        assert self.run_dir is not None
        if self.run is not None and self.run.finished:  # the stop came while the run ended
            mirror = read_run_file(self.run_dir) if self.mlflow else None
            mirrored = ""
            if mirror is not None:
                mirrored = f", MLflow run {mirror['run_id']} FINISHED with every file"
            return (
                f"{self.run_dir} finished before the stop took effect: metrics.json "
                f"written{mirrored}; nothing to resume"
            )
        last = self.run_dir / "checkpoints" / "last.pt"
        if not last.is_file():
            return (
                f"{self.run_dir} holds no checkpoint (stopped before its first epoch ended); "
                "nothing to resume: delete it"
            )
        try:
            epoch = load_checkpoint(last)["epoch"]
        except LtrError:  # cannot happen with atomic writes; the hint must not hide the stop
            epoch = "?"
        where = " on every machine, with the job's rendezvous options" * (self.dist.nodes > 1)
        return (
            f"{self.run_dir}: checkpoints/last.pt holds epoch {epoch} of {self.num_epochs}; "
            f"continue with: {self.dist.launcher} train --resume {shlex.quote(str(self.run_dir))}"
            f"{where}"
        )


def report_test_metrics(
    data: LetorData, scores: np.ndarray, config: ExperimentConfig
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Test metrics of ``scores``: means and per-query values, by metric name.

    Holds :data:`TEST_METRICS`, ``evaluation.metrics`` and ``training.early_stopping_metric``
    (the model was picked by it, so its test value belongs beside the validation one) under the
    configured conventions, in that order, plus ``ndcg@10[no_relevant=<policy>]`` for each of
    :data:`NO_RELEVANT_POLICIES`, :data:`LETOR_NDCG10` (the official LETOR 4.0 script's
    NDCG@10) and the metrics the promotion gate reads (``promotion.metric`` and
    ``promotion.min_metrics``), so every run can be gated on what its config names.
    :data:`LETOR_NDCG10` is left out where its exp2 gain overflows (labels of 1024 and above,
    trained with ``evaluation.gain=linear``): no config asked for it.
    """
    evaluation = config.evaluation
    fixed = [f"ndcg@10[no_relevant={policy}]" for policy in NO_RELEVANT_POLICIES]
    largest = float(data.labels.max()) if data.n_docs else 0.0
    if not gain_overflows(largest, PRESETS["letor"]["gain"]):
        fixed.append(LETOR_NDCG10)
    wanted = [*TEST_METRICS, *validation_metrics(evaluation, config.training)]
    wanted += [*fixed, *config.promotion.metric_names]
    by_conventions: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for name in dict.fromkeys(wanted):
        by_conventions.setdefault(tuple(split_report_name(name)[1].items()), []).append(name)
    means: dict[str, float] = {}
    per_query: dict[str, np.ndarray] = {}
    for conventions, names in by_conventions.items():
        settings = dict(conventions)
        if "preset" not in settings:  # a bracket changes one convention of the configured ones
            settings = {"gain": evaluation.gain, "no_relevant": evaluation.no_relevant} | settings
        bases = [split_report_name(name)[0] for name in names]
        result = evaluate_scores(data, scores, list(dict.fromkeys(bases)), **settings)
        for name, base in zip(names, bases, strict=True):
            means[name], per_query[name] = result.means[base], result.per_query[base]
    return means, per_query


def resolve_data_paths(cfg: DataConfig, *, resuming: bool = False) -> DataPaths:
    """Training, validation and test files: explicit paths first, then the files in ``root``.

    ``resuming``: the data belongs to an existing run, so a missing folder is not a hint to
    create data.

    Raises:
        DataNotFoundError: a named file, the root, or the training file in it is missing.
    """
    found: dict[str, Path | None] = {}
    root = cfg.root
    if root is not None and not root.is_dir():
        raise DataNotFoundError(
            f"data.root {root} is not a folder; {_missing_root_hint(root, resuming)}"
        )
    for split in ("train", "valid", "test"):
        explicit: Path | None = getattr(cfg, split)
        if explicit is not None:
            if not explicit.is_file():
                raise DataNotFoundError(f"data.{split}: file {explicit} {missing_file(explicit)}")
            found[split] = explicit
        elif root is not None:
            found[split] = find_data_file(root, split)
        else:
            found[split] = None
    train_path = found["train"]
    if train_path is None:
        assert root is not None  # DataConfig needs data.train or data.root
        raise DataNotFoundError(_missing_training_file(root))
    return DataPaths(train=train_path, valid=found["valid"], test=found["test"])


def _missing_training_file(root: Path) -> str:
    """What is wrong with a ``data.root`` without a training file, and what to do about it."""
    looked = f"looked for {', '.join(FILE_NAMES['train'])}"
    held = [path.name for path in data_files_in(root)]
    if held:  # ltr data synth refuses a folder of data files: say what is missing instead
        return (
            f"data.root {root} holds {', '.join(held)} but no training file ({looked}); add "
            "the training file or point data.root at a folder that holds one"
        )
    return (
        f"data.root {root} holds no training file ({looked}); create one with "
        f"`ltr data synth --out {root}`"
    )


def _missing_root_hint(root: Path, resuming: bool) -> str:
    """What to do about a ``data.root`` that is not a folder."""
    if resuming:
        if root.is_absolute():
            return "a resumed run reads the data it was trained on; restore that folder"
        # runs made before data paths were stored absolute
        return (
            f"a resumed run reads the data it was trained on, here relative to {Path.cwd()}; "
            "resume from the folder the run was trained in"
        )
    try:
        siblings = [path.name for path in root.parent.iterdir() if path.is_dir()]
    except OSError:  # the parent is missing or unreadable: nothing to compare with
        siblings = []
    # a misspelt fold (fold1 for Fold1) must not be answered with "make data there"
    similar = closest_hint(root.name, siblings, prefix=f"{root.parent}{os.sep}")
    if similar:
        return similar.removeprefix("; ")
    return (
        f"create synthetic data with `ltr data synth --out {root}` or point data.root at a "
        "LETOR fold"
    )


def load_splits(
    cfg: DataConfig,
    *,
    console: Console | None = None,
    resuming: bool = False,
    record_files: bool = False,
    gain: str = "exp2",
    early_stopping_metric: str | None = None,
) -> Splits:
    """Read the data of :func:`resolve_data_paths`; split train by query if there is no valid.

    Validation and test files are read with the training file's feature count. With
    ``record_files`` (the process that writes ``metrics.json``), :attr:`Splits.files` describes
    each file read, right after reading it. With ``early_stopping_metric`` (a run that trains)
    the validation queries must hold a relevant document.

    Raises:
        ConfigError: the validation file is the test file or the training file (the same
            path, or the same bytes): it would pick the epoch on queries that are not held out;
            or (``early_stopping_metric``) no validation document has a label above 0, so the
            metric would be the same (or NaN) every epoch and could not pick one.
        DataFormatError: the training file has no features, or a label of an evaluated file
            (validation, test, or train when validation is carved from it) overflows ``gain``
            (``evaluation.gain``) in NDCG: refused before any epoch, not at the test.
    """
    paths = resolve_data_paths(cfg, resuming=resuming)
    _refuse_validation_on_other_splits(paths)
    train_data = load_letor(paths.train)
    if train_data.n_features == 0:  # before vali/test are read with its width, 0
        raise DataFormatError(paths.train, None, NO_FEATURES)
    width, train_file = train_data.n_features, f"the training file {paths.train.name}"
    test = None if paths.test is None else load_letor(paths.test, n_features=width)
    if test is None:  # with or without a validation file
        logger.warning("no test file: metrics.json will hold validation numbers only")
    valid_file = None if paths.valid is None else load_letor(paths.valid, n_features=width)
    evaluated = {paths.test: test, paths.valid: valid_file}
    if valid_file is None:  # validation queries come from train
        evaluated[paths.train] = train_data
    for path, data in evaluated.items():
        if data is not None:
            fix = "use the linear gain: --set evaluation.gain=linear"
            refuse_gain_overflow(data, TEST_METRICS, fix, where=path, gain=gain)
    for read in (valid_file, test):
        if read is not None:
            warn_if_narrower(read, train_file)
    files = None
    if record_files:
        files = _describe_files(paths, {"train": train_data, "valid": valid_file, "test": test})
    if valid_file is not None:
        where = f"{paths.valid}: no validation query has a relevant document"
        _refuse_unrelevant(
            valid_file, early_stopping_metric, where, "use a validation file with relevance labels"
        )
        return Splits(train_data, valid_file, test, valid_from_train=False, files=files)
    train_part, valid = split_by_query(train_data, cfg.valid_fraction, seed=cfg.split_seed)
    where = (
        f"the {valid.n_queries} validation queries split from {paths.train} "
        f"(data.valid_fraction={cfg.valid_fraction}, data.split_seed={cfg.split_seed}): none "
        "has a relevant document"
    )
    fix = "raise data.valid_fraction, change data.split_seed or add a validation file"
    _refuse_unrelevant(valid, early_stopping_metric, where, fix)
    name = train_data.source or "the training data"  # warnings name what they are about
    train_part = replace(train_part, source=name)
    valid = replace(valid, source=f"the validation queries of {name}")
    if files is not None:  # no file of its own: say how it was carved from train
        files["valid"] = {
            "split_from": "train",
            "valid_fraction": cfg.valid_fraction,
            "split_seed": cfg.split_seed,
            "queries": valid.n_queries,
            "documents": valid.n_docs,
        }
    message = (
        f"No validation file: validating on {valid.n_queries} of {train_data.n_queries} training "
        f"queries (data.valid_fraction={cfg.valid_fraction}, split by query, "
        f"data.split_seed={cfg.split_seed})"
    )
    logger.info(message)
    if console is not None:
        console.print(message, highlight=False)
    return Splits(train_part, valid, test, valid_from_train=True, files=files)


def _refuse_validation_on_other_splits(paths: DataPaths) -> None:
    """Refuse a validation file that is the test or the training file: the same path, or a copy
    (the same size, then the same sha256; files of different sizes are never hashed)."""
    if paths.valid is None:
        return
    for field, other, split in (
        ("data.test", paths.test, "test"),
        ("data.train", paths.train, "training"),
    ):
        if other is None:
            continue
        if paths.valid.resolve() == other.resolve():
            same = f"data.valid and {field} are the same file {other}"
        elif same_bytes(paths.valid, other):
            same = f"data.valid {paths.valid} holds the same bytes as {field} {other}"
        else:
            continue
        raise ConfigError(
            f"{same}: the epoch would be picked on the {split} queries; use a validation file "
            "of other queries"
        )


def _refuse_unrelevant(valid: LetorData, metric: str | None, where: str, fix: str) -> None:
    """Refuse validation data without a document labelled above 0 (every metric's relevant
    one) when an early-stopping ``metric`` must pick an epoch on it."""
    if metric is not None and not (valid.labels > 0).any():
        raise ConfigError(
            f"{where} (every label is 0), so training.early_stopping_metric {metric} would be "
            f"the same (or NaN) every epoch and could not pick one; {fix}"
        )


def _describe_files(paths: DataPaths, read: Mapping[str, LetorData | None]) -> dict[str, Any]:
    """``metrics.json["data"]``: :func:`describe_data` of each split's file, None for a split
    without one; each file is hashed once, even when it serves two splits, and a gzip file's
    decompressed text in the same pass (``content_sha256``)."""
    digests: dict[Path, tuple[str, str | None]] = {}
    files: dict[str, Any] = {}
    for split, data in read.items():
        path: Path | None = getattr(paths, split)
        if path is None or data is None:
            files[split] = None
            continue
        resolved = path.resolve()
        if resolved not in digests:  # a gzip file's text is hashed in the same pass
            digests[resolved] = file_digests(resolved)
        sha256, content = digests[resolved]
        files[split] = describe_data(path, data, sha256=sha256, content=content)
    return files


def resolve_device(name: str | torch.device, field: str = "training.device") -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda`` must be available.

    Args:
        name: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (as ``training.device`` takes them), or
            a ``torch.device`` of type cpu or cuda.
        field: what the error messages call the value.

    Raises:
        ConfigError: any other name (``mps``, ``xpu``, ``meta``, ``gpu``), or ``cuda`` asked
            for but not available, or a ``cuda:N`` beyond the visible GPUs.
    """
    text = str(name) if isinstance(name, torch.device) else name
    if not isinstance(text, str) or re.fullmatch(DEVICE_PATTERN, text) is None:
        raise ConfigError(f"{field} {DEVICE_RULE}; got {name!r}")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(text)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{field}: cuda is not available here; use cpu or auto")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ConfigError(f"{field}: {text} is not a visible GPU; this machine shows {count}")
    return device


def check_resume_dir(run_dir: Path) -> None:
    """Refuse, saying what it is instead, a folder ``ltr train --resume`` cannot continue.

    Raises:
        DataNotFoundError: ``run_dir`` does not exist.
        ConfigError: it is a cv directory (``ltr cv --resume`` continues it) or an ensemble run
            (nothing was trained, so nothing can be resumed).
    """
    if not run_dir.exists():
        raise DataNotFoundError(f"cannot resume {run_dir}: it does not exist")
    if (run_dir / CV_FILE).is_file():
        raise ConfigError(
            f"{run_dir} is a cv directory: use ltr cv --resume {shlex.quote(str(run_dir))}"
        )
    config = run_dir / "config.yaml"
    if config.is_file() and _model_name(config) == "ensemble":
        raise ConfigError(
            f"{run_dir} is an ensemble (ltr ensemble): it averages trained runs and was not "
            "trained itself, so there is nothing to resume"
        )


def last_checkpoint(run_dir: Path) -> Path:
    """``run_dir``'s ``checkpoints/last.pt``, what a resume continues from.

    Raises:
        DataNotFoundError: there is none (not a run directory).
    """
    path = run_dir / "checkpoints" / "last.pt"
    if not path.is_file():
        raise DataNotFoundError(
            f"cannot resume {run_dir}: expected a run directory holding checkpoints/last.pt"
        )
    return path


def _model_name(config_file: Path) -> Any:
    try:
        raw = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):  # load_config reports a broken file properly
        return None
    return raw.get("model", {}).get("name") if isinstance(raw, dict) else None


def load_run_config(run_dir: str | Path, overrides: Iterable[str] = ()) -> ExperimentConfig:
    """The config of an existing run (its ``config.yaml``) with ``--set`` overrides applied.

    For ``ltr train --resume RUN_DIR --set training.num_epochs=100``.
    """
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise DataNotFoundError(f"{run_dir} has no config.yaml; is it a run directory?")
    return load_config(path, overrides)


def _check_same_data_files(
    run_dir: Path, recorded: Mapping[str, Any] | None, now: Mapping[str, Any]
) -> None:
    """Refuse to resume on a data file edited since the run started: its epochs so far saw other
    bytes than the ones ``metrics.json["data"]`` would record (checkpoints before ltr recorded
    files pass)."""
    for split, then in (recorded or {}).items():
        sha256_then = (then or {}).get("sha256")
        sha256_now = (now.get(split) or {}).get("sha256")
        if sha256_then is not None and sha256_now != sha256_then:
            raise ConfigError(
                f"cannot resume {run_dir}: its {split} file {then['path']} changed since the run "
                f"started (sha256 {sha256_then[:12]} then, {(sha256_now or 'none')[:12]} now); "
                "restore that file or train a new run"
            )


def _check_epochs_left(checkpoint: Mapping[str, Any], training: TrainingConfig) -> None:
    """Refuse a resume of a finished run that would train no epoch (and so must not rewrite
    the run's files)."""
    state = checkpoint["state"]
    done, since_best = state["epoch"], state["epochs_since_best"]
    if state["stopped_early"] and since_best > training.early_stopping_patience:
        old = checkpoint["config"]["training"]["early_stopping_patience"]
        raise ConfigError(
            f"run stopped early at epoch {done} (best {state['best_epoch']}) with patience {old}; "
            f"raise training.early_stopping_patience to {since_best} or more to continue"
        )
    if done >= training.num_epochs:
        raise ConfigError(
            f"already trained {done} epochs; training.num_epochs={training.num_epochs} leaves "
            f"none to train; raise training.num_epochs to continue"
        )


def same_paths(items: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted config items with the data paths resolved, to compare runs made in other folders
    (runs before paths were stored absolute hold them relative to where they were trained)."""
    return {
        key: str(Path(value).resolve()) if key in DATA_PATHS and value is not None else value
        for key, value in items.items()
    }


def config_changes(
    stored: Mapping[str, Any], wanted: Mapping[str, Any], *, allowed: tuple[str, ...] = ()
) -> list[str]:
    """The dotted fields in which two resolved configs differ, except those starting with one of
    ``allowed``; a data path may be spelled differently if it resolves to the same file."""
    before, after = same_paths(dotted_items(stored)), same_paths(dotted_items(wanted))
    return [
        key
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key) and not key.startswith(allowed)
    ]


def _check_resumable(run_dir: Path, stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
    """Refuse to resume with a config that changes more than :data:`RESUMABLE_CHANGES`, or
    that changes ``training.num_epochs`` of a cosine schedule (its length)."""
    changed = config_changes(stored, wanted, allowed=RESUMABLE_CHANGES)
    if changed:
        raise ConfigError(
            f"cannot resume {run_dir}: the config differs from the run's in {', '.join(changed)}; "
            f"only {', '.join(RESUMABLE_CHANGES)} may change"
        )
    before, after = stored["training"], wanted["training"]
    if after["scheduler"]["name"] == "cosine" and before["num_epochs"] != after["num_epochs"]:
        # the rates of the epochs done followed the old length; a new one cannot continue them
        raise ConfigError(
            f"cannot resume {run_dir}: training.num_epochs cannot change ({before['num_epochs']} "
            f"to {after['num_epochs']}) with training.scheduler cosine: the cosine schedule spans "
            "num_epochs, so a resume cannot continue it; start a new run"
        )
