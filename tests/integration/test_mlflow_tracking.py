"""Every `ltr train` run is an MLflow run: a real SQLite store in a temporary folder."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from ltr.config import ExperimentConfig, load_config
from ltr.errors import ConfigError
from ltr.experiments.mlflow_tracker import read_run_file
from ltr.training import run_experiment
from support.tiny_runs import write_tiny_data


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_data(tmp_path_factory.mktemp("data"))


def make_config(root: Path, out: Path, uri: str, *overrides: str) -> ExperimentConfig:
    base: dict[str, Any] = {
        "experiment": {"name": "mlflow_tiny"},
        "data": {"root": str(root)},
        "model": {"name": "mlp", "hidden_dims": [8]},
        "training": {"num_epochs": 3, "batch_size": 8, "device": "cpu"},
        "tracking": {"output_dir": str(out), "tensorboard": False, "mlflow_uri": uri},
        "promotion": {"min_metrics": {"ndcg@10": 0.0}},  # a key MLflow would refuse as is
    }
    return load_config(base=base, overrides=overrides)


@pytest.fixture(scope="module")
def tracked(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("tracked")
    uri = f"sqlite:///{tmp / 'mlruns.db'}"
    return run_experiment(make_config(data_root, tmp / "runs", uri), quiet=True), uri


def test_run_directory_names_its_mlflow_run(tracked: tuple[Path, str]) -> None:
    run_dir, uri = tracked
    info = read_run_file(run_dir)
    assert info is not None and info["tracking_uri"] == uri
    run = MlflowClient(uri).get_run(info["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == run_dir.name
    assert run.data.tags["ltr.run_dir"] == str(run_dir.resolve())
    assert "ltr.version" in run.data.tags


def test_params_are_the_resolved_config_with_dotted_keys(tracked: tuple[Path, str]) -> None:
    run_dir, uri = tracked
    params = MlflowClient(uri).get_run(read_run_file(run_dir)["run_id"]).data.params  # type: ignore[index]
    assert params["training.learning_rate"] == "0.001"
    assert params["model.hidden_dims"] == "[8]"
    assert params["model.activation"] == "relu"  # the scorer's defaults are spelled out
    assert params["experiment.name"] == "mlflow_tiny"
    assert params["promotion.min_metrics.ndcg_at_10"] == "0.0"  # same name mapping as metrics


def test_every_epoch_is_in_the_metric_history(tracked: tuple[Path, str]) -> None:
    run_dir, uri = tracked
    run_id = read_run_file(run_dir)["run_id"]  # type: ignore[index]
    history = json.loads((run_dir / "training_history.json").read_text())
    logged = MlflowClient(uri).get_metric_history(run_id, "valid/ndcg_at_10")
    assert [m.step for m in logged] == [1, 2, 3]
    assert [m.value for m in logged] == pytest.approx([r["valid_ndcg@10"] for r in history])
    assert len(MlflowClient(uri).get_metric_history(run_id, "train/loss")) == 3


def test_final_test_metrics_match_metrics_json(tracked: tuple[Path, str]) -> None:
    run_dir, uri = tracked
    report = json.loads((run_dir / "metrics.json").read_text())
    metrics = MlflowClient(uri).get_run(read_run_file(run_dir)["run_id"]).data.metrics  # type: ignore[index]
    assert metrics["test/ndcg_at_10"] == pytest.approx(report["test"]["ndcg@10"])
    assert metrics["test/ndcg_at_10.no_relevant_eq_one"] == pytest.approx(
        report["test"]["ndcg@10[no_relevant=one]"]
    )
    assert metrics["best/epoch"] == report["best_epoch"]
    assert metrics["best/valid/ndcg_at_10"] == pytest.approx(report["valid"]["ndcg@10"])


def test_run_files_are_artifacts(tracked: tuple[Path, str]) -> None:
    run_dir, uri = tracked
    client = MlflowClient(uri)
    run_id = read_run_file(run_dir)["run_id"]  # type: ignore[index]
    names = {a.path for a in client.list_artifacts(run_id)}
    names |= {a.path for a in client.list_artifacts(run_id, "checkpoints")}
    assert {
        "config.yaml",
        "preprocessor.json",
        "training_history.json",
        "metrics.json",
        "test_per_query.tsv",
        "checkpoints/best.pt",
    } <= names
    store = Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts" / "mlflow_tiny"
    assert (store / run_id / "artifacts" / "checkpoints" / "best.pt").is_file()


def test_ltr_train_sends_its_train_log_as_the_run_ended(
    data_root: Path, tmp_path: Path, ltr_main
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(make_config(data_root, tmp_path / "runs", uri).to_yaml())

    status, _, err = ltr_main("train", "--config", config_file, "--quiet")

    assert status == 0, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    run_id = read_run_file(run_dir)["run_id"]  # type: ignore[index]
    sent = Path(MlflowClient(uri).download_artifacts(run_id, "train.log", str(tmp_path)))
    log = (run_dir / "train.log").read_text(encoding="utf-8")
    assert "Test (best epoch" in sent.read_text(encoding="utf-8")
    assert log.startswith(sent.read_text(encoding="utf-8"))


def test_switched_off_tracking_writes_no_mlflow_store(data_root: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    config = make_config(data_root, tmp_path / "runs", uri, "tracking.mlflow=false")
    run_dir = run_experiment(config, quiet=True)
    assert not (run_dir / "mlflow.json").exists()
    assert not (tmp_path / "mlruns.db").exists()
    assert not (tmp_path / "mlartifacts").exists()


def test_resumed_run_continues_the_same_mlflow_run(data_root: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    first = make_config(data_root, tmp_path / "runs", uri, "training.num_epochs=2")
    run_dir = run_experiment(first, quiet=True)
    run_id = read_run_file(run_dir)["run_id"]  # type: ignore[index]
    more = make_config(data_root, tmp_path / "runs", uri, "training.num_epochs=4")
    assert run_experiment(more, resume=run_dir, quiet=True) == run_dir
    client = MlflowClient(uri)
    assert read_run_file(run_dir)["run_id"] == run_id  # type: ignore[index]
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1
    steps = [m.step for m in client.get_metric_history(run_id, "valid/ndcg_at_10")]
    assert steps == [1, 2, 3, 4]
    assert client.get_run(run_id).info.status == "FINISHED"


def unreachable_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("store", "cause"),
    [
        ("sqlite:///{tmp}/data/train.txt/x.db", r"/data/train\.txt is not a folder$"),
        ("sqlite:///{tmp}/not_a_database.db", r"file is not a database"),
        ("http://127.0.0.1:{port}", r"no MLflow server answers"),
    ],
)
def test_an_unusable_store_fails_in_one_line_before_the_run_directory(
    data_root: Path, tmp_path: Path, store: str, cause: str
) -> None:
    shutil.copytree(data_root, tmp_path / "data")
    (tmp_path / "not_a_database.db").write_text("not a database\n")
    uri = store.format(tmp=tmp_path, port=unreachable_port())
    config = make_config(tmp_path / "data", tmp_path / "runs", uri)

    started = time.monotonic()
    with pytest.raises(ConfigError, match=rf"^tracking\.mlflow_uri {re.escape(uri)}: .*{cause}"):
        run_experiment(config, quiet=True)

    assert time.monotonic() - started < 30
    assert not (tmp_path / "runs").exists()


def test_an_ensemble_on_an_unusable_store_fails_before_its_run_directory(
    data_root: Path, tmp_path: Path
) -> None:
    from ltr.training.ensemble import build_ensemble

    store = tmp_path / "mlruns.db"
    uri = f"sqlite:///{store}"
    members = [
        run_experiment(
            make_config(
                data_root, tmp_path / "runs", uri, "training.num_epochs=1", f"training.seed={seed}"
            ),
            quiet=True,
        )
        for seed in (0, 1)
    ]
    store.write_text("not a database any more\n")  # the members' store broke since

    with pytest.raises(ConfigError, match=r"^tracking\.mlflow_uri .*file is not a database"):
        build_ensemble(members, output_dir=tmp_path / "ensembles", quiet=True)

    assert not (tmp_path / "ensembles").exists()


def test_a_new_store_sets_itself_up_without_printing(
    data_root: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    run_experiment(make_config(data_root, tmp_path / "runs", uri), quiet=True)

    assert (tmp_path / "mlruns.db").is_file()
    printed = capfd.readouterr()
    assert "database tables" not in printed.err + printed.out


# SIGTERM at random moments of a burst of metric writes, through a Run as the trainer writes them
SIGNALLED_WRITES = """
import os, random, signal, sys, tempfile, threading
from pathlib import Path

from ltr import _signals
from ltr.experiments.mlflow_tracker import MLflowTracker
from ltr.experiments.tracking import Run

uri, trials = sys.argv[1], int(sys.argv[2])
random.seed(0)
for trial in range(trials):
    _signals._raised.clear()  # each trial is a fresh first interruption
    _signals.stop_on_signals()
    run = Run(Path(tempfile.mkdtemp()), tensorboard=False)
    run.trackers.append(MLflowTracker.start(uri, "signalled", run_name=f"trial-{trial}"))
    pid, delay = os.getpid(), random.uniform(0, 0.02)  # a write takes a few ms
    threading.Timer(delay, os.kill, (pid, signal.SIGTERM)).start()
    try:
        with run:
            for step in range(10**6):
                run.log_metrics({"valid/ndcg@10": 0.5}, step)
    except _signals.Interrupted:
        pass
    _signals.default_signals()
"""


def test_runs_stopped_in_the_middle_of_a_write_are_closed_as_killed(tmp_path: Path) -> None:
    # a signal landing inside an MLflow SQLite transaction used to leave the database locked:
    # the run stayed RUNNING after 20 s of "database is locked" (3 trials in 10 measured)
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    trials = 10
    result = subprocess.run(
        [sys.executable, "-c", SIGNALLED_WRITES, uri, str(trials)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert "could not mark" not in result.stderr
    with warnings.catch_warnings():  # mlflow's store module warns on import (SQLAlchemy 2.1)
        warnings.simplefilter("ignore", DeprecationWarning)
        client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("signalled")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(run.info.status for run in runs) == ["KILLED"] * trials
