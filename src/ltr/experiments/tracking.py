"""The run directory of one experiment, and the trackers that mirror its numbers.

A :class:`Run` owns ``<output_dir>/<YYYYmmdd-HHMMSS>-<name>/``; every file a training run writes
goes through it (``config.yaml``, ``preprocessor.json``, ``training_history.json``,
``metrics.json``, ``test_per_query.tsv``, ``checkpoints/{best,last}.pt``, ``tensorboard/``).
Beside them, ``train.lock`` (:func:`training_lock`) is flock-held while a process trains the
run, the holder's pid inside.
Numbers are also sent to the run's trackers: TensorBoard here, MLflow in
:mod:`ltr.experiments.mlflow_tracker`, and ``ltr tune``'s pruning reporter; the trainer only
ever talks to the :class:`Run`.

Every call into a tracker runs whole (:func:`ltr._signals.deferred_interrupts`): Ctrl-C or
SIGTERM during one takes effect when it returns, so a store is never left mid-write. The end of
a run, :meth:`Run.finish` (``metrics.json``, the final numbers, the files, the trackers closed),
runs whole as one: a run with a ``metrics.json`` is complete in its trackers too.

A tracker may end a run early on purpose by raising :class:`RunStopped` from ``log_metrics``
(``ltr tune`` prunes a hopeless trial that way); the exception propagates out of the trainer
and every tracker is closed with it, so MLflow records the run as killed rather than failed.

Distributed training: only rank 0 writes. A run built with ``rank > 0`` has the same methods,
and each of them does nothing, so the trainer calls them unconditionally.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from ltr._fs import (
    atomic_open,
    atomic_write_json,
    atomic_write_text,
    exclusive_lock,
    make_folder,
)
from ltr._signals import deferred_interrupts
from ltr.errors import BusyError, DataNotFoundError, MissingExtraError, WriteError

__all__ = [
    "TRAINING_LOCK",
    "Run",
    "RunStopped",
    "TensorBoardTracker",
    "Tracker",
    "json_safe",
    "training_lock",
]

TRAINING_LOCK = "train.lock"  # in a run or cv directory while a process trains it


logger = logging.getLogger(__name__)


class RunStopped(Exception):
    """Raised by a tracker to end a run early on purpose (a pruned ``ltr tune`` trial)."""


class Tracker(Protocol):
    """Where a run mirrors its parameters, per-epoch numbers and files (TensorBoard, MLflow, ...).

    ``close`` gets the exception that ended the run, if any (None: it finished).
    """

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record the resolved config (nested sections); called once, at the start."""
        ...

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record one epoch's numbers (``train/loss``, ``valid/ndcg@10``, ...) at ``step``."""
        ...

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        """Copy the run's file ``path``, under ``folder`` (None: top level), e.g. a checkpoint."""
        ...

    def close(self, error: BaseException | None = None) -> None:
        """End the run: ``error`` is the exception that ended it, None when it finished."""
        ...


class TensorBoardTracker:
    """Scalars in ``<run>/tensorboard`` as TensorBoard event files.

    Raises:
        MissingExtraError: tensorboard is not installed (it comes with the ``tracking`` extra).
    """

    def __init__(self, log_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # not installed, or older than torch accepts
            raise MissingExtraError(
                "tensorboard", "tracking", alternative="set tracking.tensorboard=false"
            ) from None
        self._writer = SummaryWriter(log_dir=str(log_dir))

    def log_params(self, params: Mapping[str, Any]) -> None:
        """TensorBoard shows the config as text; the run's ``config.yaml`` is the record."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """One scalar per name at ``step`` (the epoch), flushed so TensorBoard sees it live."""
        for name, value in metrics.items():
            self._writer.add_scalar(name, value, global_step=step)
        self._writer.flush()

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        """Files stay in the run directory; TensorBoard shows scalars only."""

    def close(self, error: BaseException | None = None) -> None:
        """Flush and close the event file; ``error`` changes nothing here."""
        self._writer.close()


class Run:
    """One experiment's directory and trackers; see the module docstring.

    Build it with :meth:`create` (a fresh, uniquely named directory) or :meth:`open` (an
    existing run, for ``--resume``). Use it as a context manager, or call :meth:`close`.

    Args:
        path: the run directory (must exist on rank 0).
        rank: this process's rank; only rank 0 writes.
        tensorboard: mirror metrics into ``<path>/tensorboard``.
    """

    def __init__(self, path: Path, *, rank: int = 0, tensorboard: bool = True) -> None:
        self.dir = Path(path)
        self.rank = rank
        self.trackers: list[Tracker] = []
        self.finished = False  # set by finish(): complete on disk and in every tracker
        if self.is_writer and tensorboard:
            try:
                self.trackers.append(TensorBoardTracker(self.dir / "tensorboard"))
            except MissingExtraError as error:  # as MLflow: the run goes on without it
                logger.warning("TensorBoard scalars are off: %s", error)

    @classmethod
    def create(
        cls,
        output_dir: str | Path,
        name: str,
        *,
        rank: int = 0,
        tensorboard: bool = True,
        now: datetime | None = None,
    ) -> Run:
        """A new run under ``output_dir`` named ``<YYYYmmdd-HHMMSS>-<name>``.

        A name already taken gets a suffix (``-2``, ``-3``, ...); the directory is created with
        ``exist_ok=False``, so two processes starting in the same second never share one.

        Raises:
            WriteError: ``output_dir`` cannot be created or written.
        """
        if rank == 0:
            path = cls.make_dir(output_dir, name, now=now)
        else:  # a placeholder: the caller takes rank 0's name
            path = Path(output_dir) / f"{(now or datetime.now()):%Y%m%d-%H%M%S}-{name}"
        return cls(path, rank=rank, tensorboard=tensorboard)

    @staticmethod
    def make_dir(output_dir: str | Path, name: str, *, now: datetime | None = None) -> Path:
        """Create and return ``<output_dir>/<YYYYmmdd-HHMMSS>-<name>`` (suffixed if taken): the
        first step of :meth:`create`, for callers that must know the directory before the
        trackers start (the TensorBoard import takes seconds, a window for Ctrl-C).

        Raises:
            WriteError: ``output_dir`` cannot be created or written.
        """
        stem = f"{(now or datetime.now()):%Y%m%d-%H%M%S}-{name}"
        path = Path(output_dir) / stem
        purpose = f"tracking.output_dir {output_dir}: cannot create a run directory"
        make_folder(Path(output_dir), purpose=purpose)
        suffix = 1
        while True:
            try:
                path.mkdir()
                return path
            except FileExistsError:
                suffix += 1
                path = Path(output_dir) / f"{stem}-{suffix}"
            except OSError as error:
                raise WriteError(f"{purpose} in it ({error.strerror})") from None

    @classmethod
    def open(cls, path: str | Path, *, rank: int = 0, tensorboard: bool = True) -> Run:
        """An existing run directory, to resume it.

        Raises:
            DataNotFoundError: no such directory, or it holds no ``checkpoints/last.pt``.
        """
        path = Path(path)
        if not (path / "checkpoints" / "last.pt").is_file():
            raise DataNotFoundError(
                f"cannot resume {path}: expected a run directory holding checkpoints/last.pt"
            )
        return cls(path, rank=rank, tensorboard=tensorboard)

    @property
    def is_writer(self) -> bool:
        """True on the process that writes files (rank 0)."""
        return self.rank == 0

    def checkpoint_path(self, name: str) -> Path:
        """``<run>/checkpoints/<name>.pt``."""
        return self.dir / "checkpoints" / f"{name}.pt"

    def save_checkpoint(self, name: str, checkpoint: Mapping[str, Any]) -> None:
        """Write ``checkpoints/<name>.pt`` atomically (rank 0 only)."""
        from ltr.training.checkpoint import save_checkpoint  # training imports this module

        if self.is_writer:
            save_checkpoint(self.checkpoint_path(name), checkpoint)

    def write_json(self, name: str, obj: Any) -> None:
        """Write ``<run>/<name>`` as JSON, atomically; NaN and inf become null (rank 0 only)."""
        if self.is_writer:
            atomic_write_json(self.dir / name, json_safe(obj))

    def write_text(self, name: str, text: str) -> None:
        """Write ``<run>/<name>`` atomically (rank 0 only)."""
        if self.is_writer:
            atomic_write_text(self.dir / name, text)

    def write_table(self, name: str, columns: Mapping[str, Any]) -> None:
        """Write equal-length columns as a tab-separated file with a header (rank 0 only)."""
        if not self.is_writer:
            return
        values = list(columns.values())
        with atomic_open(self.dir / name) as handle:
            handle.write("\t".join(columns) + "\n")
            for row in zip(*values, strict=True):
                handle.write("\t".join(_cell(v) for v in row) + "\n")

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Send the resolved config to every tracker (rank 0 only)."""
        for tracker in self.trackers:
            with deferred_interrupts():  # a store write cut in half stays locked
                tracker.log_params(params)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Send one epoch's numbers (``train/loss``, ``valid/ndcg@10``, ...) to every tracker."""
        for tracker in self.trackers:
            with deferred_interrupts():
                tracker.log_metrics(metrics, step)

    def log_artifacts(self, names: Iterable[str]) -> None:
        """Send the run's files ``names`` (relative paths; missing ones skipped) to every tracker.

        A file in a subfolder keeps it: ``checkpoints/best.pt`` goes to ``checkpoints/``.
        """
        for name in names:
            path = self.dir / name
            if not path.is_file():
                continue
            folder = Path(name).parent.as_posix()
            for tracker in self.trackers:
                with deferred_interrupts():
                    tracker.log_artifact(path, None if folder == "." else folder)

    def finish(
        self,
        report: Mapping[str, Any],
        metrics: Mapping[str, float],
        step: int,
        artifacts: Iterable[str],
    ) -> None:
        """End a run that is complete on disk: write ``metrics.json`` (``report``), send the
        final ``metrics`` and the files ``artifacts`` to every tracker, close them (MLflow:
        FINISHED).

        A stop meanwhile takes effect once all of it is done, so a run never ends with its
        numbers written and its tracker runs killed halfway through the upload. The wait is
        short: the files are a run's config, reports and one checkpoint (a second signal still
        ends the process at once). A stop before this leaves no ``metrics.json``; resuming the
        run then tests it again.
        """
        with deferred_interrupts():
            self.write_json("metrics.json", report)
            self.log_metrics(metrics, step)
            self.log_artifacts(artifacts)
            self.close()
            self.finished = True

    def close(self, error: BaseException | None = None) -> None:
        """Close every tracker; ``error`` is what ended the run (None: it finished)."""
        for tracker in self.trackers:
            with deferred_interrupts():
                tracker.close(error)
        self.trackers = []

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close(exc)


def training_lock(directory: Path, *, rank: int = 0) -> contextlib.AbstractContextManager[None]:
    """Hold ``<directory>/train.lock`` while training in it (rank 0 only: one per job), so a
    second ``ltr train --resume`` or ``ltr cv --resume`` of it is refused at once.

    Raises:
        BusyError: another process holds it.
    """
    if rank != 0:
        return contextlib.nullcontext()

    def busy(pid: int | None) -> BusyError:
        holder = "another process" if pid is None else f"another process (pid {pid})"
        return BusyError(f"{directory} is being trained by {holder}; wait for it to end or stop it")

    return exclusive_lock(directory / TRAINING_LOCK, busy=busy)


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN and infinite floats replaced by None (JSON has no NaN)."""
    if isinstance(obj, Mapping):
        return {key: json_safe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(value) for value in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _cell(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)
