"""`ltr promote RUN --to validated` against a real SQLite MLflow store, library and CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ltr.config import PromotionConfig, load_config
from ltr.errors import LtrError
from ltr.lifecycle.registry import promote_to_validated
from ltr.training import run_experiment
from support.tiny_runs import relabel_in_place, retrained_copy, write_tiny_data

pytestmark = [
    pytest.mark.slow,
    # MLflow 3.17's SQLAlchemy store configures its mappers with the deprecated ``noload``
    # strategy; SQLAlchemy 2.1 warns about it on the first use of a store (not our code)
    pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning"),
]

NAME = "tiny"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module: creating its tables takes seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlruns.db'}"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_data(tmp_path_factory.mktemp("data"), n_features=10, max_docs=20)


def train_run(root: Path, out: Path, *overrides: str) -> Path:
    base: dict[str, Any] = {
        "experiment": {"name": NAME},
        "data": {"root": str(root)},
        "model": {"name": "mlp", "hidden_dims": [8]},
        "training": {"num_epochs": 2, "batch_size": 8, "device": "cpu"},
        "tracking": {"output_dir": str(out), "tensorboard": False, "mlflow": False},
        "promotion": {"compare_to_validated": False},
    }
    return run_experiment(load_config(base=base, overrides=overrides), quiet=True)


def client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_tracked_run_is_registered_from_its_logged_checkpoint(
    data_root: Path, store: str, tmp_path: Path
) -> None:
    run = train_run(
        data_root, tmp_path / "runs", "tracking.mlflow=true", f"tracking.mlflow_uri={store}"
    )
    run_id = json.loads((run / "mlflow.json").read_text())["run_id"]

    model = promote_to_validated(run, validated_dir=tmp_path / "validated")

    registry = model.metadata["registry"]
    assert registry["tracking_uri"] == store
    assert model.metadata["mlflow_run_id"] == run_id
    version = client(store).get_model_version_by_alias(NAME, "validated")
    assert int(version.version) == registry["version"]
    assert version.source == f"runs:/{run_id}/checkpoints/best.pt"
    assert version.run_id == run_id
    assert version.tags == {
        "ltr.model_id": "tiny_v1.0.0",
        "ltr.version": "1.0.0",
        "ltr.validated_dir": str((tmp_path / "validated").resolve()),
    }


def test_untracked_run_is_registered_from_the_validated_folder(
    data_root: Path, store: str, tmp_path: Path
) -> None:
    run = train_run(data_root, tmp_path / "runs")
    validated = tmp_path / "validated"

    twin = retrained_copy(run, tmp_path / "twin" / run.name)  # a new checkpoint
    name = "tiny-untracked"  # the module's store registers "tiny" from another folder
    first = promote_to_validated(run, name=name, validated_dir=validated, tracking_uri=store)
    second = promote_to_validated(
        twin, name=name, version="1.1.0", promotion=PromotionConfig(compare_to_validated=False),
        validated_dir=validated, tracking_uri=store,
    )  # fmt: skip

    version = client(store).get_model_version_by_alias(name, "validated")  # moved to the newest
    assert int(version.version) == second.metadata["registry"]["version"]
    assert int(version.version) == first.metadata["registry"]["version"] + 1
    assert version.source == (validated / "tiny-untracked_v1.1.0").resolve().as_uri()
    assert version.tags["ltr.model_id"] == "tiny-untracked_v1.1.0"


def test_a_name_registered_from_one_validated_folder_refuses_another(
    data_root: Path, store: str, tmp_path: Path
) -> None:
    # the bypass: a run whose promotion.validated_dir is another folder would pass that
    # folder's empty gate for the name, and move the name's alias to a model never compared
    run = train_run(data_root, tmp_path / "runs")
    worse = retrained_copy(run, tmp_path / "twin" / run.name)
    name, validated, val2 = "tiny-gated", tmp_path / "validated", tmp_path / "val2"
    promote_to_validated(run, name=name, validated_dir=validated, tracking_uri=store)

    with pytest.raises(LtrError) as refused:
        promote_to_validated(worse, name=name, validated_dir=val2, tracking_uri=store)

    assert str(refused.value) == (
        f"MLflow registry at {store}: {name} is registered from validated folder "
        f"{validated.resolve()} (version 1, {name}_v1.0.0), not from {val2.resolve()}; one gate "
        f"per name: validate the run into {validated.resolve()} (promotion.validated_dir) or "
        "under another --name; nothing written"
    )
    assert [p.name for p in val2.iterdir()] == []  # no validated model, no temp folder
    assert int(client(store).get_model_version_by_alias(name, "validated").version) == 1


def ltr(*args: str, cwd: Path, store: str | None = None) -> subprocess.CompletedProcess[str]:
    """``ltr ARGS`` in ``cwd``; MLflow's store is the session's temporary one unless ``store``."""
    return subprocess.run(
        [sys.executable, "-m", "ltr", *args],
        cwd=cwd,
        env={**os.environ, **({"MLFLOW_TRACKING_URI": store} if store else {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_promotes_a_passing_run(data_root: Path, tmp_path: Path) -> None:
    run = train_run(data_root, tmp_path / "runs")

    done = ltr("promote", str(run), "--to", "validated", "--version", "1.0.0", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "tiny_v1.0.0" in done.stdout
    metadata = json.loads((tmp_path / "validated" / "tiny_v1.0.0" / "metadata.json").read_text())
    assert metadata["registry"]["alias"] == "validated"
    assert metadata["registry"]["tracking_uri"] == os.environ["MLFLOW_TRACKING_URI"]

    twin = retrained_copy(run, tmp_path / "twin" / run.name)  # a new checkpoint
    named = ltr("promote", str(twin), "--to", "validated", "--name", "tiny-fold2", cwd=tmp_path)
    assert named.returncode == 0, named.stderr
    assert "tiny-fold2_v1.1.0" in named.stdout  # its own name; versions: one sequence
    bad = ltr("promote", str(run), "--to", "validated", "--name", "tiny/2", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr == "error: --name 'tiny/2': use letters, digits, '_', '.' and '-' only\n"


def test_cli_promotion_sets_up_a_new_store_without_printing_mlflow_lines(
    data_root: Path, tmp_path: Path
) -> None:
    run = train_run(data_root, tmp_path / "runs")

    done = ltr("promote", str(run), "--to", "validated", cwd=tmp_path, store="sqlite:///new.db")

    assert done.returncode == 0, done.stderr
    assert (tmp_path / "new.db").is_file()
    assert "database tables" not in done.stdout + done.stderr


def test_cli_refuses_a_failing_run_with_exit_1(data_root: Path, tmp_path: Path) -> None:
    run = train_run(data_root, tmp_path / "runs", "promotion.min_metrics={ndcg@10: 0.99}")
    test = json.loads((run / "metrics.json").read_text())["test"]

    done = ltr("promote", str(run), "--to", "validated", cwd=tmp_path)

    assert done.returncode == 1
    assert done.stderr == (
        f"error: run {run}: ndcg@10 = {test['ndcg@10']:.3f} is below the gate 0.990\n"
    )
    assert not (tmp_path / "validated").exists()


def test_cli_refuses_a_run_whose_test_file_was_edited_in_place_since(tmp_path: Path) -> None:
    data = write_tiny_data(tmp_path / "data", n_features=10, max_docs=20)
    before = train_run(data, tmp_path / "runs", "experiment.name=before")
    relabel_in_place(data / "test.txt")  # same path, same query ids, one label changed
    after = train_run(data, tmp_path / "runs", "experiment.name=after")
    then, now = (
        json.loads((run / "metrics.json").read_text())["data"]["test"]["sha256"][:12]
        for run in (before, after)
    )

    passed = ltr("promote", str(after), "--to", "validated", cwd=tmp_path)
    refused = ltr("promote", str(before), "--to", "validated", cwd=tmp_path)

    assert passed.returncode == 0, passed.stderr
    assert refused.returncode == 1
    assert refused.stderr == (
        f"error: run {before}'s test file {(data / 'test.txt').resolve()} changed since the "
        f"run read it (sha256 {then} then, {now} now); its metrics describe the file it read: "
        "restore that file or train again\n"
    )
