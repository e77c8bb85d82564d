"""Guards on the package as a whole: its public names and what importing it costs."""

from __future__ import annotations

import subprocess
import sys

import pytest

import ltr


def _isort_style(name: str) -> tuple[int, str]:
    """CONSTANTS, then Classes, then functions (ruff's RUF022 order)."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_names_every_public_attribute() -> None:
    public = {
        name
        for name, value in vars(ltr).items()
        if not name.startswith("_") and not isinstance(value, type(sys))  # skip submodules
    }
    assert ltr.__all__ == sorted(ltr.__all__, key=_isort_style)
    assert set(ltr.__all__) - {"__version__"} == public


@pytest.mark.parametrize(
    "module", ["ltr", "ltr.metrics", "ltr.evaluation", "ltr.data.letor", "ltr.data.runs"]
)
def test_core_modules_import_without_torch(module: str) -> None:
    code = f"import sys, {module}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
