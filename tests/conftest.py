"""Fixtures shared by every test: where the real data sets live."""

from __future__ import annotations

import os
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
