"""Run trackers: MLflow metric names, store precedence, switching off, run status."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import ltr.experiments.mlflow_tracker as mlflow_tracker
from ltr.config import load_config
from ltr.experiments.mlflow_tracker import (
    MLflowTracker,
    attach_mlflow,
    ltr_metric_name,
    mlflow_metric_name,
    resolve_tracking_uri,
)
from ltr.experiments.tracking import Run, RunStopped


def config(tmp_path: Path, **tracking: Any) -> Any:
    base = {"data": {"root": str(tmp_path)}, "tracking": {"tensorboard": False, **tracking}}
    return load_config(base=base)


@pytest.mark.parametrize(
    ("ltr_name", "mlflow_name"),
    [
        ("train/loss", "train/loss"),
        ("valid/ndcg@10", "valid/ndcg_at_10"),
        ("valid/map", "valid/map"),
        ("test/ndcg@10[no_relevant=one]", "test/ndcg_at_10.no_relevant_eq_one"),
        ("best/valid/mrr@10", "best/valid/mrr_at_10"),
    ],
)
def test_metric_names_map_to_mlflow_and_back(ltr_name: str, mlflow_name: str) -> None:
    from mlflow.utils.validation import validate_param_and_metric_name

    assert mlflow_metric_name(ltr_name) == mlflow_name
    assert validate_param_and_metric_name(mlflow_name)
    assert ltr_metric_name(mlflow_name) == ltr_name


def test_tracking_uri_prefers_config_then_environment_then_sqlite_in_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert resolve_tracking_uri("http://config:5000") == "http://config:5000"
    assert resolve_tracking_uri(None) == "http://env:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert resolve_tracking_uri(None) == f"sqlite:///{tmp_path.resolve()}/mlruns.db"


def test_switched_off_tracking_attaches_nothing_and_writes_nothing(tmp_path: Path) -> None:
    run = Run(tmp_path, tensorboard=False)
    assert attach_mlflow(run, config(tmp_path, mlflow=False)) is None
    assert run.trackers == []
    assert list(tmp_path.iterdir()) == []


def test_missing_mlflow_turns_tracking_off_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(mlflow_tracker, "mlflow_available", lambda: False)
    run = Run(tmp_path, tensorboard=False)
    with caplog.at_level(logging.WARNING):
        assert attach_mlflow(run, config(tmp_path)) is None
    assert run.trackers == []
    assert [r.message for r in caplog.records if "mlflow is not installed" in r.message]


def test_ranks_other_than_zero_never_reach_mlflow(tmp_path: Path) -> None:
    run = Run(tmp_path, rank=1, tensorboard=False)
    assert attach_mlflow(run, config(tmp_path)) is None


@pytest.mark.parametrize(
    ("error", "status"),
    [(None, "FINISHED"), (RunStopped("pruned"), "KILLED"), (ValueError("boom"), "FAILED")],
)
def test_closing_records_how_the_run_ended(
    tmp_path: Path, error: BaseException | None, status: str
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    tracker = MLflowTracker.start(uri, "status", run_name="r")
    tracker.close(error)
    assert tracker.client.get_run(tracker.run_id).info.status == status


def test_sqlite_store_keeps_artifacts_beside_the_database(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'db' / 'mlruns.db'}"
    (tmp_path / "db").mkdir()
    tracker = MLflowTracker.start(uri, "artifacts", run_name="r")
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "best.pt").write_bytes(b"weights")
    run = Run(tmp_path / "run", tensorboard=False)
    run.trackers.append(tracker)
    run.log_artifacts(["checkpoints/best.pt", "missing.json"])
    run.close()
    stored = tmp_path / "db" / "mlartifacts" / "artifacts" / tracker.run_id / "artifacts"
    assert (stored / "checkpoints" / "best.pt").read_bytes() == b"weights"
