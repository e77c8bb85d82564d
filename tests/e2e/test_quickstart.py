"""The README's main command, run exactly as a user runs it (into this test's own folders)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ltr.data.letor import read_letor

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_runs_every_step_on_synthetic_data(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LTR_VENV": sys.prefix,
        "LTR_QUICKSTART_DIR": str(tmp_path / "qs"),
        "LTR_CACHE_DIR": str(tmp_path / "cache"),
    }
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "quickstart.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    steps = ("data synth", "data inspect", "train", "predict", "evaluate", "baselines", "export")
    for step in steps:
        assert f"$ ltr {step}" in out
    assert "(best single feature on train)" in out and "ideal (labels as scores)" in out
    assert "rankings identical" in out and "ONNX Runtime p50" in out  # parity + latency lines
    assert (tmp_path / "qs" / "bundle" / "model.onnx").is_file()
    (run_dir,) = (tmp_path / "qs" / "experiments").iterdir()
    assert f"model: {run_dir.name}" in out
    # the trained model must clear the best single feature on the held-out test file
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    baselines = subprocess.run(
        [
            sys.executable,
            "-m",
            "ltr",
            "baselines",
            "--json",
            "--metrics",
            "ndcg@10",
            "--train",
            str(tmp_path / "qs" / "data" / "train.txt"),
            "--test",
            str(tmp_path / "qs" / "data" / "test.txt"),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    rankings = json.loads(baselines.stdout)["rankings"]
    best_feature = next(v for k, v in rankings.items() if "best single" in k)
    assert metrics["test"]["ndcg@10"] > best_feature["ndcg@10"] + 0.1
    train = read_letor(tmp_path / "qs" / "data" / "train.txt")
    assert train.n_queries == 360 and train.n_features == 20
