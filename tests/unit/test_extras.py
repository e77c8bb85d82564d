"""Optional extras: every import is declared, and a missing extra is one line naming it."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ltr._extras import EXTRAS
from ltr.errors import MissingExtraError

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE = REPO_ROOT / "src" / "ltr"


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    """Distribution names of the core dependencies and of each extra (self-references dropped)."""
    tomllib = pytest.importorskip("tomllib", reason="reads pyproject.toml with Python 3.11+")
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    def names(requirements: list[str]) -> set[str]:
        found = {_normalized(re.match(r"[A-Za-z0-9_.-]+", r).group()) for r in requirements}  # type: ignore[union-attr]
        return found - {"ltr"}

    extras = project["optional-dependencies"]
    return names(project["dependencies"]), {extra: names(reqs) for extra, reqs in extras.items()}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _third_party_imports() -> set[str]:
    """Top-level names of every absolute import in src/ltr that is neither stdlib nor ltr."""
    names = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.partition(".")[0])
    return names - set(sys.stdlib_module_names) - {"ltr", "__future__"}


def test_every_third_party_import_is_a_declared_dependency() -> None:
    core, extras = _declared()
    declared = core.union(*extras.values())
    distributions = importlib.metadata.packages_distributions()
    undeclared = {
        module: distributions.get(module, [module])
        for module in _third_party_imports()
        if not {_normalized(d) for d in distributions.get(module, [module])} & declared
    }
    assert undeclared == {}


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_extras_table_names_packages_of_that_extra_only(extra: str) -> None:
    core, extras = _declared()
    distributions = importlib.metadata.packages_distributions()
    for module in EXTRAS[extra]:
        names = {_normalized(d) for d in distributions.get(module, [module])}
        assert names & extras[extra], f"{module} is not declared in the {extra} extra"
        assert not names & core, f"{module} is a core dependency, not an extra's"


def test_missing_extra_message_says_what_to_install() -> None:
    error = MissingExtraError("optuna", "tune")
    assert str(error) == (
        "optuna is not installed; it comes with the tune extra: pip install 'ltr[tune]'"
    )
    assert isinstance(error, ModuleNotFoundError) and error.name == "optuna"


def _run_without(packages: list[str], code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter in which ``packages`` cannot be imported."""
    hide = "".join(f"sys.modules[{name!r}] = None; " for name in packages)
    return subprocess.run(
        [sys.executable, "-c", f"import sys; {hide}{code}"],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("module", "package", "extra"),
    [
        ("ltr.experiments.tune", "optuna", "tune"),
        ("ltr.lifecycle.export", "onnx", "export"),
        ("ltr.lifecycle.export", "onnxruntime", "export"),
        ("ltr.lifecycle.onnx_graph", "onnxscript", "export"),
        ("ltr.lifecycle.latency", "onnxruntime", "export"),
    ],
)
def test_importing_a_part_without_its_extra_names_the_extra(
    module: str, package: str, extra: str
) -> None:
    result = _run_without([package], f"import {module}")
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line == (
        f"ltr.errors.MissingExtraError: {package} is not installed; it comes with the {extra} "
        f"extra: pip install 'ltr[{extra}]'"
    )


@pytest.mark.parametrize(
    ("args", "package", "extra"),
    [
        (["tune", "--config", "c.yaml", "--trials", "1"], "optuna", "tune"),
        (["export", "--model", "run", "--output", "bundle"], "onnx", "export"),
        (["benchmark-onnx", "--model", "bundle"], "onnxruntime", "export"),
    ],
)
def test_a_command_without_its_extra_is_one_error_line(
    args: list[str], package: str, extra: str
) -> None:
    code = f"sys.argv = ['ltr', *{args!r}]; from ltr.cli import main; main()"
    result = _run_without([package], code)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: {package} is not installed; it comes with the {extra} extra: "
        f"pip install 'ltr[{extra}]'\n"
    )


def test_plots_without_matplotlib_name_the_tracking_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ltr.experiments.plots import plot_training_curves

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'ltr\[tracking\]'$"):
        plot_training_curves([], tmp_path / "curves.png")
    assert not (tmp_path / "curves.png").exists()


def test_tensorboard_tracker_without_tensorboard_names_extra_and_switch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ltr.experiments.tracking import TensorBoardTracker

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    with pytest.raises(MissingExtraError) as raised:
        TensorBoardTracker(tmp_path / "tensorboard")
    assert str(raised.value) == (
        "tensorboard is not installed; it comes with the tracking extra: "
        "pip install 'ltr[tracking]', or set tracking.tensorboard=false"
    )


def test_a_run_without_tensorboard_goes_on_after_one_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from ltr.experiments.tracking import Run

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    with caplog.at_level("WARNING", logger="ltr.experiments.tracking"):
        run = Run.create(tmp_path, "no-tensorboard")  # the default config asks for TensorBoard
    run.log_metrics({"loss": 1.0}, step=1)
    run.close()

    assert run.trackers == []
    assert not (run.dir / "tensorboard").exists()
    assert [record.getMessage() for record in caplog.records] == [
        "TensorBoard scalars are off: tensorboard is not installed; it comes with the tracking "
        "extra: pip install 'ltr[tracking]', or set tracking.tensorboard=false"
    ]
