"""The README's MQ2008 examples, run as written (``../shared/data`` beside the working folder),
print exactly the tables the README shows."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from support.readme import console_lines, shown_output

EXAMPLES = [
    line for line in console_lines() if line.startswith(("ltr data inspect", "ltr baselines"))
]


@pytest.mark.parametrize("command", EXAMPLES)
def test_readme_mq2008_example_prints_the_table_it_shows(
    command: str, shared_data: Path, tmp_path: Path
) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(shared_data)  # so ../shared/data resolves
    (tmp_path / "work").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "ltr", *shlex.split(command)[1:]],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path / "work",
        env={**os.environ, "COLUMNS": "100"},  # a pipe gets tables whole, whatever COLUMNS says
    )
    assert result.returncode == 0, result.stderr
    printed = [line.rstrip() for line in result.stdout.splitlines()]
    assert printed == [line.rstrip() for line in shown_output(command)]
