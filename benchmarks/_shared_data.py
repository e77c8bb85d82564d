"""Where the benchmarks find the real data, and a one-line refusal when it is not there.

The default is the tests' own: ``$LTR_SHARED_DATA`` if set, else ``shared/data`` beside the
repository (found from this file, not from the current folder).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_data_dir() -> Path:
    """``$LTR_SHARED_DATA``, else ``<repository>/../shared/data``."""
    return Path(os.environ.get("LTR_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data")


def add_data_dir_option(parser: argparse.ArgumentParser) -> None:
    """``--data-dir DIR``, defaulting to :func:`default_data_dir`."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="the shared data folder (default: $LTR_SHARED_DATA, else ../shared/data beside "
        "the repository)",
    )


def require_data(data_dir: Path, *files: str) -> None:
    """Exit with one line on stderr (status 1) unless every ``data_dir / file`` exists."""
    for name in files:
        path = data_dir / name
        if not path.is_file():
            sys.exit(
                f"error: real data not found: {path} is missing "
                f"(give --data-dir or set LTR_SHARED_DATA to the shared data folder)"
            )
