"""Fixtures shared by every test: where the real data sets live, and where runs may write."""

from __future__ import annotations

import os
from collections.abc import Iterator
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
