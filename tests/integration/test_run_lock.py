"""Two real `ltr` processes training one run (or cv) directory: the second is refused at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.tiny_runs import tiny_run, write_tiny_data

MANY = "1000000"  # epochs and patience: the first process trains until it is stopped
TRAINING_FOREVER = [
    f"training.num_epochs={MANY}",
    f"training.early_stopping_patience={MANY}",
    "tracking.mlflow=false",
    "tracking.tensorboard=false",
]


def ltr(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ltr", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_holder(lock: Path, first: subprocess.Popen[str]) -> None:
    """Until ``first`` has written its pid into the lock file it holds."""
    deadline = time.monotonic() + 60
    while not (lock.is_file() and lock.read_text(encoding="utf-8") == str(first.pid)):
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first process never took the lock"
        time.sleep(0.1)


def assert_refused_while_held(directory: Path, first: subprocess.Popen[str], *args: str) -> None:
    try:
        wait_for_holder(directory / "train.lock", first)
        second = subprocess.run(
            [sys.executable, "-m", "ltr", *args], capture_output=True, text=True, timeout=60
        )
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)

    assert second.returncode == 1
    assert second.stderr.strip() == (
        f"error: {directory} is being trained by another process (pid {first.pid}); "
        "wait for it to end or stop it"
    )


@pytest.mark.slow  # two processes, one training until stopped: ~25 s on 2 cores
def test_second_resume_of_a_run_being_trained_is_refused(tmp_path: Path) -> None:
    run_dir = tiny_run(write_tiny_data(tmp_path / "data"), tmp_path / "runs")
    sets = [arg for item in TRAINING_FOREVER for arg in ("--set", item)]
    first = ltr("train", "--resume", run_dir, *sets, "--quiet")

    assert_refused_while_held(run_dir, first, "train", "--resume", str(run_dir), *sets)


@pytest.mark.slow
def test_resume_of_a_cv_being_trained_is_refused(tmp_path: Path) -> None:
    write_tiny_data(tmp_path / "folds" / "Fold1")
    sets = [arg for item in TRAINING_FOREVER for arg in ("--set", item)]
    out = tmp_path / "runs"
    config = Path(__file__).resolve().parents[2] / "configs" / "default.yaml"
    first = ltr(
        "cv", "--config", config, "--folds", tmp_path / "folds", *sets,
        "--set", f"tracking.output_dir={out}", "--set", "training.device=cpu",
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not list(out.glob("*/cv.json")):  # a cv directory is resumable from then on
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.1)
    (cv_dir,) = out.iterdir()

    assert_refused_while_held(cv_dir, first, "cv", "--resume", str(cv_dir))
