"""`ltr export` and `ltr benchmark-onnx` as a user runs them: `python -m ltr ...` subprocesses."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ltr._fs import file_sha256
from ltr.cli import app
from ltr.config import load_config
from ltr.errors import BundleError, ConfigError, DataNotFoundError
from ltr.lifecycle.bundle import verify_bundle
from ltr.training import run_experiment
from support.tiny_runs import write_tiny_data

CONDITIONS = r"1-minute load average \d+\.\d\d -> \d+\.\d\d on \d+ cores"  # title's end


def ltr(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ltr", *args], capture_output=True, text=True, env=env, check=False
    )


@pytest.fixture
def env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200"}


def train_tiny_run(root: Path) -> Path:
    """A one-epoch MLP run on 30 tiny queries, under ``root``."""
    data = write_tiny_data(root / "data", n_queries=30, seed=3)
    config = {
        "experiment": {"name": "cli-export"},
        "data": {"root": str(data)},
        "model": {"name": "mlp", "hidden_dims": [16]},
        "training": {"num_epochs": 1, "batch_size": 8, "device": "cpu"},
        "tracking": {"output_dir": str(root / "runs"), "tensorboard": False, "mlflow": False},
    }
    (root / "config.yaml").write_text(json.dumps(config), encoding="utf-8")
    return run_experiment(load_config(root / "config.yaml", []), quiet=True)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return train_tiny_run(tmp_path)


def test_export_then_benchmark_then_refuse_overwrite(
    run_dir: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    bundle = tmp_path / "models" / "versions" / "2.0.0"

    exported = ltr("export", "--model", str(run_dir), "--output", str(bundle), "--version",
                   "2.0.0", env=env)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert f"wrote {bundle} (version 2.0.0, float32" in exported.stdout
    assert "\ninputs: features float32 [batch, list_len, 8]\n" in exported.stdout
    assert "parity: max |diff|" in exported.stdout and "rankings identical" in exported.stdout
    assert "x matmul floor /" in exported.stdout  # an mlp has a floor, so it is explained:
    assert exported.stdout.splitlines()[-1].startswith(
        "matmul floor: the scorer's matrix products alone (NumPy, same threads; "
    )
    assert verify_bundle(bundle).version == "2.0.0"

    bench = ltr("benchmark-onnx", "--model", str(bundle), "--list-sizes", "10,30", "--threads",
                "1", "--seconds", "0.2", env=env)  # fmt: skip
    assert bench.returncode == 0, bench.stderr
    lines = bench.stdout.splitlines()  # a box table, like every other command's
    assert re.fullmatch(rf"{re.escape(str(bundle))} \(float32; {CONDITIONS}\)", lines[0])
    assert lines[2].startswith("┃ docs ┃ threads ┃ PyTorch p50 / p99 (us) ┃")
    assert [line.split("│")[1:3] for line in lines[4:6]] == [
        ["   10 ", "       1 "],
        ["   30 ", "       1 "],
    ]
    assert all(line.endswith("│ identical │") for line in lines[4:6])
    assert lines[-1].startswith("matmul floor: the scorer's matrix products alone")
    assert "docs, 1 thread(s)" not in bench.stdout  # the table once, not again as lines
    progress = [  # one line per measured setting while it runs; then, if busy, warnings
        line for line in bench.stderr.splitlines() if not line.startswith("warning: ")
    ]
    assert progress[0] == "timing 2 settings, about 1 s"
    assert [line.split(": ONNX Runtime p50 ")[0] for line in progress[1:]] == [
        "[1/2] 10 docs, 1 thread(s)",
        "[2/2] 30 docs, 1 thread(s)",
    ]

    again = ltr("export", "--model", str(run_dir), "--output", str(bundle), env=env)
    assert again.returncode == 1
    assert again.stderr.startswith(f"error: bundle {bundle} already exists")


def test_benchmark_prints_markdown_on_request(run_dir: Path, tmp_path: Path) -> None:
    from ltr.lifecycle.export import export_bundle

    bundle = tmp_path / "bundle"
    export_bundle(run_dir, bundle)
    args = ["benchmark-onnx", "--model", str(bundle), "--list-sizes", "10", "--threads", "1",
            "--seconds", "0.1", "--format", "markdown"]  # fmt: skip

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert re.fullmatch(rf"{re.escape(str(bundle))} \(float32; {CONDITIONS}\)", lines[0])
    assert lines[1].startswith("| docs | threads | PyTorch p50 / p99 (us) |")
    assert lines[2] == "|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    assert lines[3].startswith("| 10 | 1 | ") and lines[3].endswith(" | identical |")
    assert len(lines) == 4


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle exported from a tiny run; tests copy it (and its checkpoint) before changing."""
    from ltr.lifecycle.export import export_bundle

    root = tmp_path_factory.mktemp("exported")
    export_bundle(train_tiny_run(root), root / "bundle")
    return root / "bundle"


def bundle_with_source(exported: Path, tmp_path: Path, *, recorded: bool = True) -> Path:
    """A copy of ``exported`` whose source checkpoint is a copy of its own, in ``tmp_path``;
    ``recorded=False``: a bundle from before ltr recorded the checkpoint's sha256."""
    bundle = Path(shutil.copytree(exported, tmp_path / "bundle"))
    path = bundle / "metadata.json"  # not among the files it seals
    metadata = json.loads(path.read_text(encoding="utf-8"))
    checkpoint = Path(shutil.copy(metadata["source"]["checkpoint"], tmp_path / "best.pt"))
    assert metadata["source"].pop("sha256") == file_sha256(checkpoint)
    metadata["source"]["checkpoint"] = str(checkpoint)
    if recorded:
        metadata["source"]["sha256"] = file_sha256(checkpoint)
    path.write_text(json.dumps(metadata), encoding="utf-8")
    return bundle


def rewrite_checkpoint(path: Path) -> None:
    """Other bytes, the same weights: as a later ``--resume`` rewriting best.pt might."""
    from ltr.training.checkpoint import load_checkpoint, save_checkpoint

    save_checkpoint(path, {**load_checkpoint(path), "rewritten": True})


BENCH = ["benchmark-onnx", "--list-sizes", "10", "--threads", "1", "--seconds", "0.1"]


def test_benchmark_refuses_a_source_checkpoint_changed_since_the_export(
    exported: Path, tmp_path: Path
) -> None:
    bundle = bundle_with_source(exported, tmp_path)
    checkpoint = tmp_path / "best.pt"
    before = file_sha256(checkpoint)
    rewrite_checkpoint(checkpoint)

    result = CliRunner().invoke(app, [*BENCH, "--model", str(bundle)])

    assert isinstance(result.exception, BundleError)
    assert str(result.exception) == (
        f"{checkpoint} changed since the export of bundle {bundle} (sha256 {before[:12]} "
        f"recorded, {file_sha256(checkpoint)[:12]} now); re-export the bundle from it, or give "
        "--checkpoint FILE to compare with another checkpoint on purpose"
    )
    assert "timing" not in result.stderr


def test_benchmark_says_the_source_checkpoint_is_gone(exported: Path, tmp_path: Path) -> None:
    bundle = bundle_with_source(exported, tmp_path)
    (tmp_path / "best.pt").unlink()

    result = CliRunner().invoke(app, [*BENCH, "--model", str(bundle)])

    assert isinstance(result.exception, DataNotFoundError)
    assert str(result.exception).startswith(
        f"{tmp_path / 'best.pt'}: the checkpoint bundle {bundle} was exported from is gone; "
    )


def test_benchmark_of_a_bundle_without_the_checkpoints_sha256_does_not_check_it(
    exported: Path, tmp_path: Path
) -> None:
    bundle = bundle_with_source(exported, tmp_path, recorded=False)
    rewrite_checkpoint(tmp_path / "best.pt")

    result = CliRunner().invoke(app, [*BENCH, "--model", str(bundle), "--json"])

    assert result.exit_code == 0, result.output
    assert [row["list_size"] for row in json.loads(result.stdout)["rows"]] == [10]


def test_benchmark_checks_the_bundle_before_announcing_the_timing(tmp_path: Path) -> None:
    missing = tmp_path / "nobundle"
    result = CliRunner().invoke(app, ["benchmark-onnx", "--model", str(missing)])
    assert isinstance(result.exception, BundleError)
    assert str(result.exception) == f"bundle {missing} does not exist or is not a folder"
    assert "timing" not in result.stderr


def test_benchmark_of_a_run_directory_says_to_export_it_first(run_dir: Path) -> None:
    result = CliRunner().invoke(app, ["benchmark-onnx", "--model", str(run_dir)])
    assert isinstance(result.exception, BundleError)
    assert str(result.exception) == (
        f"{run_dir} is a run directory, not a bundle; export it first: "
        f"ltr export --model {run_dir} --output BUNDLE_DIR"
    )


def test_benchmark_refuses_json_with_markdown() -> None:
    args = ["benchmark-onnx", "--model", "bundle", "--json", "--format", "markdown"]
    result = CliRunner().invoke(app, args)  # in process: `main` prints the ConfigError as a line
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == "--json and --format markdown: give one of them"


@pytest.mark.parametrize("seconds", ["nan", "inf", "0"])
def test_benchmark_refuses_a_non_finite_or_zero_time_budget(
    seconds: str, env: dict[str, str]
) -> None:
    result = ltr("benchmark-onnx", "--model", "bundle", "--seconds", seconds, env=env)
    assert result.returncode == 2  # a bad option value: bad usage
    assert result.stderr.startswith("error: --seconds: must be a finite number > 0; got ")


def test_export_refuses_an_opset_the_exporter_cannot_write(env: dict[str, str]) -> None:
    import onnx

    result = ltr("export", "--model", "run", "--output", "bundle", "--opset", "17", env=env)
    assert result.returncode == 2  # as for --quantize int4: a bad option value is bad usage
    newest = onnx.defs.onnx_opset_version()
    assert result.stderr == f"error: --opset: must be between 18 and {newest}; got 17\n"


def test_export_refuses_a_version_that_is_not_x_y_z(env: dict[str, str]) -> None:
    result = ltr("export", "--model", "run", "--output", "bundle", "--version", "1.0", env=env)
    assert result.returncode == 2
    assert result.stderr == "error: --version: must look like X.Y.Z (e.g. 1.2.0); got '1.0'\n"


@pytest.mark.parametrize(
    ("option", "value", "example"),
    [("--threads", "0", "1,2"), ("--list-sizes", "10,0", "10,100")],
)
def test_benchmark_refuses_a_count_below_1_with_an_example_of_its_own(
    option: str, value: str, example: str, env: dict[str, str]
) -> None:
    result = ltr("benchmark-onnx", "--model", "bundle", option, value, env=env)
    assert result.returncode == 2
    assert result.stderr == (
        f"error: {option}: expected positive integers, e.g. {example}; got {value!r}\n"
    )
