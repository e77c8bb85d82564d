"""`ltr export` and `ltr benchmark-onnx` as a user runs them: `python -m ltr ...` subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ltr.config import load_config
from ltr.lifecycle.bundle import verify_bundle
from ltr.training import run_experiment
from support.tiny_runs import write_tiny_data


def ltr(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ltr", *args], capture_output=True, text=True, env=env, check=False
    )


@pytest.fixture
def env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200"}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    data = write_tiny_data(tmp_path / "data", n_queries=30, seed=3)
    config = {
        "experiment": {"name": "cli-export"},
        "data": {"root": str(data)},
        "model": {"name": "mlp", "hidden_dims": [16]},
        "training": {"num_epochs": 1, "batch_size": 8, "device": "cpu"},
        "tracking": {"output_dir": str(tmp_path / "runs"), "tensorboard": False, "mlflow": False},
    }
    (tmp_path / "config.yaml").write_text(json.dumps(config), encoding="utf-8")
    return run_experiment(load_config(tmp_path / "config.yaml", []), quiet=True)


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
    assert verify_bundle(bundle).version == "2.0.0"

    bench = ltr("benchmark-onnx", "--model", str(bundle), "--list-sizes", "10,30", "--threads",
                "1", "--seconds", "0.2", env=env)  # fmt: skip
    assert bench.returncode == 0, bench.stderr
    assert "| docs | threads |" in bench.stdout
    assert "30 docs, 1 thread(s): PyTorch p50" in bench.stdout
    assert "ONNX Runtime p50" in bench.stdout and "rankings identical" in bench.stdout

    again = ltr("export", "--model", str(run_dir), "--output", str(bundle), env=env)
    assert again.returncode == 1
    assert again.stderr.startswith(f"error: bundle {bundle} already exists")
