"""`ltr train --resume` as typed: its first line, and the folders it cannot resume."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ltr.training.experiment as experiment_module
from ltr.experiments.tracking import Run
from ltr.training.ensemble import build_ensemble
from support.tiny_runs import tiny_run, write_tiny_data


def ltr_resume(folder: Path, *sets: str) -> subprocess.CompletedProcess[str]:
    args = [arg for item in sets for arg in ("--set", item)]
    return subprocess.run(
        [sys.executable, "-m", "ltr", "train", "--resume", str(folder), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two finished 3-epoch runs of different seeds."""
    root = write_tiny_data(tmp_path_factory.mktemp("data"))
    out = tmp_path_factory.mktemp("runs")
    return [tiny_run(root, out, f"training.seed={seed}") for seed in (0, 1)]


def test_resume_says_which_epoch_it_continues_from(runs: list[Path]) -> None:
    result = ltr_resume(runs[0], "training.num_epochs=4")

    assert result.returncode == 0, result.stderr
    assert f"resuming {runs[0]} from checkpoints/last.pt (epoch 3 of 4)\n" in result.stderr


def test_resume_of_a_missing_folder_says_it_does_not_exist(tmp_path: Path) -> None:
    result = ltr_resume(tmp_path / "gone")

    assert result.returncode == 1
    assert result.stderr == f"error: cannot resume {tmp_path / 'gone'}: it does not exist\n"
    assert not (tmp_path / "gone").exists()


def test_resume_of_a_cv_directory_points_to_ltr_cv(tmp_path: Path) -> None:
    (tmp_path / "cv.json").write_text("{}", encoding="utf-8")
    result = ltr_resume(tmp_path)

    assert result.returncode == 1
    assert result.stderr == f"error: {tmp_path} is a cv directory: use ltr cv --resume {tmp_path}\n"


def test_resume_of_an_ensemble_says_it_was_never_trained(runs: list[Path], tmp_path: Path) -> None:
    ensemble = build_ensemble(runs, output_dir=tmp_path, quiet=True)
    result = ltr_resume(ensemble)

    assert result.returncode == 1
    assert result.stderr == (
        f"error: {ensemble} is an ensemble (ltr ensemble): it averages trained runs and was not "
        "trained itself, so there is nothing to resume\n"
    )


def test_a_resume_checks_its_folder_once_per_entry_and_opens_the_run_once(
    ltr_main: Callable[..., tuple[int, str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tiny_run(write_tiny_data(tmp_path / "data"), tmp_path / "runs")
    checked: list[Path] = []  # the real functions run; the lists only count the calls
    opened: list[Path] = []
    check, open_run = experiment_module.check_resume_dir, Run.open.__func__

    def counted_check(folder: Path) -> None:
        checked.append(folder)
        check(folder)

    def counted_open(cls: type[Run], path: Path, **options: Any) -> Run:
        opened.append(path)
        return open_run(cls, path, **options)

    monkeypatch.setattr(experiment_module, "check_resume_dir", counted_check)
    monkeypatch.setattr(Run, "open", classmethod(counted_open))
    sets = ["--set", "training.num_epochs=4", "--quiet"]
    status, out, err = ltr_main("train", "--resume", run_dir, *sets)

    assert status == 0, err
    assert out == f"{run_dir}\n"
    # once by the command (to name the run before any refusal), once by run_experiment (its own
    # callers pass any folder); the run itself is opened once, to train
    assert checked == [run_dir, run_dir]
    assert opened == [run_dir]
