"""A cv directory of ``ltr cv`` read as one :class:`~ltr.experiments.compare.RunRecord`.

``ltr compare`` pairs cross-validations query by query: each LETOR query is in exactly one test
fold, so the test queries of all folds, pooled, are the cv's test set (MQ2008: 784 queries).
:func:`load_cv` builds the record the comparison already knows, from the fold runs:

- ``query_ids`` are ``<fold>:<qid>`` (``Fold2:10032``): LETOR folds may reuse query ids, and
  ``Fold1``'s query 6 is not ``Fold2``'s; ``per_query`` is the fold tables concatenated in fold
  order;
- ``report["test"]`` holds the means over the pooled queries (each query counts once), which
  differ from ``cv.json``'s mean of fold means (each fold counts once) when folds have different
  numbers of queries; the rest of ``cv.json`` (``folds``, ``metrics``) stays in ``report``;
- ``history`` is the per-epoch mean over folds, up to the last epoch every fold trained (folds
  stop early at different epochs; the star of a best epoch has no meaning across folds);
- ``folds`` holds the fold runs, named ``<cv id>/<fold>``, so that the test-file check of
  :func:`~ltr.experiments.compare.compare_runs` runs fold by fold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ltr._fs import read_json
from ltr.errors import DataFormatError, DataNotFoundError
from ltr.experiments.compare import RunRecord, load_run, query_mean

__all__ = ["CV_FILE", "fold_runs", "is_cv_dir", "load_cv", "load_run_or_cv", "read_cv_json"]

CV_FILE = "cv.json"  # written by ltr.training.crossval


def is_cv_dir(path: str | Path) -> bool:
    """True when ``path`` is a folder holding a ``cv.json``."""
    return (Path(path) / CV_FILE).is_file()


def read_cv_json(cv_dir: str | Path) -> dict[str, Any]:
    """The ``cv.json`` of ``cv_dir``, checked to hold what ltr cv writes: ``folds_dir``, the
    ``config`` and a list of ``folds``, each with its ``name`` and ``data_root``.

    Raises:
        DataNotFoundError: ``cv_dir`` has no ``cv.json``.
        DataFormatError: ``cv.json`` is not valid JSON, or not the layout of ltr cv.
    """
    path = Path(cv_dir) / CV_FILE
    if not path.is_file():
        raise DataNotFoundError(f"{cv_dir} has no {CV_FILE}; is it a directory of ltr cv?")
    state: dict[str, Any] = read_json(path)
    if not _is_cv_state(state):
        raise DataFormatError(
            path, None, "expected the folds_dir, config and folds (each named once) of ltr cv"
        )
    return state


def fold_runs(cv_dir: str | Path) -> list[Path]:
    """The fold runs of the cv directory ``cv_dir`` that have started, in fold order, under
    ``cv_dir`` as given (``cv.json`` records them absolute).

    Raises:
        DataNotFoundError, DataFormatError: see :func:`read_cv_json`.
    """
    cv_dir = Path(cv_dir)
    runs = (_fold_run_dir(cv_dir, entry) for entry in read_cv_json(cv_dir)["folds"])
    return [run for run in runs if run is not None]


def load_run_or_cv(path: str | Path) -> RunRecord:
    """:func:`load_cv` for a cv directory, else :func:`~ltr.experiments.compare.load_run`."""
    return load_cv(path) if is_cv_dir(path) else load_run(path)


def load_cv(path: str | Path) -> RunRecord:
    """Read the cv directory ``path`` of ``ltr cv``: its fold runs, their test queries pooled.

    Raises:
        DataNotFoundError: ``path`` has no ``cv.json``, or a fold is unfinished (no
            ``metrics.json``; the message suggests ``ltr cv --resume``).
        DataFormatError: see :func:`read_cv_json`; or a fold's file does not parse.
    """
    path = Path(path)
    state = read_cv_json(path)
    folds = {entry["name"]: _load_fold(path, entry) for entry in state["folds"]}
    runs = list(folds.values())
    names = [name for name in runs[0].per_query if all(name in run.per_query for run in runs)]
    per_query = {name: np.concatenate([run.per_query[name] for run in runs]) for name in names}
    query_ids = np.concatenate(
        [np.char.add(f"{fold}:", run.query_ids) for fold, run in folds.items()]
    )
    report = {key: value for key, value in state.items() if key != "config"}
    report["test"] = {name: query_mean(values) for name, values in per_query.items()}
    report["conventions"] = runs[0].conventions  # one config, so the folds' are the same
    history = _mean_history([run.history for run in runs])
    return RunRecord(path, path.name, state["config"], history, report, query_ids, per_query, folds)


def _is_cv_state(state: Any) -> bool:
    """True when ``state`` has the keys :func:`read_cv_json` promises, of the right types."""
    if not isinstance(state, dict) or not isinstance(state.get("folds"), list):
        return False
    entries = state["folds"]
    names = [entry.get("name") if isinstance(entry, dict) else None for entry in entries]
    return (
        isinstance(state.get("folds_dir"), str)
        and isinstance(state.get("config"), dict)
        and bool(entries)
        and all(isinstance(name, str) for name in names)
        and len(set(names)) == len(names)
        and all(isinstance(entry.get("data_root"), str) for entry in entries)
    )


def _load_fold(cv_dir: Path, entry: dict[str, Any]) -> RunRecord:
    """The fold's run, found by the layout of ltr cv (``<cv dir>/<fold>/<run id>``), so a cv
    directory that moved still reads; named ``<cv id>/<fold>`` so that messages name the fold."""
    name, run_dir = entry["name"], _fold_run_dir(cv_dir, entry)
    if run_dir is None or not (run_dir / "metrics.json").is_file():
        raise DataNotFoundError(
            f"cv {cv_dir}: fold {name} is unfinished (it has no metrics.json); finish it with "
            f"`ltr cv --resume {cv_dir}`"
        )
    run = load_run(run_dir)
    return RunRecord(
        run.path,
        f"{cv_dir.name}/{name}",
        run.config,
        run.history,
        run.report,
        run.query_ids,
        run.per_query,
    )


def _fold_run_dir(cv_dir: Path, entry: dict[str, Any]) -> Path | None:
    """Where a fold's run is by the layout of ltr cv (``<cv dir>/<fold>/<run id>``), so a cv
    directory that moved still reads; None before the fold started."""
    recorded = entry.get("run_dir")
    return None if recorded is None else cv_dir / entry["name"] / Path(recorded).name


def _mean_history(histories: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per epoch, the mean over folds of every number all folds logged for it, up to the last
    epoch every fold trained."""
    epochs = min(len(history) for history in histories)
    mean: list[dict[str, Any]] = []
    for i in range(epochs):
        records = [history[i] for history in histories]
        numeric = [
            key
            for key, value in records[0].items()
            if all(_is_number(record.get(key)) for record in records)
        ]
        averaged = {key: float(np.mean([record[key] for record in records])) for key in numeric}
        mean.append({**averaged, "epoch": records[0]["epoch"]})
    return mean


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
