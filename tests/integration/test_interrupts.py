"""Ctrl-C and SIGTERM at chosen moments of real `ltr` processes: what stays, what it says.

Each test runs the command line in a subprocess through ``support/stop_at.py``, which sends the
process a real signal at one moment (mid-epoch, just before a checkpoint lands, at the final
test evaluation, just before an output lands). Then: the exit status is 128 + the signal, the
last line says what was kept, every artifact is whole or absent, no temp file stays behind, and
resuming the run ends where an uninterrupted run with the same seed ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from ltr.config import ExperimentConfig, load_config
from ltr.experiments.mlflow_tracker import RUN_ARTIFACTS
from ltr.training import load_run_config, resume_cv, run_experiment
from ltr.training.checkpoint import load_checkpoint
from support.tiny_runs import write_tiny_data

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = str(REPO_ROOT / "configs" / "default.yaml")
STOP_AT = REPO_ROOT / "tests" / "support" / "stop_at.py"
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
BATCHES_PER_EPOCH = 3  # 24 training queries of write_tiny_data's 40, batches of 8


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_data(tmp_path_factory.mktemp("data"))


def overrides(data_root: Path, out: Path, *more: str) -> list[str]:
    return [
        f"data.root={data_root}",
        f"tracking.output_dir={out}",
        "experiment.name=stopped",
        "model.name=mlp",
        "model.hidden_dims=[8]",
        "model.dropout=0.1",  # RNG state must survive the stop too
        "loss.name=listnet",
        "training.num_epochs=3",
        "training.batch_size=8",
        "training.learning_rate=0.03",  # every epoch improves: each writes best.pt
        "training.device=cpu",
        "tracking.tensorboard=false",
        "tracking.mlflow=false",
        *more,
    ]


def config_of(items: list[str]) -> ExperimentConfig:
    return load_config(DEFAULT_CONFIG, items)  # what `ltr train --config ... --set ...` runs


@pytest.fixture(scope="module")
def reference(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run every stopped-and-resumed run must end as."""
    run_dir = run_experiment(
        config_of(overrides(data_root, tmp_path_factory.mktemp("reference"))), quiet=True
    )
    history = json.loads((run_dir / "training_history.json").read_text(encoding="utf-8"))
    values = [record["valid_ndcg@10"] for record in history]
    assert len(values) == 3 and values == sorted(set(values))  # the moments below rely on it
    return run_dir


def stop_train(
    moment: str, signal_name: str, items: list[str], *options: str
) -> subprocess.CompletedProcess[str]:
    sets = [arg for item in items for arg in ("--set", item)]
    return run_stopped(moment, signal_name, ["train", "--config", DEFAULT_CONFIG, *sets, *options])


def run_stopped(moment: str, signal_name: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    """``ltr ARGS`` in a subprocess that gets ``signal_name`` at ``moment`` (see stop_at.py)."""
    return subprocess.run(
        [sys.executable, str(STOP_AT), moment, signal_name, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def only_run(out: Path) -> Path:
    (run_dir,) = out.iterdir()
    return run_dir


def assert_whole_or_absent(run_dir: Path) -> None:
    """Every artifact loads; no temp file of an atomic write stayed behind."""
    assert not [p.name for p in run_dir.rglob("*.tmp")]
    for name in ("last", "best"):
        if (run_dir / "checkpoints" / f"{name}.pt").exists():
            load_checkpoint(run_dir / "checkpoints" / f"{name}.pt")
    for name in ("training_history.json", "metrics.json", "preprocessor.json"):
        if (run_dir / name).exists():
            json.loads((run_dir / name).read_text(encoding="utf-8"))
    yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))


def closing_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr and result.stderr.strip(), result.stderr
    return result.stderr.strip().splitlines()[-1]


def resume(run_dir: Path) -> None:
    run_experiment(load_run_config(run_dir), resume=run_dir, quiet=True)


def tracked_overrides(data_root: Path, tmp_path: Path) -> tuple[str, list[str]]:
    """An MLflow store in ``tmp_path`` and the overrides of a run tracked there."""
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    items = overrides(data_root, tmp_path / "runs", "tracking.mlflow=true")
    return uri, [*items, f"tracking.mlflow_uri={uri}"]


def mlflow_status(uri: str, run_id: str) -> str:
    return str(mlflow_client(uri).get_run(run_id).info.status)


def mlflow_files(uri: str, run_id: str, folder: str | None = None) -> set[str]:
    """Paths of every file the MLflow run holds."""
    files = set()
    for entry in mlflow_client(uri).list_artifacts(run_id, folder):
        files |= mlflow_files(uri, run_id, entry.path) if entry.is_dir else {entry.path}
    return files


def mlflow_client(uri: str) -> Any:
    with warnings.catch_warnings():  # mlflow's store module warns on import (SQLAlchemy 2.1)
        warnings.simplefilter("ignore", DeprecationWarning)
        from mlflow.tracking import MlflowClient

        return MlflowClient(uri)


def assert_same_ending(run_dir: Path, reference: Path) -> None:
    for name in ("last", "best"):
        mine = load_checkpoint(run_dir / "checkpoints" / f"{name}.pt")["model"]
        theirs = load_checkpoint(reference / "checkpoints" / f"{name}.pt")["model"]
        assert all(torch.equal(mine[key], theirs[key]) for key in theirs), name
    report, expected = (
        json.loads((path / "metrics.json").read_text(encoding="utf-8"))
        for path in (run_dir, reference)
    )
    assert report["best_epoch"] == expected["best_epoch"]
    assert report["test"] == expected["test"]


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_signal_mid_epoch_ends_with_one_line_and_the_run_resumes_to_the_same_weights(
    signal_name: str, data_root: Path, reference: Path, tmp_path: Path
) -> None:
    uri, items = tracked_overrides(data_root, tmp_path)
    result = stop_train(f"loss:{BATCHES_PER_EPOCH + 2}", signal_name, items)  # epoch 2

    assert result.returncode == EXIT_CODES[signal_name], result.stderr
    run_dir = only_run(tmp_path / "runs")
    assert closing_line(result) == (
        f"interrupted by {signal_name}; {run_dir}: checkpoints/last.pt holds epoch 1 of 3; "
        f"continue with: ltr train --resume {run_dir}"
    )
    assert_whole_or_absent(run_dir)
    assert not (run_dir / "metrics.json").exists()
    history = json.loads((run_dir / "training_history.json").read_text(encoding="utf-8"))
    assert [record["epoch"] for record in history] == [1]

    run_id = json.loads((run_dir / "mlflow.json").read_text(encoding="utf-8"))["run_id"]
    assert mlflow_status(uri, run_id) == "KILLED"

    resume(run_dir)
    assert_same_ending(run_dir, reference)
    assert mlflow_status(uri, run_id) == "FINISHED"


@pytest.mark.parametrize(
    ("moment", "more", "options", "shown"),
    [  # the run directory is on stdout from the moment it exists, --quiet or not
        ("tensorboard", ["tracking.tensorboard=true"], ["--quiet"], "{}\n"),  # just made
        ("loss:2", [], [], "Run directory: {}\n"),  # in the first epoch
    ],
)
def test_stop_before_the_first_checkpoint_names_the_run_directory_to_delete(
    moment: str, more: list[str], options: list[str], shown: str, data_root: Path, tmp_path: Path
) -> None:
    result = stop_train(moment, "SIGINT", overrides(data_root, tmp_path, *more), *options)

    assert result.returncode == 130, result.stderr
    run_dir = only_run(tmp_path)
    assert closing_line(result) == (
        f"interrupted by SIGINT; {run_dir} holds no checkpoint (stopped before its first epoch "
        "ended); nothing to resume: delete it"
    )
    assert result.stdout == shown.format(run_dir)


@pytest.mark.parametrize("file_name", ["best.pt", "last.pt"])
def test_stop_while_checkpoints_land_resumes_to_the_same_best_and_last(
    file_name: str, data_root: Path, reference: Path, tmp_path: Path
) -> None:
    # epoch 3, the last and best one, writes two checkpoints; stop just before one of them lands
    result = stop_train(f"rename:{file_name}:3", "SIGTERM", overrides(data_root, tmp_path))

    assert result.returncode == 143, result.stderr
    run_dir = only_run(tmp_path)
    assert closing_line(result).startswith(
        f"interrupted by SIGTERM; {run_dir}: checkpoints/last.pt holds epoch "
    )
    assert_whole_or_absent(run_dir)

    resume(run_dir)
    assert_same_ending(run_dir, reference)


def test_stop_during_the_test_evaluation_resumes_to_the_test_metrics(
    data_root: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rüns of ünit tests"  # the command in the line must survive a shell
    result = stop_train("test", "SIGINT", overrides(data_root, out))

    assert result.returncode == 130, result.stderr
    run_dir = only_run(out)
    assert closing_line(result) == (
        f"interrupted by SIGINT; {run_dir}: checkpoints/last.pt holds epoch 3 of 3; "
        f"continue with: ltr train --resume '{run_dir}'"
    )
    assert_whole_or_absent(run_dir)
    assert not (run_dir / "metrics.json").exists()

    resume(run_dir)  # nothing left to train: it tests the best epoch
    assert_same_ending(run_dir, reference)


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_stop_during_the_mlflow_upload_waits_for_it_and_the_run_ends_finished(
    signal_name: str, data_root: Path, reference: Path, tmp_path: Path
) -> None:
    uri, items = tracked_overrides(data_root, tmp_path)
    result = stop_train("artifact:3", signal_name, items)  # 2 of the run's 6 files uploaded

    assert result.returncode == EXIT_CODES[signal_name], result.stderr
    run_dir = only_run(tmp_path / "runs")
    run_id = json.loads((run_dir / "mlflow.json").read_text(encoding="utf-8"))["run_id"]
    assert closing_line(result) == (
        f"interrupted by {signal_name}; {run_dir} finished before the stop took effect: "
        f"metrics.json written, MLflow run {run_id} FINISHED with every file; nothing to resume"
    )
    assert_whole_or_absent(run_dir)
    assert_same_ending(run_dir, reference)
    assert mlflow_status(uri, run_id) == "FINISHED"
    assert mlflow_files(uri, run_id) == set(RUN_ARTIFACTS)


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_stop_after_the_command_finished_keeps_its_exit_status(
    signal_name: str, data_root: Path, reference: Path, tmp_path: Path
) -> None:
    # A signal from outside once the last line is out. CPython puts the default signal actions
    # back before it tears its modules down (a second or more with torch imported): a stop then
    # killed the process (exit 130/143, no line), so a finished run looked failed to its caller.
    sets = [arg for item in overrides(data_root, tmp_path / "runs") for arg in ("--set", item)]
    command = [sys.executable, "-m", "ltr", "train", "--config", DEFAULT_CONFIG, *sets]
    pipe = subprocess.PIPE
    with subprocess.Popen(command, stdout=pipe, stderr=pipe, text=True) as ltr:
        assert ltr.stdout is not None
        for line in ltr.stdout:
            if line.startswith("Test (best epoch"):  # the last line: metrics.json comes next
                break
        time.sleep(0.3)
        ltr.send_signal(signal.Signals[signal_name])  # a no-op if the process has ended
        out, err = ltr.communicate(timeout=60)

    assert ltr.returncode == 0, err
    assert "interrupted" not in err and out == ""  # nothing after the last line
    run_dir = only_run(tmp_path / "runs")
    assert_same_ending(run_dir, reference)
    assert (run_dir / "train.log").read_text(encoding="utf-8").splitlines()[-1] == line.rstrip()


def test_a_stop_while_the_exit_hooks_run_keeps_the_exit_status(
    data_root: Path, reference: Path, tmp_path: Path
) -> None:
    # atexit hooks run while the process ends (MLflow's, logging's): a stop then cuts them short
    result = stop_train("exit", "SIGTERM", overrides(data_root, tmp_path / "runs"), "--quiet")

    assert result.returncode == 0, result.stderr
    run_dir = only_run(tmp_path / "runs")
    assert result.stdout == f"{run_dir}\n"
    assert (run_dir / "metrics.json").is_file()
    assert_same_ending(run_dir, reference)


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_interrupted_predict_leaves_no_file_at_the_output(
    signal_name: str, data_root: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scores.txt"
    args = ["predict", "--model", str(reference), "--data", str(data_root / "test.txt")]
    result = run_stopped("rename:scores.txt:1", signal_name, [*args, "--out", str(out)])

    assert result.returncode == EXIT_CODES[signal_name], result.stderr
    assert closing_line(result) == f"interrupted by {signal_name}; no output was left half-written"
    assert os.listdir(tmp_path) == []


def test_interrupted_export_leaves_no_bundle(reference: Path, tmp_path: Path) -> None:
    args = ["export", "--model", str(reference), "--output", str(tmp_path / "bundle")]
    result = run_stopped("rename:bundle:1", "SIGTERM", args)

    assert result.returncode == 143, result.stderr
    assert closing_line(result) == "interrupted by SIGTERM; no output was left half-written"
    assert os.listdir(tmp_path) == []


def test_stop_during_cv_names_the_cvs_resume_command_and_it_finishes_the_cv(
    tmp_path: Path,
) -> None:
    folds = tmp_path / "folds"
    for number in (1, 2):
        write_tiny_data(folds / f"Fold{number}", seed=number)
    items = [item for item in overrides(folds, tmp_path / "runs") if not item.startswith("data.")]
    sets = [arg for item in items for arg in ("--set", item)]
    args = ["cv", "--config", DEFAULT_CONFIG, "--folds", str(folds), *sets, "--quiet"]
    result = run_stopped(f"loss:{3 * BATCHES_PER_EPOCH + 2}", "SIGINT", args)  # Fold2, epoch 1

    assert result.returncode == 130, result.stderr
    cv_dir = only_run(tmp_path / "runs")
    assert closing_line(result) == (
        f"interrupted by SIGINT; stopped in Fold2, 1 of 2 folds done; "
        f"continue with: ltr cv --resume {cv_dir}"
    )
    assert result.stdout == f"{cv_dir.resolve()}\n"  # cv=$(ltr cv ... --quiet) has it

    done = resume_cv(cv_dir, quiet=True)
    assert done is not None and all(fold.test is not None for fold in done.folds)
