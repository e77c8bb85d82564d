"""Where a model came from: its data files and the code that trained it.

Torch-free facts for ``metrics.json`` (``data``, written at training time) and ``metadata.json``:
a data file's path, sha256 and size in queries and documents, whether a data folder is synthetic,
and the git revision of the ltr source tree. A run's recorded sha256 is what later checks trust:
the file at the same path may have been edited since.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ltr.data.summary import describe_data

__all__ = [
    "code_revision",
    "describe_file",
    "file_changed",
    "is_synthetic",
    "recorded_file",
]


def describe_file(path: Path, n_features: int, *, sha256: str | None = None) -> dict[str, Any]:
    """:func:`describe_data` of ``path`` read with ``n_features`` columns."""
    from ltr.data.letor import load_letor

    data = load_letor(path, n_features=n_features)  # cached after the first read
    return describe_data(path, data, sha256=sha256)


def recorded_file(report: Mapping[str, Any], split: str) -> dict[str, Any] | None:
    """The ``{path, sha256, ...}`` a run recorded for ``split`` (train, valid, test) in its
    ``metrics.json``; None for runs made before ltr recorded them, or without such a file."""
    record = (report.get("data") or {}).get(split)
    if isinstance(record, dict) and isinstance(record.get("sha256"), str):
        return record
    return None


def file_changed(run_id: str, split: str, record: Mapping[str, Any], sha256_now: str) -> str:
    """What to say when the file a run recorded is not the file at that path now."""
    return (
        f"{run_id}'s {split} file {record['path']} changed since the run read it (sha256 "
        f"{record['sha256'][:12]} then, {sha256_now[:12]} now)"
    )


def is_synthetic(train_path: Path) -> bool:
    """True when the data folder was written by :func:`ltr.data.synthetic.write_synthetic`."""
    info = train_path.parent / "info.json"
    try:
        generator = json.loads(info.read_text(encoding="utf-8")).get("generator")
    except (OSError, ValueError, AttributeError):
        return False
    return bool(generator == "ltr.data.synthetic")


def code_revision() -> dict[str, Any]:
    """``git rev-parse HEAD`` of the ltr source tree and whether it has local changes."""
    source = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(source), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    revision = git("rev-parse", "HEAD")
    if revision is None:
        return {"code_revision": None, "code_dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"code_revision": revision, "code_dirty": None if status is None else bool(status)}
