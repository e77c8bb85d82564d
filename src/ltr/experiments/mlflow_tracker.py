"""Every training run is also an MLflow run: parameters, per-epoch metrics, final metrics, files.

:func:`attach_mlflow` adds an :class:`MLflowTracker` to a :class:`~ltr.experiments.Run` (rank 0
only); from then on the trainer's numbers reach MLflow through the run like any other tracker's.

Where runs go (first that is set):

1. ``tracking.mlflow_uri`` in the experiment config;
2. the ``MLFLOW_TRACKING_URI`` environment variable;
3. ``sqlite:///mlruns.db``: a SQLite database in the working directory, so nothing needs a
   server. A relative SQLite path is made absolute when the run starts. Artifacts of
   experiments this module creates in a SQLite store go to ``mlartifacts/<experiment name>/``
   beside the database file (MLflow alone would put them in ``./mlruns`` of whatever directory
   the process happens to run in). Browse with ``mlflow ui --backend-store-uri
   sqlite:///mlruns.db``. Processes open a SQLite store one at a time, holding a lock on
   ``<database>.lock`` beside it, so runs started together can create a new store.

A team points ``tracking.mlflow_uri`` (or the environment variable) at an MLflow server
(``http://mlflow.internal:5000``); the server then decides where artifacts live.

What a run holds: experiment = ``experiment.name``; run name = the run directory's name; tags
``ltr.run_dir`` (absolute path), ``ltr.version``, ``mlflow.source.git.commit`` (when the code
is a git checkout); parameters = the resolved config flattened to dotted keys
(``training.learning_rate``; lists as JSON); metrics per epoch (step = 1-based epoch)
``train/loss``, ``train/lr``, ``valid/<metric>``; at the end ``best/epoch``,
``best/valid/<metric>`` and ``test/<metric>`` (step = the best epoch); artifacts
:data:`RUN_ARTIFACTS`. The run directory gets ``mlflow.json`` (``tracking_uri``,
``experiment_id``, ``run_id``) so other tools find the MLflow run, and ``ltr train --resume``
continues the same MLflow run (in the store named there, whatever the config says now).

Metric names: MLflow allows only letters, digits and ``_ - . / : space``, so ltr's names are
mapped by :func:`mlflow_metric_name` (``@`` -> ``_at_``, ``=`` -> ``_eq_``, a bracketed suffix
``[x]`` -> ``.x``: ``valid/ndcg@10`` -> ``valid/ndcg_at_10``,
``test/ndcg@10[no_relevant=one]`` -> ``test/ndcg_at_10.no_relevant_eq_one``) and mapped back
by :func:`ltr_metric_name`. The mapping is exact for every name ltr produces (they contain
none of ``_at_``, ``_eq_`` or ``.``).

MLflow is imported lazily (it takes seconds), only when a run starts with tracking on. Without
it installed (the ``tracking`` extra), runs go on without MLflow after one warning. A store
that cannot be opened (a SQLite path under a file, a file that is no database, a server that
does not answer within :data:`PROBE_TIMEOUT_SECONDS`) is a :class:`ConfigError` naming the URI,
raised by :func:`check_mlflow` before ``ltr train`` creates the run directory.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import logging
import os
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltr._fs import exclusive_lock, read_json
from ltr._signals import deferred_interrupts
from ltr.config import dotted_items
from ltr.errors import ConfigError
from ltr.experiments.tracking import Run, RunStopped

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from ltr.config import ExperimentConfig

__all__ = [
    "DEFAULT_TRACKING_URI",
    "RUN_ARTIFACTS",
    "RUN_FILE",
    "MLflowTracker",
    "attach_mlflow",
    "check_mlflow",
    "ltr_metric_name",
    "mlflow_available",
    "mlflow_client",
    "mlflow_metric_name",
    "read_run_file",
    "resolve_tracking_uri",
]

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlruns.db"
ARTIFACT_FOLDER = "mlartifacts"  # beside a SQLite store's database file
RUN_FILE = "mlflow.json"
RUN_ARTIFACTS = (
    "config.yaml",
    "preprocessor.json",
    "training_history.json",
    "metrics.json",
    "test_per_query.tsv",
    "checkpoints/best.pt",
    "train.log",  # as it stands when the run finishes; runs of the Python API have none
)
_NAME_TOKENS = (("@", "_at_"), ("=", "_eq_"))
_MAX_PARAM_VALUE = 6000  # MLflow's limit on a parameter value's length
_PARAMS_PER_BATCH = 100  # MLflow's limits per log_batch call
_METRICS_PER_BATCH = 1000
# an MLflow server that does not answer this fast is unreachable: MLflow's own client retries
# for minutes (MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT) before failing
PROBE_TIMEOUT_SECONDS = 5.0


def mlflow_available() -> bool:
    """True when the ``mlflow`` package can be imported (without importing it)."""
    return importlib.util.find_spec("mlflow") is not None


def resolve_tracking_uri(configured: str | None = None) -> str:
    """The MLflow store: ``configured``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlruns.db``.

    A relative SQLite path becomes absolute (against the working directory), so the URI
    written to ``mlflow.json`` still works from anywhere.

    >>> resolve_tracking_uri("http://mlflow:5000")
    'http://mlflow:5000'
    """
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    database = _sqlite_path(uri)
    if database is not None and not database.is_absolute():
        return f"sqlite:///{database.resolve()}"
    return uri


def mlflow_metric_name(name: str) -> str:
    """ltr's metric name as MLflow accepts it; :func:`ltr_metric_name` undoes it.

    >>> mlflow_metric_name("test/ndcg@10[no_relevant=one]")
    'test/ndcg_at_10.no_relevant_eq_one'
    """
    stem, bracket, rest = name.partition("[")
    if bracket:
        stem = f"{stem}.{rest.removesuffix(']')}"
    for char, token in _NAME_TOKENS:
        stem = stem.replace(char, token)
    return stem


def ltr_metric_name(name: str) -> str:
    """The ltr name of an MLflow metric written by :class:`MLflowTracker`.

    >>> ltr_metric_name("valid/ndcg_at_10")
    'valid/ndcg@10'
    """
    for char, token in _NAME_TOKENS:
        name = name.replace(token, char)
    folder, slash, leaf = name.rpartition("/")
    stem, dot, suffix = leaf.partition(".")
    return f"{folder}{slash}{stem}[{suffix}]" if dot else name


def read_run_file(run_dir: str | Path) -> dict[str, str] | None:
    """The ``mlflow.json`` of a run directory (``tracking_uri``, ``experiment_id``, ``run_id``)."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return None
    info: dict[str, str] = read_json(path)
    return info


def check_mlflow(config: ExperimentConfig, *, rank: int = 0) -> None:
    """Open the MLflow store a new run of ``config`` will log to, and its experiment.

    Called before the run directory exists, so a bad store leaves nothing behind. Does nothing
    on ranks other than 0, with ``tracking.mlflow: false`` or without mlflow installed.

    Raises:
        ConfigError: ``tracking.mlflow_uri <uri>: <cause>`` when the store cannot be used.
    """
    if rank != 0 or not config.tracking.mlflow or not mlflow_available():
        return
    uri = resolve_tracking_uri(config.tracking.mlflow_uri)
    with _store_errors(uri), deferred_interrupts():
        get_or_create_experiment(mlflow_client(uri), uri, config.experiment.name)


def attach_mlflow(
    run: Run, config: ExperimentConfig, *, tags: Mapping[str, str] | None = None
) -> MLflowTracker | None:
    """Mirror ``run`` into MLflow: start (or, resuming, reopen) its MLflow run.

    Does nothing on ranks other than 0, with ``tracking.mlflow: false``, or without mlflow
    installed (one warning). Writes ``mlflow.json`` into the run directory.

    Args:
        run: the run directory and its trackers; the new tracker is appended.
        config: the experiment (``experiment.name``, ``tracking``).
        tags: extra MLflow tags, e.g. ``mlflow.parentRunId`` to nest the run under another
            (``ltr tune``) or ``mlflow.runName`` to name it.

    Returns:
        The tracker, or None when MLflow is off.
    """
    if not run.is_writer or not config.tracking.mlflow:
        return None
    if not mlflow_available():
        logger.warning(
            "MLflow tracking is off: mlflow is not installed; pip install 'ltr[tracking]' "
            "or set tracking.mlflow=false to silence this"
        )
        return None
    with deferred_interrupts():  # a run started is a run its Run will close
        tracker = _start_or_reopen(run, config, tags)
        run.trackers.append(tracker)
    run.write_json(RUN_FILE, tracker.info)
    return tracker


def _start_or_reopen(
    run: Run, config: ExperimentConfig, tags: Mapping[str, str] | None
) -> MLflowTracker:
    previous = read_run_file(run.dir)
    if previous is not None:  # ltr train --resume: the same MLflow run, in its own store
        return MLflowTracker.reopen(
            previous["tracking_uri"], previous["experiment_id"], previous["run_id"]
        )
    all_tags = {"ltr.run_dir": str(run.dir.resolve()), "ltr.version": _ltr_version()}
    commit = _git_commit()
    if commit is not None:
        all_tags["mlflow.source.git.commit"] = commit
    all_tags.update(tags or {})
    return MLflowTracker.start(
        resolve_tracking_uri(config.tracking.mlflow_uri),
        config.experiment.name,
        run_name=all_tags.pop("mlflow.runName", run.dir.name),
        tags=all_tags,
    )


class MLflowTracker:
    """A :class:`~ltr.experiments.tracking.Tracker` writing to one MLflow run.

    Build it with :meth:`start` (a new run) or :meth:`reopen` (an existing one).
    """

    def __init__(self, client: MlflowClient, tracking_uri: str, experiment_id: str, run_id: str):
        self.client = client
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.run_id = run_id

    @classmethod
    def start(
        cls,
        tracking_uri: str,
        experiment_name: str,
        *,
        run_name: str,
        tags: Mapping[str, str] | None = None,
    ) -> MLflowTracker:
        """A new MLflow run in ``experiment_name`` (created when missing).

        Raises:
            ConfigError: the store cannot be used (``tracking.mlflow_uri <uri>: <cause>``).
        """
        with _store_errors(tracking_uri):
            client = mlflow_client(tracking_uri)
            experiment_id = get_or_create_experiment(client, tracking_uri, experiment_name)
            created = client.create_run(experiment_id, run_name=run_name, tags=dict(tags or {}))
        return cls(client, tracking_uri, experiment_id, created.info.run_id)

    @classmethod
    def reopen(cls, tracking_uri: str, experiment_id: str, run_id: str) -> MLflowTracker:
        """An existing MLflow run, marked running again.

        Raises:
            ConfigError: the store cannot be used (``mlflow.json tracking_uri <uri>: <cause>``).
        """
        with _store_errors(tracking_uri, source="mlflow.json tracking_uri"):
            client = mlflow_client(tracking_uri)
            client.update_run(run_id, status="RUNNING")
        return cls(client, tracking_uri, experiment_id, run_id)

    @property
    def info(self) -> dict[str, str]:
        """What ``mlflow.json`` holds."""
        return {
            "tracking_uri": self.tracking_uri,
            "experiment_id": self.experiment_id,
            "run_id": self.run_id,
        }

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log ``params`` flattened to dotted keys; keys the run already has are left alone.

        MLflow forbids changing a parameter, and a resumed run may change a few fields (more
        epochs); the run's ``config.yaml`` artifact is the full record.
        """
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        # keys can hold metric names (promotion.min_metrics.ndcg@10): same mapping as metrics
        flat = {
            key: value
            for key, value in ((mlflow_metric_name(k), v) for k, v in dotted_items(params).items())
            if key not in existing
        }
        entries = [Param(key, _param_text(value)) for key, value in flat.items()]
        for chunk in _chunks(entries, _PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=chunk)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log ``metrics`` at ``step`` in batches, names as :func:`mlflow_metric_name` makes
        them (``valid/ndcg@10`` -> ``valid/ndcg_at_10``)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [
            Metric(mlflow_metric_name(name), float(value), now, step)
            for name, value in metrics.items()
        ]
        for chunk in _chunks(entries, _METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=chunk)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        """Upload ``path`` to the run's artifact store, under ``folder`` (None: top level)."""
        self.client.log_artifact(self.run_id, str(path), artifact_path=folder)

    def close(self, error: BaseException | None = None) -> None:
        """End the MLflow run: FINISHED, KILLED (stopped on purpose or interrupted), FAILED."""
        if error is None:
            status = "FINISHED"
        elif isinstance(error, RunStopped) or not isinstance(error, Exception):
            status = "KILLED"  # a pruned trial, Ctrl-C
        else:
            status = "FAILED"
        try:
            self.client.set_terminated(self.run_id, status=status)
        except Exception:
            if error is None:
                raise
            # the run already failed: its own error is the one to report
            logger.warning("could not mark MLflow run %s as %s", self.run_id, status)


def get_or_create_experiment(client: MlflowClient, tracking_uri: str, name: str) -> str:
    """The id of MLflow experiment ``name``, created when missing (safe against a race).

    In a SQLite store, a new experiment keeps its artifacts in ``mlartifacts/<name>/`` beside
    the database; elsewhere the store decides.

    Raises:
        ConfigError: the experiment exists but was deleted.
    """
    from mlflow.exceptions import MlflowException

    for _ in range(2):
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                raise ConfigError(
                    f"MLflow experiment {name!r} in {tracking_uri} is deleted; restore it "
                    "(`mlflow experiments restore`) or choose another experiment.name"
                )
            return str(experiment.experiment_id)
        database = _sqlite_path(tracking_uri)
        location = None
        if database is not None:
            location = (database.parent / ARTIFACT_FOLDER / name).resolve().as_uri()
        try:
            return str(client.create_experiment(name, artifact_location=location))
        except MlflowException as error:  # another process created it first: look again
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    raise AssertionError(f"experiment {name!r} neither exists nor can be created")


@contextlib.contextmanager
def _store_errors(uri: str, source: str = "tracking.mlflow_uri") -> Iterator[None]:
    """Turn a store that cannot be opened into one line naming it (MLflow, SQLAlchemy and OS
    errors alike); an unreachable server fails after a short probe, not minutes of retries."""
    try:
        _probe_server(uri)
        _refuse_file_above(uri)
        yield
    except ConfigError:
        raise
    except Exception as error:
        lines = str(error).strip().splitlines()  # SQLAlchemy appends the SQL and a link
        cause = lines[0] if lines else type(error).__name__
        raise ConfigError(f"{source} {uri}: {cause}") from error


def _refuse_file_above(uri: str) -> None:
    """A SQLite database whose folder, or a folder above it, is a file cannot be created; say
    which (the OS says ``File exists`` about the folder it could not make)."""
    database = _sqlite_path(uri)
    for folder in () if database is None else database.parents:
        if folder.exists() and not folder.is_dir():
            raise OSError(f"{folder} is not a folder")


def _probe_server(uri: str) -> None:
    """Raise OSError when an ``http(s)://`` store does not answer at all; any HTTP status
    (even 401 or 404) means a server is there."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri, timeout=PROBE_TIMEOUT_SECONDS):
            pass
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, TimeoutError) as error:
        reason = getattr(error, "reason", error)
        raise OSError(f"no MLflow server answers ({reason})") from None


def mlflow_client(tracking_uri: str, *, registry_uri: str | None = None) -> MlflowClient:
    """An MLflow client of the store ``tracking_uri`` (and model registry ``registry_uri``),
    the one way ltr opens MLflow: a new store sets itself up quietly, and a new SQLite database
    gets its tables one process at a time (MLflow's own creation races: two runs starting
    together on a new database both fail and leave it half-migrated, unusable by any later run).
    """
    with warnings.catch_warnings():
        # mlflow's SQL store maps a relationship with the `noload` strategy that SQLAlchemy 2.1
        # deprecates; the warning fires once per process, when the store module is imported
        # (here: the client opens its store), and is mlflow's to fix, not the user's
        warnings.filterwarnings(
            "ignore", message="The ``noload`` loader strategy", category=DeprecationWarning
        )
        from mlflow.tracking import MlflowClient

        # a new SQLite store logs its schema set-up at INFO: mlflow's business, noise to ltr users
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        database = _sqlite_path(tracking_uri)
        if database is None:
            return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
        lock = exclusive_lock(database.with_name(f"{database.name}.lock"))
        with lock, deferred_interrupts():  # a store half-created is unusable for good
            # opens the store: creates its tables
            return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; None for other stores and in-memory SQLite."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:_MAX_PARAM_VALUE]


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _ltr_version() -> str:
    from ltr import __version__

    return __version__


@functools.cache
def _git_commit() -> str | None:
    """The commit of the checkout ltr runs from, or None (installed package, no git)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and len(commit) == 40 else None
