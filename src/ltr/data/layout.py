"""Where the files of a data folder are: the names ltr looks for in ``data.root``.

Torch-free, so that ``ltr compare`` and the export code find a run's test file without
importing the trainer.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["FILE_NAMES", "config_test_file", "find_data_file"]

FILE_NAMES = {
    "train": ("train.txt", "train.txt.gz"),
    "valid": ("vali.txt", "vali.txt.gz", "valid.txt", "valid.txt.gz"),
    "test": ("test.txt", "test.txt.gz"),
}


def find_data_file(root: Path, split: str) -> Path | None:
    """The first of :data:`FILE_NAMES` ``[split]`` (``train``, ``valid``, ``test``) in ``root``."""
    return next((root / name for name in FILE_NAMES[split] if (root / name).is_file()), None)


def config_test_file(data: Mapping[str, Any]) -> Path | None:
    """The test file of a run's ``config.yaml`` ``data`` section: ``data.test``, else the one in
    ``data.root``; None when it names none that exists."""
    if data.get("test"):
        return Path(data["test"])
    root = data.get("root")
    return None if not root else find_data_file(Path(root), "test")
