"""Where `ltr train` prints: its result (the run directory, the test line) on stdout, progress
and diagnostics on stderr, so `run=$(ltr train ... --quiet)` works; a reader that leaves early
(`| head`) stops the output, not the training."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ltr.cli import app
from ltr.config import load_config
from ltr.errors import LtrError
from ltr.training import run_experiment
from support.tiny_runs import relabel_in_place, write_tiny_data

REPO_ROOT = Path(__file__).resolve().parents[2]


def train_args(root: Path) -> list[str]:
    """``ltr train`` of configs/default.yaml for 1 epoch on tiny data, without MLflow."""
    sets = [
        f"data.root={root / 'data'}",
        f"tracking.output_dir={root / 'runs'}",
        "model.hidden_dims=[8]",
        "training.num_epochs=1",
        "training.batch_size=8",
        "training.device=cpu",
        "tracking.tensorboard=false",
        "tracking.mlflow=false",
    ]
    config = ["--config", str(REPO_ROOT / "configs" / "default.yaml")]
    return ["train", *config, *(arg for item in sets for arg in ("--set", item))]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_tiny_data(tmp_path / "data", n_queries=30)
    return tmp_path


def the_run(root: Path) -> Path:
    (run_dir,) = (root / "runs").iterdir()
    return run_dir


def test_train_prints_its_result_on_stdout_and_the_epochs_on_stderr(root: Path) -> None:
    result = CliRunner().invoke(app, train_args(root))

    assert result.exit_code == 0, result.output
    run_dir = the_run(root)
    shown, test = result.stdout.splitlines()
    assert shown == f"Run directory: {run_dir}"
    assert test.startswith("Test (best epoch 1): ndcg@1=")
    assert "Epoch 1/1: loss=" in result.stderr and "Run directory" not in result.stderr


def test_the_test_line_ends_with_an_early_stopping_metric_left_out_of_the_configured_ones(
    root: Path,
) -> None:
    stopping = ["--set", "training.early_stopping_metric=ndcg@2"]  # not in evaluation.metrics
    result = CliRunner().invoke(app, [*train_args(root), *stopping])

    assert result.exit_code == 0, result.output
    test = result.stdout.splitlines()[-1].removeprefix("Test (best epoch 1): ")
    shown = dict(item.split("=") for item in test.split(", "))
    assert list(shown) == ["ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "map", "mrr", "ndcg@2"]
    report = json.loads((the_run(root) / "metrics.json").read_text())
    assert shown["ndcg@2"] == f"{report['test']['ndcg@2']:.4f}"


def test_quiet_train_prints_exactly_the_run_directory(root: Path) -> None:
    result = CliRunner().invoke(app, [*train_args(root), "--quiet"])

    assert result.exit_code == 0, result.output
    assert result.stdout == f"{the_run(root)}\n"  # run=$(ltr train ... --quiet)
    assert result.stderr == ""


def test_quiet_train_names_its_run_directory_also_when_the_run_fails(root: Path) -> None:
    diverging = ["loss.name=mse", "training.learning_rate=1e30", "training.grad_clip=null"]
    sets = [arg for item in diverging for arg in ("--set", item)]
    result = CliRunner().invoke(app, [*train_args(root), *sets, "--quiet"])

    assert isinstance(result.exception, LtrError)  # `ltr` prints it as `error: ...`, exits 1
    assert str(result.exception).startswith("training diverged")
    assert result.stdout == f"{the_run(root)}\n"  # printed when it was made, like mktemp


def test_quiet_resume_prints_the_run_directory_it_was_given(root: Path) -> None:
    first = CliRunner().invoke(app, [*train_args(root), "--quiet"])
    assert first.exit_code == 0, first.output
    run_dir = first.stdout.strip()

    more = ["--set", "training.num_epochs=2", "--quiet"]
    resumed = CliRunner().invoke(app, ["train", "--resume", run_dir, *more])

    assert resumed.exit_code == 0, resumed.output
    assert resumed.stdout == f"{run_dir}\n"
    assert json.loads((Path(run_dir) / "metrics.json").read_text())["epochs"] == 2


def test_a_closed_output_pipe_stops_the_printing_not_the_training(root: Path) -> None:
    # ltr train ... 2>&1 | head: the reader is gone before the first line, so every print hits it
    process = subprocess.Popen(
        [sys.executable, "-m", "ltr", *train_args(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    process.stdout.close()

    assert process.wait(timeout=120) == 0
    run_dir = the_run(root)
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 1
    assert {"config.yaml", "training_history.json", "test_per_query.tsv"} <= {
        path.name for path in run_dir.iterdir()
    }


def test_a_refused_quiet_resume_still_prints_the_run_directory(root: Path) -> None:
    first = CliRunner().invoke(app, [*train_args(root), "--quiet"])
    assert first.exit_code == 0, first.output

    again = CliRunner().invoke(app, ["train", "--resume", str(the_run(root)), "--quiet"])

    assert isinstance(again.exception, LtrError)  # its 1 epoch is done: nothing to train
    assert str(again.exception).startswith("already trained 1 epochs")
    assert again.stdout == f"{the_run(root)}\n"  # run=$(ltr train --resume R --quiet) is R


def test_a_resume_refused_for_a_changed_data_file_does_not_say_it_is_resuming(root: Path) -> None:
    first = CliRunner().invoke(app, [*train_args(root), "--quiet"])
    assert first.exit_code == 0, first.output
    relabel_in_place(root / "data" / "test.txt")
    more = ["--set", "training.num_epochs=2"]

    again = CliRunner().invoke(app, ["train", "--resume", str(the_run(root)), *more])

    assert isinstance(again.exception, LtrError)
    assert "test file" in str(again.exception) and "changed since the run started" in str(
        again.exception
    )
    assert "resuming" not in again.stderr  # every refusal comes before that line
    assert again.stdout == f"Run directory: {the_run(root)}\n"


def test_train_prints_its_run_directory_absolute_whatever_the_output_dir(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(root)
    relative = ["--set", "tracking.output_dir=runs", "--quiet"]  # the last --set wins

    result = CliRunner().invoke(app, [*train_args(root), *relative])

    assert result.exit_code == 0, result.output
    assert result.stdout == f"{the_run(root).resolve()}\n"  # as ltr cv and ltr ensemble print


def test_the_library_leaves_showing_the_run_directory_to_its_caller(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sets = train_args(root)[4::2]  # the --set values
    config = load_config(REPO_ROOT / "configs" / "default.yaml", sets)
    shown: list[Path] = []

    run_dir = run_experiment(config, on_run_dir=shown.append)

    assert shown == [run_dir]
    out = capsys.readouterr().out
    assert "Run directory" not in out and out.startswith("Test (best epoch 1): ")


def test_a_quiet_runs_train_log_keeps_the_epoch_and_test_lines_it_did_not_show(
    root: Path, ltr_main
) -> None:
    status, out, err = ltr_main(*train_args(root), "--quiet")

    assert status == 0, err
    assert out == f"{the_run(root)}\n" and "Epoch" not in err  # the screen: the run alone
    log = (the_run(root) / "train.log").read_text(encoding="utf-8").splitlines()
    assert log[0] == str(the_run(root))
    assert any(line.startswith("Epoch 1/1: loss=") for line in log)
    assert any(line.startswith("Test (best epoch 1)") for line in log)


def test_train_log_copies_the_console_and_a_resume_continues_it(root: Path, ltr_main) -> None:
    status, out, err = ltr_main(*train_args(root))  # the real main(): what `ltr` prints
    assert status == 0, err
    log = the_run(root) / "train.log"
    first = log.read_text(encoding="utf-8").splitlines()
    assert sorted(first) == sorted([*out.splitlines(), *err.splitlines()])  # stdout and stderr
    assert any(line.startswith("Epoch 1/1: loss=") for line in first)

    more = ["--set", "training.num_epochs=2"]
    status, out, err = ltr_main("train", "--resume", the_run(root), *more)
    assert status == 0, err
    separator, *second = log.read_text(encoding="utf-8").splitlines()[len(first) :]
    assert separator.startswith("--- resumed ")
    assert sorted(second) == sorted([*out.splitlines(), *err.splitlines()])

    status, out, err = ltr_main("train", "--resume", the_run(root), *more)  # nothing left
    assert status == 1 and err.startswith("error: already trained 2 epochs")
    assert len(log.read_text(encoding="utf-8").splitlines()) == len(first) + 1 + len(second)


def test_a_resume_names_its_run_directory_before_refusing_its_set_items(
    root: Path, ltr_main
) -> None:
    status, _, err = ltr_main(*train_args(root), "--quiet")
    assert status == 0, err
    run_dir = the_run(root).resolve()

    for item in ("training.learning_rat=1", "training.learning_rate=-1", "training.num_epochs=x"):
        status, out, err = ltr_main("train", "--resume", run_dir, "--set", item, "--quiet")
        assert status == 1 and err.startswith(f"error: --set {item}"), err
        assert out == f"{run_dir}\n"  # R=$(ltr train --resume R --quiet) holds R, refused or not

        status, out, err = ltr_main("train", "--resume", run_dir, "--set", item)
        assert status == 1 and out == f"Run directory: {run_dir}\n", err


def test_a_resume_of_no_run_directory_names_none(root: Path, ltr_main) -> None:
    (root / "empty").mkdir()
    status, out, err = ltr_main("train", "--resume", root / "empty", "--quiet")

    assert status == 1 and "is it a run directory?" in err
    assert out == ""
