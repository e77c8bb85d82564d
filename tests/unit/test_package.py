"""Guards on the package as a whole: its public names and what importing it costs."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from typing import Any

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


def _public_callables() -> list[tuple[str, Any]]:
    import ltr.losses
    import ltr.metrics

    found = []
    for module in (ltr, ltr.metrics, ltr.losses):
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isfunction(value):
                found.append((f"{module.__name__}.{name}", value))
    return found


def _undocumented(module: Any) -> list[str]:
    """Names in ``module.__all__`` (classes, functions, classes' public methods) without a
    docstring of their own (a subclass repeating its base's does not count)."""
    missing = []
    for name in getattr(module, "__all__", ()):
        value = getattr(module, name)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        base = value.__mro__[1] if inspect.isclass(value) else None
        if not (value.__doc__ or "").strip() or (base and value.__doc__ == base.__doc__):
            missing.append(f"{module.__name__}.{name}")
        methods = vars(value).items() if inspect.isclass(value) else ()
        missing += [
            f"{module.__name__}.{name}.{method}"
            for method, function in methods
            if inspect.isfunction(function)
            and not method.startswith("_")
            and not (function.__doc__ or "").strip()
        ]
    return missing


def test_every_public_name_has_a_docstring() -> None:
    modules = [ltr] + [
        importlib.import_module(info.name) for info in pkgutil.walk_packages(ltr.__path__, "ltr.")
    ]
    missing = {name for module in modules for name in _undocumented(module)}
    assert sorted(missing) == []


def _documented_args(doc: str) -> dict[str, str]:
    """``Args:`` entries of a Google-style docstring: name -> its text (continuation lines too)."""
    section = re.search(r"\n    Args:\n(.*?)(?:\n\n|\Z)", doc, flags=re.S)
    entries: dict[str, str] = {}
    for line in section.group(1).splitlines() if section else []:
        entry = re.match(r" {8}\**(\w+(?:, \w+)*):(.*)", line)
        if entry:
            current = entry.group(1)
            entries[current] = entry.group(2)
        elif line.startswith(" " * 12) and entries:
            entries[current] += " " + line.strip()
    return entries


PUBLIC_FUNCTIONS = dict(_public_callables())


@pytest.mark.parametrize("name", sorted(PUBLIC_FUNCTIONS))
def test_public_docstrings_name_real_parameters_with_their_defaults(name: str) -> None:
    fn = PUBLIC_FUNCTIONS[name]
    parameters = inspect.signature(fn).parameters
    for documented, text in _documented_args(fn.__doc__ or "").items():
        for arg in documented.split(", "):
            assert arg in parameters, f"{name}: docstring names {arg!r}, not a parameter"
        default = re.search(r'``("[^"]*"|[\d.]+|None|True|False)`` \(default', text)
        if default is not None:
            assert parameters[documented].default == ast.literal_eval(default.group(1)), name


def test_metric_convention_defaults_are_the_ones_the_module_docstring_names() -> None:
    import ltr.metrics

    doc = ltr.metrics.__doc__ or ""
    checked = []
    for bullet in re.findall(r"^- ``(\w+)``(.*?)(?=^- |^\S|\Z)", doc, flags=re.S | re.M):
        convention, text = bullet
        parts = re.split(r'``"(\w+)"``', text)  # text, value, text after it, value, ...
        named = [
            value
            for value, after in zip(parts[1::2], parts[2::2], strict=True)
            if "(default" in after
        ]
        number = re.search(r"\(default (\d+)", text)
        value: str | int = named[0] if named else int(number.group(1)) if number else ""
        if not value:
            continue
        checked.append(convention)
        takers = [
            fn
            for fn in ltr.metrics.METRICS.values()
            if convention in inspect.signature(fn).parameters
        ]
        assert takers, convention
        for fn in takers:
            assert inspect.signature(fn).parameters[convention].default == value, convention
    assert len(checked) == 7, checked  # gain ... max_label: every convention with a default


def test_git_ignores_what_a_training_run_leaves_in_the_working_directory() -> None:
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    if not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    left = ["mlruns.db", "mlruns.db.lock", "mlartifacts/1/abc/artifacts/metrics.json"]
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", *left], cwd=repo, capture_output=True, text=True
    )
    assert result.stdout.split() == left
