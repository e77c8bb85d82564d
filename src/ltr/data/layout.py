"""Where the files of a data folder are: the names ltr looks for in ``data.root``.

Torch-free, so that ``ltr compare`` and the export code find a run's test file without
importing the trainer.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ltr.errors import ConfigError

__all__ = ["FILE_NAMES", "config_test_file", "data_files_in", "find_data_file"]

FILE_NAMES = {
    "train": ("train.txt", "train.txt.gz"),
    "valid": ("vali.txt", "vali.txt.gz", "valid.txt", "valid.txt.gz"),
    "test": ("test.txt", "test.txt.gz"),
}
_SPLIT_WORDS = {"train": "training", "valid": "validation", "test": "test"}


def data_files_in(root: Path) -> list[Path]:
    """Every file of ``root`` that :func:`find_data_file` could read, in :data:`FILE_NAMES`
    order."""
    names = (name for split_names in FILE_NAMES.values() for name in split_names)
    return [root / name for name in names if (root / name).is_file()]


def find_data_file(root: Path, split: str) -> Path | None:
    """The file of :data:`FILE_NAMES` ``[split]`` (``train``, ``valid``, ``test``) in ``root``.

    Raises:
        ConfigError: ``root`` holds two of them (``train.txt`` and ``train.txt.gz``): reading
            either one silently could train or test on the wrong data.
    """
    held = [root / name for name in FILE_NAMES[split] if (root / name).is_file()]
    if len(held) > 1:
        names = [path.name for path in held]
        listed = f"{', '.join(names[:-1])} and {names[-1]}"
        both, remove = ("both ", "one") if len(names) == 2 else ("", "all but one")
        raise ConfigError(
            f"{root} holds {both}{listed}; remove {remove} so it is clear which is the "
            f"{_SPLIT_WORDS[split]} file"
        )
    return held[0] if held else None


def config_test_file(data: Mapping[str, Any]) -> Path | None:
    """The test file of a run's ``config.yaml`` ``data`` section: ``data.test``, else the one in
    ``data.root``; None when it names none that exists."""
    if data.get("test"):
        return Path(data["test"])
    root = data.get("root")
    return None if not root else find_data_file(Path(root), "test")
