"""run_cv / resume_cv on three tiny synthetic folds: summary, fold runs, resume, errors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import ltr.training.experiment as experiment_module
from ltr.cli import app
from ltr.config import ExperimentConfig, load_config
from ltr.data.letor import load_letor
from ltr.errors import ConfigError, DataFormatError, DataNotFoundError
from ltr.experiments.cv_record import CV_FILE
from ltr.losses import build_loss
from ltr.training import run_experiment
from ltr.training.checkpoint import checkpoint_file, load_checkpoint
from ltr.training.crossval import find_folds, resume_cv, run_cv, summarize_folds
from support.tiny_runs import write_tiny_data

BATCH_SIZE = 8


def tiny_config(out: Path, *overrides: str) -> ExperimentConfig:
    base: dict[str, Any] = {
        "experiment": {"name": "tiny"},
        "data": {"root": "."},  # replaced by every fold's
        "model": {"name": "mlp", "hidden_dims": [8]},
        "loss": {"name": "listnet"},
        "training": {"num_epochs": 2, "batch_size": BATCH_SIZE, "device": "cpu"},
        "tracking": {"output_dir": str(out), "tensorboard": False, "mlflow": False},
    }
    return load_config(base=base, overrides=overrides)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def folds_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("folds")
    for number in (1, 2, 3):  # another seed per fold, as other queries would be
        write_tiny_data(root / f"Fold{number}", n_queries=30, max_docs=10, seed=number)
    return root


@pytest.fixture(scope="module")
def cv_dir(folds_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted cv of the three folds."""
    result = run_cv(tiny_config(tmp_path_factory.mktemp("runs")), folds_dir, quiet=True)
    assert result is not None
    return result.cv_dir


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = load_checkpoint(run_dir / "checkpoints" / "best.pt")["model"]
    return state


def test_cv_json_means_and_stds_are_those_of_the_fold_runs(cv_dir: Path) -> None:
    cv = read_json(cv_dir / CV_FILE)
    reports = [read_json(Path(fold["run_dir"]) / "metrics.json") for fold in cv["folds"]]

    assert [fold["test"] for fold in cv["folds"]] == [report["test"] for report in reports]
    assert cv["metrics"].keys() == reports[0]["test"].keys()
    for name, summary in cv["metrics"].items():
        values = np.array([report["test"][name] for report in reports])
        assert summary["count"] == 3
        assert summary["mean"] == pytest.approx(values.mean(), rel=1e-12, abs=0)
        assert summary["std"] == pytest.approx(values.std(ddof=1), rel=1e-12, abs=0)


def test_cv_directory_holds_one_run_per_fold_beside_ltr_train_runs(
    cv_dir: Path, folds_dir: Path
) -> None:
    cv = read_json(cv_dir / CV_FILE)

    assert cv_dir.name.endswith("-tiny-cv") and cv_dir.parent.name.startswith("runs")
    assert cv["folds_dir"] == str(folds_dir.resolve()) and cv["config"]["data"]["root"] is None
    assert [fold["name"] for fold in cv["folds"]] == ["Fold1", "Fold2", "Fold3"]
    for fold in cv["folds"]:
        run_dir = Path(fold["run_dir"])
        assert run_dir.parent == cv_dir / fold["name"] and run_dir.name.endswith("-tiny")
        stored = load_config(run_dir / "config.yaml")
        assert stored.data.root == folds_dir.resolve() / fold["name"] == Path(fold["data_root"])


def test_a_cv_directory_given_as_a_model_names_its_fold_runs_and_ltr_ensemble(
    cv_dir: Path,
) -> None:
    folds = read_json(cv_dir / CV_FILE)["folds"]
    runs = " ".join(str(cv_dir / fold["name"] / Path(fold["run_dir"]).name) for fold in folds)

    with pytest.raises(DataNotFoundError) as error:
        checkpoint_file(cv_dir)

    assert str(error.value) == (
        f"{cv_dir} is a cv directory of `ltr cv`, not a run; give one of its fold runs ({runs})"
    )


@pytest.mark.parametrize("command", ["predict", "export", "baselines", "promote"])
def test_every_command_taking_a_model_says_a_cv_directory_is_one(
    cv_dir: Path, folds_dir: Path, tmp_path: Path, command: str
) -> None:
    test, out = str(folds_dir / "Fold1" / "test.txt"), str(tmp_path / "out")
    train = str(folds_dir / "Fold1" / "train.txt")
    args = {
        "predict": ["predict", "--model", str(cv_dir), "--data", test, "--out", out],
        "export": ["export", "--model", str(cv_dir), "--output", out],
        "baselines": ["baselines", "--train", train, "--test", test, "--model", str(cv_dir)],
        "promote": ["promote", str(cv_dir), "--to", "validated"],
    }[command]

    result = CliRunner().invoke(app, args)

    assert isinstance(result.exception, DataNotFoundError)
    assert str(result.exception).startswith(f"{cv_dir} is a cv directory of `ltr cv`, not a run")


def test_a_fold_trains_as_ltr_train_with_its_folder_as_data_root(
    cv_dir: Path, folds_dir: Path, tmp_path: Path
) -> None:
    config = tiny_config(tmp_path, f"data.root={folds_dir / 'Fold2'}")  # ltr train --set ...
    alone = run_experiment(config, quiet=True)
    fold = Path(read_json(cv_dir / CV_FILE)["folds"][1]["run_dir"])

    assert read_json(fold / "metrics.json")["test"] == read_json(alone / "metrics.json")["test"]
    for key, value in weights(alone).items():
        assert torch.equal(weights(fold)[key], value), key


class Crash(Exception):
    pass


def test_resume_tests_a_fold_without_metrics_resumes_an_interrupted_one_and_trains_the_rest(
    cv_dir: Path, folds_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_queries = load_letor(folds_dir / "Fold2" / "train.txt").n_queries
    crash_at = math.ceil(train_queries / BATCH_SIZE) + 1  # fold 2, first batch of epoch 2
    built = {"losses": 0}

    def crashing_build_loss(name: str, params: Any = None) -> Any:
        loss_fn = build_loss(name, params)
        built["losses"] += 1
        if built["losses"] != 2:  # folds 1 and 3 train normally
            return loss_fn
        calls = {"n": 0}

        def loss(*args: torch.Tensor) -> torch.Tensor:
            calls["n"] += 1
            if calls["n"] == crash_at:
                raise Crash
            return loss_fn(*args)

        return loss

    with monkeypatch.context() as patch:
        patch.setattr(experiment_module, "build_loss", crashing_build_loss)
        with pytest.raises(Crash):
            run_cv(tiny_config(tmp_path), folds_dir, quiet=True)
    (crashed,) = tmp_path.glob("*-tiny-cv")
    (fold1,) = (crashed / "Fold1").iterdir()
    (fold2,) = (crashed / "Fold2").iterdir()
    assert load_checkpoint(fold2 / "checkpoints" / "last.pt")["epoch"] == 1
    assert not (crashed / "Fold3").exists()
    (fold1 / "metrics.json").unlink()  # fold 1 as if killed while testing its best epoch

    result = resume_cv(crashed, quiet=True)

    assert result is not None
    cv, reference = read_json(crashed / CV_FILE), read_json(cv_dir / CV_FILE)
    assert [Path(fold["run_dir"]) for fold in cv["folds"][:2]] == [fold1, fold2]  # same runs
    assert [record["epoch"] for record in read_json(fold2 / "training_history.json")] == [1, 2]
    # every fold ends as the uninterrupted cv's did
    assert [fold["test"] for fold in cv["folds"]] == [fold["test"] for fold in reference["folds"]]
    assert cv["metrics"] == reference["metrics"] == result.metrics


def test_resume_of_a_finished_cv_trains_nothing_and_reports_again(
    cv_dir: Path, tmp_path: Path
) -> None:
    copy = shutil.copytree(cv_dir, tmp_path / cv_dir.name)
    runs = sorted(copy.glob("Fold*/*"))

    result = resume_cv(copy, quiet=True)

    assert result is not None and sorted(copy.glob("Fold*/*")) == runs
    assert result.metrics == read_json(cv_dir / CV_FILE)["metrics"]


def test_resume_refuses_a_change_the_finished_folds_did_not_have(cv_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"with training\.seed=1: the folds done keep their"):
        resume_cv(cv_dir, ["training.device=cpu", "training.seed=1"], quiet=True)


def test_resume_refuses_a_cv_json_whose_config_is_not_the_folds_runs_any_more(
    cv_dir: Path, tmp_path: Path
) -> None:
    copy = shutil.copytree(cv_dir, tmp_path / cv_dir.name)
    shutil.rmtree(copy / "Fold3")  # one fold still to train, with the edited config
    state = read_json(copy / CV_FILE)
    state["config"]["training"]["learning_rate"] = 0.5  # cv.json edited by hand
    (copy / CV_FILE).write_text(json.dumps(state), encoding="utf-8")

    with pytest.raises(
        ConfigError,
        match=r"^fold Fold1's run .* was trained with another config than the cv's cv\.json "
        r"\(training\.learning_rate\); every fold of a cv trains with one config",
    ):
        resume_cv(copy, ["training.device=cpu"], quiet=True)
    assert not (copy / "Fold3").exists()


def test_resume_refuses_a_fold_whose_folder_is_gone_before_any_fold_trains(
    cv_dir: Path, tmp_path: Path
) -> None:
    copy = shutil.copytree(cv_dir, tmp_path / cv_dir.name)
    for fold in ("Fold1", "Fold2"):  # both still to train
        shutil.rmtree(copy / fold)
    state = read_json(copy / CV_FILE)
    state["folds"][1]["data_root"] = str(tmp_path / "moved")  # the data moved since
    (copy / CV_FILE).write_text(json.dumps(state), encoding="utf-8")

    with pytest.raises(
        DataNotFoundError, match=r"^fold Fold2: its folder .*moved does not exist; restore it$"
    ):
        resume_cv(copy, quiet=True)
    assert not (copy / "Fold1").exists()


def test_resume_refuses_a_done_fold_whose_data_file_was_edited_since(
    folds_dir: Path, tmp_path: Path
) -> None:
    folds = shutil.copytree(folds_dir, tmp_path / "folds")
    result = run_cv(tiny_config(tmp_path / "runs"), folds, quiet=True)
    assert result is not None
    shutil.rmtree(result.cv_dir / "Fold3")  # one fold still to train
    test_file = folds / "Fold1" / "test.txt"
    test_file.write_text(test_file.read_text().replace("2 qid:", "0 qid:"))  # relabelled

    with pytest.raises(
        ConfigError,
        match=r"^fold Fold1 is done, but its run .*'s test file .*Fold1/test\.txt changed since "
        r"the run read it \(sha256 \w{12} then, \w{12} now\); one cv measures one version",
    ):
        resume_cv(result.cv_dir, quiet=True)
    assert not (result.cv_dir / "Fold3").exists()


def test_folds_are_found_in_numeric_order_whatever_their_case(tmp_path: Path) -> None:
    for name in ("fold10", "FOLD2", "Fold1"):
        write_tiny_data(tmp_path / name, n_queries=10, max_docs=6)
    (tmp_path / "Fold3.txt").write_text("not a folder")
    (tmp_path / "notes").mkdir()

    assert [fold.name for fold in find_folds(tmp_path)] == ["Fold1", "FOLD2", "fold10"]


def test_a_file_named_like_a_fold_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_tiny_data(tmp_path / "Fold1", n_queries=10, max_docs=6)
    (tmp_path / "Fold2").write_text("not a folder")
    (tmp_path / "Fold3").symlink_to(tmp_path / "nowhere")

    assert [fold.name for fold in find_folds(tmp_path)] == ["Fold1"]
    assert f"folds folder {tmp_path}: Fold2 is not a folder; skipped" in caplog.text
    assert f"folds folder {tmp_path}: Fold3 is not a folder; skipped" in caplog.text


def test_missing_folds_folder_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"^folds folder .*nowhere does not exist$"):
        run_cv(tiny_config(tmp_path), tmp_path / "nowhere", quiet=True)


def test_folds_folder_that_is_a_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("", encoding="utf-8")
    with pytest.raises(DataNotFoundError, match=r"^folds folder .*train\.txt is not a folder$"):
        run_cv(tiny_config(tmp_path), tmp_path / "train.txt", quiet=True)


def test_folder_without_fold_folders_says_what_it_looked_for(tmp_path: Path) -> None:
    write_tiny_data(tmp_path / "data", n_queries=10, max_docs=6)
    with pytest.raises(DataNotFoundError, match=r"no fold folders \(looked for subfolders named "):
        run_cv(tiny_config(tmp_path / "runs"), tmp_path, quiet=True)
    assert not (tmp_path / "runs").exists()


def test_fold_without_test_file_is_named_with_the_file(tmp_path: Path) -> None:
    for number in (1, 2):
        write_tiny_data(tmp_path / f"Fold{number}", n_queries=10, max_docs=6)
    (tmp_path / "Fold2" / "test.txt").unlink()
    with pytest.raises(
        DataNotFoundError, match=r"fold Fold2 \(.*Fold2\) has no test file \(looked for test\.txt"
    ):
        run_cv(tiny_config(tmp_path / "runs"), tmp_path, quiet=True)
    assert not (tmp_path / "runs").exists()  # checked before any fold trains


def test_fold_numbers_given_twice_are_refused(tmp_path: Path) -> None:
    for name in ("Fold1", "fold01"):
        write_tiny_data(tmp_path / name, n_queries=10, max_docs=6)
    with pytest.raises(ConfigError, match=r"Fold1 and fold01 are both fold 1"):
        find_folds(tmp_path)


def test_config_with_explicit_data_files_names_the_fields(folds_dir: Path, tmp_path: Path) -> None:
    config = tiny_config(tmp_path, "data.train=a.txt", "data.test=c.txt")
    with pytest.raises(
        ConfigError, match=r"^data\.train, data\.test: explicit data files conflict"
    ):
        run_cv(config, folds_dir, quiet=True)


def test_resume_of_a_folder_without_cv_json_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"has no cv\.json; is it a directory of ltr cv\?"):
        resume_cv(tmp_path, quiet=True)


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        "{}",
        '{"folds_dir": "f", "config": {}, "folds": []}',
        '{"folds_dir": "f", "config": {}, "folds": [{"name": "Fold1"}]}',
        '{"folds_dir": "f", "config": {}, "folds": [{"name": "F", "data_root": "a"}, '
        '{"name": "F", "data_root": "b"}]}',
    ],
)
def test_resume_of_a_cv_json_not_laid_out_by_ltr_cv_names_the_file(
    tmp_path: Path, text: str
) -> None:
    (tmp_path / CV_FILE).write_text(text, encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"cv\.json: expected the folds_dir, config and fold"):
        resume_cv(tmp_path, quiet=True)


def test_summary_counts_only_folds_with_a_value_and_needs_two_for_a_std() -> None:
    summary = summarize_folds([{"ndcg@10": 0.5, "map": None}, {"ndcg@10": 0.7, "map": 0.25}])

    assert summary["ndcg@10"] == pytest.approx({"mean": 0.6, "std": 0.1 * math.sqrt(2), "count": 2})
    assert summary["map"] == {"mean": 0.25, "std": None, "count": 1}
