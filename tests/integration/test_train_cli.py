"""Training from a YAML config file the way the CLI does, then offline prediction and evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ltr.config import load_config
from ltr.data.letor import load_letor
from ltr.data.runs import read_scores
from ltr.data.synthetic import write_synthetic
from ltr.evaluation import evaluate_scores
from ltr.inference import predict_file
from ltr.training import load_run_config, run_experiment

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_default_config_trains_resumes_and_predicts(tmp_path: Path) -> None:
    write_synthetic(tmp_path / "data", n_queries=40, n_features=10, seed=2, max_docs=15)
    overrides = [
        f"data.root={tmp_path / 'data'}",
        f"tracking.output_dir={tmp_path / 'runs'}",
        "model.hidden_dims=[16, 8]",
        "training.num_epochs=2",
        "training.device=cpu",
    ]
    config = load_config(REPO_ROOT / "configs" / "default.yaml", overrides)
    run_dir = run_experiment(config, quiet=True)
    assert run_dir.parent == tmp_path / "runs" and run_dir.name.endswith("-default")

    # `ltr train --resume RUN --set training.num_epochs=3`: the run's own config, one more epoch
    resumed = load_run_config(run_dir, ["training.num_epochs=3"])
    assert run_experiment(resumed, resume=run_dir, quiet=True) == run_dir
    history = json.loads((run_dir / "training_history.json").read_text(encoding="utf-8"))
    assert [record["epoch"] for record in history] == [1, 2, 3]

    test_file = tmp_path / "data" / "test.txt"
    scores = read_scores(predict_file(run_dir, test_file, tmp_path / "scores.txt"))
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    test = load_letor(test_file)
    assert evaluate_scores(test, scores, ["ndcg@10"]).means["ndcg@10"] == metrics["test"]["ndcg@10"]


def test_python_dash_m_ltr_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ltr", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "evaluate" in result.stdout


def test_ltr_train_command_writes_a_run(tmp_path: Path) -> None:
    write_synthetic(tmp_path / "data", n_queries=30, n_features=10, seed=3, max_docs=10)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ltr",
            "train",
            "--config",
            str(REPO_ROOT / "configs" / "default.yaml"),
            "--set",
            f"data.root={tmp_path / 'data'}",
            "--set",
            f"tracking.output_dir={tmp_path / 'runs'}",
            "--set",
            "training.num_epochs=1",
            "--set",
            "model.hidden_dims=[8]",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "metrics.json").is_file()


def test_model_and_loss_options_switch_an_experiment_file(tmp_path: Path) -> None:
    write_synthetic(tmp_path / "data", n_queries=30, n_features=10, seed=4, max_docs=10)
    experiment = REPO_ROOT / "configs" / "experiments" / "exp003_lambdarank.yaml"  # MLP, sigma
    result = subprocess.run(
        [
            *(sys.executable, "-m", "ltr", "train", "--config", str(experiment)),
            *("--model", "transformer", "--loss", "listnet"),
            *("--set", f"data.root={tmp_path / 'data'}"),
            *("--set", f"tracking.output_dir={tmp_path / 'runs'}"),
            *("--set", "tracking.mlflow=false", "--set", "training.num_epochs=1"),
            *("--set", "model.d_model=8", "--set", "model.n_heads=2", "--quiet"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "model.hidden_dims" in result.stderr and "loss.params.sigma" in result.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    config = load_run_config(run_dir)
    assert (config.model.name, config.loss.name) == ("transformer", "listnet")
    assert "hidden_dims" not in config.model.params and config.loss.params == {}


@pytest.mark.slow  # three ltr processes with MLflow: about 25 s
def test_paths_with_spaces_and_accents_train_resume_and_predict(tmp_path: Path) -> None:
    work = tmp_path / "wörk dir"  # the default MLflow store and its artifacts land here too
    write_synthetic(work / "dätä set", n_queries=30, n_features=10, seed=3, max_docs=10)
    config = work / "cönfigs" / "my exp.yaml"
    config.parent.mkdir()
    config.write_text((REPO_ROOT / "configs" / "default.yaml").read_text(encoding="utf-8"))
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    sets = ["data.root=dätä set", "tracking.output_dir=rüns out", "model.hidden_dims=[8]"]

    def ltr(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ltr", *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    trained = ltr(
        "train",
        "--config",
        str(config),
        *(f"--set={item}" for item in sets),
        "--set=training.num_epochs=1",
        "--quiet",
    )
    assert trained.returncode == 0, trained.stderr
    (run_dir,) = (work / "rüns out").iterdir()
    resumed = ltr("train", "--resume", str(run_dir), "--set=training.num_epochs=2", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    out = work / "prédictions" / "test scores.txt"
    predicted = ltr(
        "predict", "--model", str(run_dir), "--data", "dätä set/test.txt", "--out", str(out)
    )
    assert predicted.returncode == 0, predicted.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    test = load_letor(work / "dätä set" / "test.txt")
    assert (
        evaluate_scores(test, read_scores(out), ["ndcg@10"]).means["ndcg@10"]
        == (metrics["test"]["ndcg@10"])
    )
    assert (work / "mlruns.db").is_file() and any((work / "mlartifacts").rglob("best.pt"))


def test_warnings_reach_the_user_as_one_warning_line_each_once(tmp_path: Path) -> None:
    write_synthetic(tmp_path / "data", n_queries=30, n_features=10, seed=3, max_docs=10)
    items = [
        f"data.root={tmp_path / 'data'}",
        f"tracking.output_dir={tmp_path / 'runs'}",
        "training.num_epochs=3",  # validated 3 times: the cutoff warning still comes once
        "training.early_stopping_metric=ndcg@100",  # longer than every list
        "tracking.mlflow=false",
        "tracking.tensorboard=false",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "ltr", "train", "--quiet", "--model", "transformer"]
        + ["--config", str(REPO_ROOT / "configs" / "default.yaml")]
        + [arg for item in items for arg in ("--set", item)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines == [
        "warning: model mlp -> transformer: dropped model.hidden_dims, model.norm (not taken by "
        "transformer)",
        "warning: k=100 is larger than every list in vali.txt (the longest has 10 documents); "
        "check the cutoff",
        # the test line reports the early-stopping metric too: a fact about another file
        "warning: k=100 is larger than every list in test.txt (the longest has 10 documents); "
        "check the cutoff",
    ], result.stderr
