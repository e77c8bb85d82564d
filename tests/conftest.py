"""Fixtures shared by every test: where the real data sets live, and where runs may write."""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$LTR_SHARED_DATA`` or ``../shared/data`` beside the repository."""
    return Path(os.environ.get("LTR_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = shared_data_dir()
    if not (root / "mq2008" / "Fold1" / "test.txt.gz").exists():
        pytest.skip(
            f"real data not found at {root} (set LTR_SHARED_DATA to the shared data folder)"
        )
    return root


@pytest.fixture(scope="session", autouse=True)
def _private_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Runs (and `ltr` subprocesses, which inherit the environment) log MLflow to a temporary
    SQLite store, never to ``mlruns.db`` in the working directory, and cache parsed data in a
    temporary folder, never in ``~/.cache/ltr``; tests needing their own MLflow store set
    ``tracking.mlflow_uri``, which wins over the environment."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlruns.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("LTR_CACHE_DIR", str(tmp_path_factory.mktemp("ltr-cache")))
        yield


@pytest.fixture
def ltr_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[..., tuple[int, str, str]]]:
    """Run ``ltr`` in this process through ``ltr.cli.run()``, what the real ``main()`` runs
    before it ends the process (the one-line errors, the exit status); returns (status, stdout,
    stderr). What run() installs for its process (signal handlers, the ``ltr`` logger's routing,
    ``warnings.showwarning``) is put back afterwards."""
    from ltr.cli import run as run_ltr

    logger = logging.getLogger("ltr")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)

    def run(*args: object) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["ltr", *map(str, args)])
        try:
            run_ltr()
            status = 0
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) else 1
        out, err = capsys.readouterr()
        return status, out, err

    yield run
    for number, handler in handlers.items():
        signal.signal(number, handler)
    logger.handlers[:], logger.propagate = saved[0], saved[1]
    logger.setLevel(saved[2])
