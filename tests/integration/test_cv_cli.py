"""`ltr cv` as a user runs it: a subprocess on synthetic folds, MLflow in a real SQLite store."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from ltr.cli import app
from ltr.errors import LtrError
from ltr.experiments.mlflow_tracker import read_run_file
from support.tiny_runs import write_tiny_data

CONFIG = {
    "experiment": {"name": "tiny"},
    "model": {"name": "mlp", "hidden_dims": [8]},
    "loss": {"name": "listnet"},
    "training": {"num_epochs": 2, "batch_size": 8, "device": "cpu"},
    "tracking": {"tensorboard": False},
}


def run_ltr(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ltr", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "120"},
        check=False,
    )


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``folds/Fold1..Fold3`` (a seed each) and ``tiny.yaml`` without a data section."""
    root = tmp_path_factory.mktemp("cv")
    for number in (1, 2, 3):
        write_tiny_data(root / "folds" / f"Fold{number}", n_queries=30, max_docs=10, seed=number)
    (root / "tiny.yaml").write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    return root


@pytest.mark.slow  # three runs and a resume in subprocesses, with MLflow: ~30 s on 2 cores
# mlflow's SQL store uses a loader strategy SQLAlchemy 2.1 deprecates; mlflow's to fix (ltr's own
# client silences it the same way, ltr.experiments.mlflow_tracker.mlflow_client)
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")
def test_ltr_cv_reports_every_fold_and_resumes_an_unfinished_one(workdir: Path) -> None:
    first = run_ltr(
        "cv", "--config", "tiny.yaml", "--folds", "folds", "--device", "cpu", cwd=workdir
    )

    assert first.returncode == 0, first.stderr
    (cv_dir,) = (workdir / "experiments").glob("*-tiny-cv")  # where ltr train puts runs
    cv = read_json(cv_dir / "cv.json")
    lines = [line for line in first.stderr.splitlines() if line.startswith("Fold ")]
    assert [line.split(":")[0] for line in lines] == ["Fold 1/3", "Fold 2/3", "Fold 3/3"]
    assert all(f"trained Fold{i}" in line for i, line in enumerate(lines, 1))
    for name in ("Fold1", "Fold2", "Fold3", "mean", "± std", "ndcg@10", "gain=exp2"):
        assert name in first.stdout
    mean, std = cv["metrics"]["ndcg@10"]["mean"], cv["metrics"]["ndcg@10"]["std"]
    assert f"{mean:.4f}" in first.stdout and f"± {std:.4f}" in first.stdout
    for fold in cv["folds"]:  # each fold is an MLflow run, as an ltr train run is
        info = read_run_file(Path(fold["run_dir"]))
        assert info is not None and info["tracking_uri"] == os.environ["MLFLOW_TRACKING_URI"]
        run = MlflowClient(info["tracking_uri"]).get_run(info["run_id"])
        assert run.info.run_name == f"{cv_dir.name}/{fold['name']}"
        assert (run.data.tags["ltr.cv_dir"], run.data.tags["ltr.fold"]) == (
            str(cv_dir),
            fold["name"],
        )
        assert run.data.metrics["test/ndcg_at_10"] == fold["test"]["ndcg@10"]

    fold2 = Path(cv["folds"][1]["run_dir"])
    (fold2 / "metrics.json").unlink()
    resumed = run_ltr("cv", "--resume", cv_dir, "--quiet", cwd=workdir)

    assert resumed.returncode == 0, resumed.stderr
    assert "Fold " not in resumed.stderr and resumed.stdout == f"{cv_dir}\n"  # the result alone
    assert read_json(fold2 / "metrics.json")["test"] == cv["folds"][1]["test"]
    assert read_json(cv_dir / "cv.json")["metrics"] == cv["metrics"]


def test_table_shows_the_letor_scripts_ndcg_of_the_fold_runs(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    result = CliRunner().invoke(
        app,
        [
            *("cv", "--config", "tiny.yaml", "--folds", "folds"),
            *("--set", "tracking.mlflow=false", "--set", "tracking.output_dir=letor"),
        ],
    )

    assert result.exit_code == 0, result.output
    assert "letor@10" in result.stdout
    (cv_dir,) = (workdir / "letor").glob("*-cv")
    folds = [read_json(path)["test"] for path in sorted(cv_dir.glob("Fold*/*/metrics.json"))]
    summary = read_json(cv_dir / "cv.json")["metrics"]["ndcg@10[preset=letor]"]
    assert len(folds) == summary["count"] == 3
    assert summary["mean"] == pytest.approx(np.mean([f["ndcg@10[preset=letor]"] for f in folds]))


def test_table_says_when_a_mean_is_over_fewer_folds_than_it_lists(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    sets = ("--set", "tracking.mlflow=false", "--set", "tracking.output_dir=partial")
    first = CliRunner().invoke(
        app, ["cv", "--config", "tiny.yaml", "--folds", "folds", *sets, "--quiet"]
    )
    assert first.exit_code == 0, first.output
    (cv_dir,) = (workdir / "partial").glob("*-cv")
    assert first.stdout == f"{cv_dir.resolve()}\n"  # cv=$(ltr cv ... --quiet): the cv dir alone
    for path in sorted(cv_dir.glob("Fold[12]/*/metrics.json")):  # as before ltr recorded it
        report = read_json(path)
        del report["test"]["ndcg@10[preset=letor]"]
        path.write_text(json.dumps(report), encoding="utf-8")

    result = CliRunner().invoke(app, ["cv", "--resume", str(cv_dir)])

    assert result.exit_code == 0, result.output
    shown = " ".join(result.stdout.split())  # the caption wraps at the terminal's width
    assert "test metrics of 3 folds;" in shown
    assert "letor@10: mean over the 1 of 3 folds that have it" in shown
    assert "ndcg@10: mean over" not in shown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--resume", "cv", "--folds", "folds"], "config in its cv.json; drop --folds"),
        (
            ["--resume", "cv", "--config", "tiny.yaml", "--loss", "ranknet", "--set", "a=1"],
            "config in its cv.json; drop --config, --loss, --set",
        ),
        (["--config", "tiny.yaml"], "give --config FILE and --folds DIR"),
        (["--config", "tiny.yaml", "--folds", "nowhere"], "folds folder nowhere does not exist"),
        (["--config", "tiny.yaml", "--folds", "."], "holds no fold folders (looked for subfolders"),
        (
            ["--config", "tiny.yaml", "--folds", "folds", "--set", "data.valid=v.txt"],
            "data.valid: explicit data files conflict with the folds",
        ),
        (["--resume", "folds"], "has no cv.json; is it a directory of ltr cv?"),
    ],
)
def test_cv_refuses_what_cannot_work_before_any_training(
    workdir: Path, args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    result = CliRunner().invoke(app, ["cv", *args])

    assert isinstance(result.exception, LtrError)  # main() prints it as one `error:` line
    assert message in str(result.exception)


def test_cv_refusal_reaches_the_user_as_one_error_line(workdir: Path) -> None:
    result = run_ltr("cv", "--resume", "cv", "--model", "mlp", cwd=workdir)

    assert result.returncode == 1
    assert (
        result.stderr
        == "error: --resume continues a cv with the config in its cv.json; drop --model\n"
    )


def test_a_diverging_fold_keeps_what_cv_printed_and_says_to_start_a_new_cv_not_to_resume(
    workdir: Path, tmp_path: Path, ltr_main
) -> None:
    diverging = ["loss.name=mse", "training.learning_rate=1e30", "training.grad_clip=null"]
    sets = [
        arg for item in [*diverging, f"tracking.output_dir={tmp_path}"] for arg in ("--set", item)
    ]
    args = ["cv", "--config", workdir / "tiny.yaml", "--folds", workdir / "folds", *sets]

    status, out, err = ltr_main(*args, "--set", "tracking.mlflow=false")

    assert status == 1 and err.startswith("error: training diverged")
    assert err.endswith(
        "; stopped in Fold1, 0 of 3 folds done; ltr cv --resume would train with the same config "
        "and diverge again: start a new cv with the change, e.g. ltr cv --config <config> "
        f"--folds {workdir / 'folds'} --set training.learning_rate=1e+29\n"
    )
    (cv_dir,) = tmp_path.glob("*-cv")
    assert out == f"CV directory: {cv_dir}\n"  # absolute, as soon as it exists
    (fold_run,) = cv_dir.glob("Fold1/*")  # fold 1 ended the cv
    assert (fold_run / "train.log").read_text(encoding="utf-8") == err  # cv prints no epochs
    assert (cv_dir / "cv.log").read_text(encoding="utf-8") == out + err  # the whole command
    status, _, again = ltr_main("cv", "--resume", cv_dir)  # what the hint no longer offers
    assert status == 1 and again.splitlines()[-1] == err.splitlines()[-1]


def test_each_fold_runs_train_log_keeps_its_epoch_lines(
    workdir: Path, tmp_path: Path, ltr_main
) -> None:
    sets = ["--set", f"tracking.output_dir={tmp_path}", "--set", "tracking.mlflow=false"]
    status, _, err = ltr_main(
        "cv", "--config", workdir / "tiny.yaml", "--folds", workdir / "folds", *sets
    )

    assert status == 0, err
    assert "Epoch" not in err  # cv shows a line per fold, not its epochs
    folds = sorted(tmp_path.glob("*-cv/Fold*/*/train.log"))
    assert len(folds) >= 2
    for log in folds:
        lines = log.read_text(encoding="utf-8").splitlines()
        assert any(line.startswith("Epoch 1/") for line in lines), log
        assert any(line.startswith("Test (best epoch") for line in lines), log


def own_folds(workdir: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """A copy of the folds to edit, and the --set items that put the cv under tmp_path/runs."""
    folds = Path(shutil.copytree(workdir / "folds", tmp_path / "folds"))
    return folds, [
        "--set",
        f"tracking.output_dir={tmp_path / 'runs'}",
        "--set",
        "tracking.mlflow=false",
    ]


def test_cv_log_keeps_the_whole_command_and_each_resume(
    workdir: Path, tmp_path: Path, ltr_main
) -> None:
    folds, sets = own_folds(workdir, tmp_path)
    broken = folds / "Fold2" / "test.txt"
    good = broken.read_text(encoding="utf-8")
    broken.write_text(good + "1 qid:9999 0:1.0\n", encoding="utf-8")  # feature index 0

    status, out, err = ltr_main("cv", "--config", workdir / "tiny.yaml", "--folds", folds, *sets)

    assert status == 1 and "feature index 0" in err  # fold 2 failed before its run existed
    (cv_dir,) = (tmp_path / "runs").glob("*-cv")
    assert err.endswith(  # the error says how to go on, as a stop does
        f"; stopped in Fold2, 1 of 3 folds done; once that is fixed, continue with: "
        f"ltr cv --resume {cv_dir}\n"
    )
    log = (cv_dir / "cv.log").read_text(encoding="utf-8")
    assert log == out + err  # what the command printed, its error included
    broken.write_text(good, encoding="utf-8")

    status, out, err = ltr_main("cv", "--resume", cv_dir)

    assert status == 0, err
    resumed = (cv_dir / "cv.log").read_text(encoding="utf-8")[len(log) :].splitlines()
    assert resumed[0].startswith("--- resumed ")
    assert sorted(resumed[1:]) == sorted([*out.splitlines(), *err.splitlines()])


def test_a_quiet_cv_keeps_its_fold_lines_and_table_in_cv_log(
    workdir: Path, tmp_path: Path, ltr_main
) -> None:
    sets = ["--set", f"tracking.output_dir={tmp_path}", "--set", "tracking.mlflow=false"]
    args = ["cv", "--config", workdir / "tiny.yaml", "--folds", workdir / "folds", *sets]
    status, quiet_out, err = ltr_main(*args, "--quiet")
    assert status == 0, err
    status, out, err = ltr_main(*args)
    assert status == 0, err
    first, second = sorted(tmp_path.glob("*-cv*"))  # the second may be `...-cv-2`

    quiet_log = (first / "cv.log").read_text(encoding="utf-8")
    assert quiet_log.startswith(quiet_out)  # the directory, then what the screen did not show
    fold_lines = [line for line in err.splitlines() if line.startswith("Fold ")]
    assert len(fold_lines) == 3
    shown = [line for line in quiet_log.splitlines() if line.startswith("Fold ")]
    assert [line.split(" in ")[0] for line in shown] == [  # `Fold 1/3: trained Fold1`
        line.split(" in ")[0] for line in fold_lines
    ]
    # the same seed, the same table: its mean, ± std and caption lines end both
    assert quiet_log.splitlines()[-3:] == out.splitlines()[-3:]
    assert quiet_log.splitlines()[-3].startswith(" mean ")
    assert second.name in (second / "cv.log").read_text(encoding="utf-8")


def test_a_refused_cv_resume_leaves_cv_log_as_it_was(
    workdir: Path, tmp_path: Path, ltr_main
) -> None:
    folds, sets = own_folds(workdir, tmp_path)
    status, _, err = ltr_main("cv", "--config", workdir / "tiny.yaml", "--folds", folds, *sets)
    assert status == 0, err
    (cv_dir,) = (tmp_path / "runs").glob("*-cv")
    log = (cv_dir / "cv.log").read_bytes()
    with open(folds / "Fold1" / "test.txt", "a", encoding="utf-8") as test_file:
        test_file.write("\n")  # another sha256 than fold 1's run read

    status, _, err = ltr_main("cv", "--resume", cv_dir)

    assert status == 1 and "fold Fold1 is done, but its run" in err
    assert (cv_dir / "cv.log").read_bytes() == log  # as ltr train leaves its train.log


def test_a_folds_data_warning_goes_to_its_own_train_log_and_cv_log(
    workdir: Path, tmp_path: Path, ltr_main
) -> None:
    folds, sets = own_folds(workdir, tmp_path)
    train = folds / "Fold2" / "train.txt"
    lines = train.read_text(encoding="utf-8").splitlines()
    train.write_text("".join(re.sub(r" 1:\S+", " 1:0.5", line) + "\n" for line in lines))

    status, _, err = ltr_main("cv", "--config", workdir / "tiny.yaml", "--folds", folds, *sets)

    assert status == 0, err
    (warning,) = [line for line in err.splitlines() if "constant" in line]
    (cv_dir,) = (tmp_path / "runs").glob("*-cv")
    fold1, fold2 = (next(cv_dir.glob(f"Fold{k}/*")) / "train.log" for k in (1, 2))
    assert warning in fold2.read_text(encoding="utf-8").splitlines()
    assert "constant" not in fold1.read_text(encoding="utf-8")
    assert not any(line.startswith("Fold 1/") for line in fold2.read_text().splitlines())
    assert warning in (cv_dir / "cv.log").read_text(encoding="utf-8").splitlines()


def test_a_refused_quiet_cv_resume_still_prints_the_cv_directory(
    workdir: Path, tmp_path: Path, ltr_main
) -> None:
    from ltr.experiments.tracking import training_lock

    sets = ["--set", f"tracking.output_dir={tmp_path}", "--set", "tracking.mlflow=false"]
    status, cv_out, _ = ltr_main(
        "cv", "--config", workdir / "tiny.yaml", "--folds", workdir / "folds", *sets, "--quiet"
    )
    assert status == 0

    with training_lock(Path(cv_out.strip())):  # as if another process trained it
        status, out, err = ltr_main("cv", "--resume", cv_out.strip(), "--quiet")

    assert status == 1 and "is being trained by another process" in err
    assert out == cv_out  # cv=$(ltr cv --resume C --quiet) holds C, refused or not

    status, out, err = ltr_main("cv", "--resume", cv_out.strip(), "--set", "a=1", "--quiet")
    assert status == 1 and "drop --set" in err
    assert out == cv_out  # named before the options are refused too

    status, out, err = ltr_main("cv", "--resume", cv_out.strip(), "--model", "mlp")
    assert status == 1 and "drop --model" in err
    assert out == f"CV directory: {cv_out}"
