"""run_experiment end to end on tiny synthetic data: files, resume, determinism, errors."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import ltr.training.experiment as experiment_module
from ltr.config import ExperimentConfig, load_config
from ltr.data.letor import load_letor
from ltr.data.preprocessing import Normalizer
from ltr.errors import ConfigError, DataFormatError, DataNotFoundError, LtrError, WriteError
from ltr.evaluation import evaluate_scores
from ltr.experiments.tracking import Run
from ltr.losses import build_loss
from ltr.models import build_model
from ltr.training import Distributed, load_run_config, run_experiment
from ltr.training.checkpoint import FORMAT, VERSION, load_checkpoint, save_checkpoint
from ltr.training.experiment import LETOR_NDCG10, load_splits
from ltr.training.trainer import score_data
from support.tiny_runs import relabel_in_place, write_tiny_data

BATCH_SIZE = 8


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_data(
        tmp_path_factory.mktemp("data"), n_queries=60, n_features=10, max_docs=20
    )


def make_config(root: Path, out: Path, *overrides: str) -> ExperimentConfig:
    base: dict[str, Any] = {
        "experiment": {"name": "tiny"},
        "data": {"root": str(root), "max_list_length": 12, "list_sampling": "sample"},
        "model": {"name": "mlp", "hidden_dims": [16], "dropout": 0.2},
        "loss": {"name": "lambdarank"},
        "training": {
            "num_epochs": 4,
            "batch_size": BATCH_SIZE,
            "learning_rate": 3e-3,
            "early_stopping_patience": 50,
            "device": "cpu",
        },
        "tracking": {"output_dir": str(out), "tensorboard": False},
    }
    return load_config(base=base, overrides=overrides)


def weights(run_dir: Path, name: str = "last") -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = load_checkpoint(run_dir / "checkpoints" / f"{name}.pt")[
        "model"
    ]
    return state


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def step_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted 4-epoch run with a step schedule and TensorBoard."""
    out = tmp_path_factory.mktemp("runs")
    config = make_config(
        data_root,
        out,
        "training.scheduler={name: step, step_size: 1, gamma: 0.7}",
        "tracking.tensorboard=true",
    )
    return run_experiment(config, quiet=True)


def test_run_directory_holds_every_artifact(step_run: Path) -> None:
    names = {p.relative_to(step_run).as_posix() for p in step_run.rglob("*") if p.is_file()}
    expected = {
        "config.yaml",
        "preprocessor.json",
        "training_history.json",
        "metrics.json",
        "test_per_query.tsv",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
    }
    assert expected <= names
    assert any(name.startswith("tensorboard/events.out.tfevents") for name in names)
    assert not any(name.endswith(".tmp") for name in names)  # atomic writes cleaned up
    assert step_run.name.endswith("-tiny")
    datetime.strptime(step_run.name[:15], "%Y%m%d-%H%M%S")


def test_config_yaml_is_the_resolved_config_and_loads_back(step_run: Path) -> None:
    stored = yaml.safe_load((step_run / "config.yaml").read_text(encoding="utf-8"))
    assert stored["model"]["activation"] == "relu"  # the scorer's defaults are spelled out
    assert load_run_config(step_run).resolved() == stored


def test_history_and_metrics_describe_the_run(step_run: Path) -> None:
    history = read_json(step_run / "training_history.json")
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert {"train_loss", "lr", "seconds", "valid_ndcg@10", "valid_map"} <= history[0].keys()
    assert [r["lr"] for r in history] == pytest.approx([3e-3 * 0.7**e for e in range(4)])
    metrics = read_json(step_run / "metrics.json")
    best = max(history, key=lambda r: r["valid_ndcg@10"])
    assert metrics["best_epoch"] == best["epoch"]
    assert metrics["valid"]["ndcg@10"] == best["valid_ndcg@10"]
    expected_test = (
        {"ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "map", "mrr"}
        | {f"ndcg@10[no_relevant={p}]" for p in ("zero", "one", "skip")}
        | {"ndcg@10[preset=letor]"}
    )
    assert set(metrics["test"]) == expected_test
    assert metrics["test"]["ndcg@10"] == metrics["test"]["ndcg@10[no_relevant=zero]"]
    assert metrics["conventions"] == {"gain": "exp2", "no_relevant": "zero"}


def test_metrics_json_holds_the_letor_scripts_ndcg_at_10(step_run: Path, data_root: Path) -> None:
    from ltr.inference import Predictor

    test = load_letor(data_root / "test.txt")
    scores = Predictor.load(step_run).score(test)
    letor = evaluate_scores(test, scores, ["ndcg@10"], preset="letor").means["ndcg@10"]
    reported = read_json(step_run / "metrics.json")["test"]["ndcg@10[preset=letor]"]
    assert reported == pytest.approx(letor, abs=1e-12)


def test_a_run_reports_every_metric_its_promotion_gate_reads(
    data_root: Path, tmp_path: Path
) -> None:
    from ltr.inference import Predictor

    gate = "{ndcg@20: 0.0, 'map[no_relevant=one]': 0.0, 'p@5[preset=trec_eval]': 0.0}"
    config = make_config(
        data_root, tmp_path, "training.num_epochs=1", "promotion.metric=err@5",
        f"promotion.min_metrics={gate}",
    )  # fmt: skip
    run_dir = run_experiment(config, quiet=True)

    reported = read_json(run_dir / "metrics.json")["test"]
    test = load_letor(data_root / "test.txt")
    scores = Predictor.load(run_dir).score(test)
    expected = {
        "err@5": evaluate_scores(test, scores, ["err@5"]).means["err@5"],
        "ndcg@20": evaluate_scores(test, scores, ["ndcg@20"]).means["ndcg@20"],
        "map[no_relevant=one]": evaluate_scores(test, scores, ["map"], no_relevant="one").means[
            "map"
        ],
        "p@5[preset=trec_eval]": evaluate_scores(test, scores, ["p@5"], preset="trec_eval").means[
            "p@5"
        ],
    }
    for name, value in expected.items():
        assert reported[name] == pytest.approx(value, abs=1e-12), name
    assert "map[no_relevant=one]" in (run_dir / "test_per_query.tsv").read_text().split("\n")[0]


@pytest.mark.parametrize(
    "floor", ["ndcg@10[gain=linear]", "ndcg@10[no_relevant=two]", "ndcg@10[preset=letor"]
)
def test_a_gate_metric_with_brackets_ltr_cannot_compute_is_refused(
    data_root: Path, tmp_path: Path, floor: str
) -> None:
    with pytest.raises(ConfigError, match=r"brackets set no_relevant \(zero, one, skip\) or"):
        make_config(data_root, tmp_path, f"promotion.min_metrics={{'{floor}': 0.5}}")


def test_metrics_json_records_the_sha256_and_size_of_each_data_file(
    step_run: Path, data_root: Path
) -> None:
    files = read_json(step_run / "metrics.json")["data"]
    for split, name in (("train", "train.txt"), ("valid", "vali.txt"), ("test", "test.txt")):
        path = data_root / name
        data = load_letor(path)
        assert files[split] == {
            "path": str(path.resolve()),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "queries": data.n_queries,
            "documents": data.n_docs,
        }


def test_test_per_query_table_has_one_row_per_test_query(step_run: Path, data_root: Path) -> None:
    lines = (step_run / "test_per_query.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    assert header[:2] == ["qid", "ndcg@1"] and "ndcg@10[no_relevant=skip]" in header
    test = load_letor(data_root / "test.txt")
    assert [line.split("\t")[0] for line in lines[1:]] == list(test.query_ids)
    column = header.index("ndcg@10")
    values = [float(line.split("\t")[column]) for line in lines[1:]]
    assert np.mean(values) == pytest.approx(read_json(step_run / "metrics.json")["test"]["ndcg@10"])


def test_preprocessor_json_is_the_normalizer_fitted_on_train(
    step_run: Path, data_root: Path
) -> None:
    saved = Normalizer.load(step_run / "preprocessor.json")
    fitted = Normalizer("standard").fit(load_letor(data_root / "train.txt"))
    assert saved.to_dict() == fitted.to_dict()


def test_checkpoints_load_with_weights_only_and_carry_everything_to_resume(step_run: Path) -> None:
    checkpoint = torch.load(step_run / "checkpoints" / "last.pt", weights_only=True)
    assert (checkpoint["format"], checkpoint["version"]) == (FORMAT, VERSION)
    assert checkpoint["epoch"] == 4
    assert {"model", "optimizer", "scheduler", "state", "rng", "config", "normalizer"} <= set(
        checkpoint
    )
    assert checkpoint["n_features"] == 10
    assert checkpoint["config"]["training"]["num_epochs"] == 4
    assert isinstance(checkpoint["rng"]["torch"], torch.Tensor)
    assert len(checkpoint["state"]["history"]) == 4


def test_tensorboard_has_loss_lr_and_every_validation_metric(step_run: Path) -> None:
    events = EventAccumulator(str(step_run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "valid/ndcg@10", "valid/map", "valid/mrr"} <= tags
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4]
    history = read_json(step_run / "training_history.json")
    logged = [e.value for e in events.Scalars("valid/ndcg@10")]
    assert logged == pytest.approx([r["valid_ndcg@10"] for r in history])


def test_same_seed_gives_identical_weights(step_run: Path, data_root: Path, tmp_path: Path) -> None:
    config = make_config(
        data_root, tmp_path, "training.scheduler={name: step, step_size: 1, gamma: 0.7}"
    )
    again = run_experiment(config, quiet=True)
    assert_same_weights(weights(again), weights(step_run))


def test_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(
    step_run: Path, data_root: Path, tmp_path: Path
) -> None:
    schedule = "training.scheduler={name: step, step_size: 1, gamma: 0.7}"
    first = run_experiment(
        make_config(data_root, tmp_path, schedule, "training.num_epochs=2"), quiet=True
    )
    assert load_checkpoint(first / "checkpoints" / "last.pt")["epoch"] == 2
    resumed = run_experiment(make_config(data_root, tmp_path, schedule), resume=first, quiet=True)
    assert resumed == first
    assert_same_weights(weights(resumed), weights(step_run))
    history = read_json(resumed / "training_history.json")
    reference = read_json(step_run / "training_history.json")
    assert [r["train_loss"] for r in history] == [r["train_loss"] for r in reference]
    assert (
        read_json(resumed / "metrics.json")["test"] == read_json(step_run / "metrics.json")["test"]
    )


class Crash(Exception):
    pass


def test_run_crashed_mid_epoch_resumes_to_the_uninterrupted_result(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(
        data_root,
        tmp_path / "a",
        "training.scheduler={name: cosine, warmup_epochs: 1}",
        "loss.name=listnet",
    )
    reference = run_experiment(config, quiet=True)
    train_queries = load_letor(data_root / "train.txt").n_queries
    batches_per_epoch = math.ceil(train_queries / BATCH_SIZE)
    calls = {"n": 0}

    def crashing_build_loss(name: str, params: Any = None) -> Any:
        loss_fn = build_loss(name, params)

        def loss(*args: torch.Tensor) -> torch.Tensor:
            calls["n"] += 1
            if calls["n"] == 2 * batches_per_epoch + 2:  # second batch of epoch 3
                raise Crash
            return loss_fn(*args)

        return loss

    config = make_config(
        data_root,
        tmp_path / "b",
        "training.scheduler={name: cosine, warmup_epochs: 1}",
        "loss.name=listnet",
    )
    with monkeypatch.context() as patch:
        patch.setattr(experiment_module, "build_loss", crashing_build_loss)
        with pytest.raises(Crash):
            run_experiment(config, quiet=True)
    (crashed,) = (tmp_path / "b").iterdir()
    assert load_checkpoint(crashed / "checkpoints" / "last.pt")["epoch"] == 2
    run_experiment(config, resume=crashed, quiet=True)
    assert_same_weights(weights(crashed), weights(reference))
    assert_same_weights(weights(crashed, "best"), weights(reference, "best"))


def stop_between_the_checkpoints_of(epoch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C after the first and before the second checkpoint write of ``epoch``."""
    save = Run.save_checkpoint
    saved: list[str] = []

    def save_or_stop(run: Run, name: str, checkpoint: dict[str, Any]) -> None:
        if checkpoint["epoch"] == epoch:
            saved.append(name)
            if len(saved) == 2:
                raise KeyboardInterrupt
        save(run, name, checkpoint)

    monkeypatch.setattr(Run, "save_checkpoint", save_or_stop)


def test_a_stop_between_the_checkpoints_of_a_best_epoch_resumes_to_a_consistent_run(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = run_experiment(make_config(data_root, tmp_path / "reference"), quiet=True)
    values = [r["valid_ndcg@10"] for r in read_json(reference / "training_history.json")]
    improving = [e for e in range(2, 5) if values[e - 1] > max(values[: e - 1])]
    assert improving, values  # the stop needs a best epoch after the first
    epoch = improving[0]
    with monkeypatch.context() as patch:
        stop_between_the_checkpoints_of(epoch, patch)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(make_config(data_root, tmp_path / "stopped"), quiet=True)
    (stopped,) = (tmp_path / "stopped").iterdir()
    assert load_checkpoint(stopped / "checkpoints" / "last.pt")["epoch"] == epoch
    assert load_checkpoint(stopped / "checkpoints" / "best.pt")["epoch"] < epoch
    shorter = shutil.copytree(stopped, tmp_path / "shorter")

    run_experiment(make_config(data_root, tmp_path), resume=stopped, quiet=True)
    assert read_json(stopped / "metrics.json") == read_json(reference / "metrics.json")
    assert_same_weights(weights(stopped, "best"), weights(reference, "best"))

    # fewer epochs: none is trained again, so the test reads the best.pt the resume rewrote
    fewer = make_config(data_root, tmp_path, f"training.num_epochs={epoch - 1}")
    run_experiment(fewer, resume=shorter, quiet=True)
    report = read_json(shorter / "metrics.json")
    assert (
        report["best_epoch"] == epoch == load_checkpoint(shorter / "checkpoints/best.pt")["epoch"]
    )
    assert_same_weights(weights(shorter, "best"), weights(shorter, "last"))


def test_a_best_checkpoint_of_another_epoch_than_the_runs_best_is_not_tested(
    stopped_run: Path, tmp_path: Path
) -> None:
    run_dir = shutil.copytree(stopped_run, tmp_path / "copy" / stopped_run.name)
    (run_dir / "metrics.json").unlink()  # killed before its test
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert (last["epoch"], last["state"]["best_epoch"]) == (2, 1)
    save_checkpoint(run_dir / "checkpoints" / "best.pt", last)
    message = r"best\.pt holds epoch 2, not the run's best epoch 1, whose weights are gone; it "
    with pytest.raises(LtrError, match=message):
        run_experiment(load_run_config(run_dir), resume=run_dir, quiet=True)
    assert not (run_dir / "metrics.json").exists()


def test_resume_refuses_a_config_that_changes_the_model(step_run: Path, data_root: Path) -> None:
    config = make_config(data_root, step_run.parent, "model.hidden_dims=[32]")
    with pytest.raises(ConfigError, match=r"cannot resume .*model\.hidden_dims"):
        run_experiment(config, resume=step_run, quiet=True)


def test_resume_refuses_another_number_of_epochs_of_a_cosine_schedule(
    data_root: Path, tmp_path: Path
) -> None:
    cosine = "training.scheduler={name: cosine, warmup_epochs: 1}"
    run_dir = run_experiment(
        make_config(data_root, tmp_path, cosine, "training.num_epochs=1"), quiet=True
    )
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    config = load_run_config(run_dir, ["training.num_epochs=2"])
    message = (
        r"cannot resume .*: training\.num_epochs cannot change \(1 to 2\) with "
        r"training\.scheduler cosine: the cosine schedule spans num_epochs, so a resume cannot "
        r"continue it; start a new run$"
    )
    with pytest.raises(ConfigError, match=message):
        run_experiment(config, resume=run_dir, quiet=True)
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


@pytest.fixture
def stopped_run(data_root: Path, tmp_path: Path) -> Path:
    """A run stopped early at epoch 2 (best 1, patience 0): a tiny rate leaves NDCG unchanged."""
    config = make_config(
        data_root,
        tmp_path,
        "training.num_epochs=6",
        "training.early_stopping_patience=0",
        "training.learning_rate=1e-12",
    )
    run_dir = run_experiment(config, quiet=True)
    assert read_json(run_dir / "metrics.json")["epochs"] == 2
    return run_dir


def test_resume_of_an_early_stopped_run_without_more_patience_is_refused(
    stopped_run: Path,
) -> None:
    before = {p: p.read_bytes() for p in stopped_run.rglob("*") if p.is_file()}
    config = load_run_config(stopped_run, ["training.num_epochs=8"])
    message = r"stopped early at epoch 2 \(best 1\) with patience 0; raise training\.early_stop"
    with pytest.raises(ConfigError, match=message):
        run_experiment(config, resume=stopped_run, quiet=True)
    assert {p: p.read_bytes() for p in stopped_run.rglob("*") if p.is_file()} == before


def test_resume_of_an_early_stopped_run_with_more_patience_trains_on(stopped_run: Path) -> None:
    more = ["training.early_stopping_patience=2"]
    run_experiment(load_run_config(stopped_run, more), resume=stopped_run, quiet=True)
    assert len(read_json(stopped_run / "training_history.json")) == 4  # 3 epochs past best 1
    assert (
        yaml.safe_load((stopped_run / "config.yaml").read_text())["training"][
            "early_stopping_patience"
        ]
        == 2
    )


def test_resume_of_a_finished_run_without_more_epochs_is_refused(step_run: Path) -> None:
    config_yaml = (step_run / "config.yaml").read_bytes()
    with pytest.raises(ConfigError, match=r"already trained 4 epochs; training\.num_epochs=4"):
        run_experiment(load_run_config(step_run), resume=step_run, quiet=True)
    assert (step_run / "config.yaml").read_bytes() == config_yaml


def test_resume_of_a_run_stopped_before_its_test_writes_the_uninterrupted_metrics(
    step_run: Path, tmp_path: Path
) -> None:
    run_dir = shutil.copytree(step_run, tmp_path / step_run.name)
    (run_dir / "metrics.json").unlink()  # as if killed after the last epoch, before the test
    history = (run_dir / "training_history.json").read_bytes()

    run_experiment(load_run_config(run_dir), resume=run_dir, quiet=True)

    assert read_json(run_dir / "metrics.json") == read_json(step_run / "metrics.json")
    assert (run_dir / "training_history.json").read_bytes() == history  # no epoch trained


def test_run_records_absolute_data_paths_and_resumes_from_another_folder(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    relative = os.path.relpath(data_root)
    config = make_config(Path(relative), tmp_path, "training.num_epochs=1")
    run_dir = run_experiment(config, quiet=True)
    stored = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["root"]
    assert stored == str(data_root.resolve())
    monkeypatch.chdir(tmp_path)  # elsewhere: the stored root still finds the data
    run_experiment(load_run_config(run_dir, ["training.num_epochs=2"]), resume=run_dir, quiet=True)
    # the same folder spelled another way is no config change
    same = f"data.root={data_root / '..' / data_root.name}"
    more = load_run_config(run_dir, ["training.num_epochs=3", same])
    run_experiment(more, resume=run_dir, quiet=True)
    assert read_json(run_dir / "metrics.json")["epochs"] == 3


def test_resume_without_the_run_data_does_not_suggest_making_data(
    data_root: Path, tmp_path: Path
) -> None:
    data = shutil.copytree(data_root, tmp_path / "data")
    run_dir = run_experiment(make_config(data, tmp_path, "training.num_epochs=1"), quiet=True)
    shutil.rmtree(data)
    config = load_run_config(run_dir, ["training.num_epochs=2"])
    with pytest.raises(DataNotFoundError, match=r"is not a folder; a resumed run reads") as error:
        run_experiment(config, resume=run_dir, quiet=True)
    assert "synth" not in str(error.value)


def test_resume_refuses_a_data_file_edited_since_the_run_started(
    data_root: Path, tmp_path: Path
) -> None:
    data = shutil.copytree(data_root, tmp_path / "data")
    run_dir = run_experiment(make_config(data, tmp_path, "training.num_epochs=1"), quiet=True)
    relabel_in_place(data / "train.txt")  # same path, other bytes
    config = load_run_config(run_dir, ["training.num_epochs=2"])

    with pytest.raises(
        ConfigError, match=r"its train file .*train\.txt changed since the run started \(sha256 "
    ):
        run_experiment(config, resume=run_dir, quiet=True)
    assert read_json(run_dir / "metrics.json")["epochs"] == 1  # the run is left as it was


def test_resume_with_a_relative_data_root_names_the_folder_it_was_read_from(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # runs made before data paths were stored absolute hold them relative to where they ran
    data = make_config(data_root, tmp_path).data.model_copy(update={"root": Path("data")})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataNotFoundError, match=r"resume from the folder the run was trained in"):
        experiment_module.resolve_data_paths(data, resuming=True)
    with pytest.raises(DataNotFoundError, match=str(tmp_path)):
        experiment_module.resolve_data_paths(data, resuming=True)


def test_resume_of_a_directory_without_checkpoint_is_a_clear_error(
    data_root: Path, tmp_path: Path
) -> None:
    with pytest.raises(DataNotFoundError, match=r"checkpoints/last\.pt"):
        run_experiment(make_config(data_root, tmp_path), resume=tmp_path, quiet=True)


def test_best_epoch_is_kept_when_validation_peaks_early(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_queries = load_letor(data_root / "train.txt").n_queries
    learning_calls = 2 * math.ceil(train_queries / BATCH_SIZE)  # two epochs of learning
    calls = {"n": 0}

    def learn_then_unlearn(name: str, params: Any = None) -> Any:
        loss_fn = build_loss(name, params)

        def loss(*args: torch.Tensor) -> torch.Tensor:
            calls["n"] += 1
            return loss_fn(*args) if calls["n"] <= learning_calls else -loss_fn(*args)

        return loss

    config = make_config(
        data_root,
        tmp_path,
        "training.num_epochs=15",
        "training.early_stopping_patience=3",
        "training.learning_rate=0.02",
        "loss.name=listnet",
    )
    monkeypatch.setattr(experiment_module, "build_loss", learn_then_unlearn)
    run_dir = run_experiment(config, quiet=True)
    history = read_json(run_dir / "training_history.json")
    values = [r["valid_ndcg@10"] for r in history]
    peak = values.index(max(values)) + 1
    metrics = read_json(run_dir / "metrics.json")
    assert metrics["best_epoch"] == peak < len(history) < 15
    assert metrics["stopped_early"] and len(history) == peak + 3 + 1
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert best["epoch"] == peak
    assert not all(torch.equal(best["model"][k], v) for k, v in weights(run_dir).items())
    # the test numbers are those of the peak epoch's weights
    model = build_model("mlp", 10, hidden_dims=[16], dropout=0.2)
    model.load_state_dict(best["model"])
    normalizer = Normalizer.load(run_dir / "preprocessor.json")
    test = load_letor(data_root / "test.txt")
    scores = score_data(model, normalizer.transform_data(test), batch_size=BATCH_SIZE)
    assert evaluate_scores(test, scores, ["ndcg@10"]).means["ndcg@10"] == pytest.approx(
        metrics["test"]["ndcg@10"], abs=0
    )


def test_training_improves_ndcg_over_the_untrained_model(data_root: Path, tmp_path: Path) -> None:
    config = make_config(
        data_root,
        tmp_path,
        "training.num_epochs=12",
        "training.learning_rate=0.01",
        "model.dropout=0.0",
    )
    run_dir = run_experiment(config, quiet=True)
    torch.manual_seed(0)
    untrained = build_model("mlp", 10, hidden_dims=[16], dropout=0.0)
    normalizer = Normalizer.load(run_dir / "preprocessor.json")
    test = load_letor(data_root / "test.txt")
    scores = score_data(untrained, normalizer.transform_data(test))
    before = evaluate_scores(test, scores, ["ndcg@10"]).means["ndcg@10"]
    after = read_json(run_dir / "metrics.json")["test"]["ndcg@10"]
    assert after > before + 0.05


def test_without_validation_file_train_queries_validate(data_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "no_vali"
    root.mkdir()
    shutil.copy(data_root / "train.txt", root / "train.txt")
    shutil.copy(data_root / "test.txt", root / "test.txt")
    config = make_config(root, tmp_path / "runs", "training.num_epochs=1")
    splits = load_splits(config.data)
    full = load_letor(root / "train.txt")
    valid_ids, train_ids = set(splits.valid.query_ids), set(splits.train.query_ids)
    assert splits.valid_from_train and not valid_ids & train_ids
    assert valid_ids | train_ids == set(full.query_ids)
    assert splits.test is not None and not valid_ids & set(splits.test.query_ids)
    assert len(valid_ids) == round(0.2 * full.n_queries)
    run_dir = run_experiment(config, quiet=True)
    assert read_json(run_dir / "metrics.json")["valid_from_train"] is True


def test_validation_split_from_train_is_recorded_as_such(data_root: Path, tmp_path: Path) -> None:
    shutil.copy(data_root / "train.txt", tmp_path / "train.txt")
    config = make_config(tmp_path, tmp_path / "runs", "data.valid_fraction=0.25")

    splits = load_splits(config.data, record_files=True)

    assert splits.files is not None and splits.files["test"] is None
    assert splits.files["train"]["queries"] == load_letor(tmp_path / "train.txt").n_queries
    # what warnings (a cutoff beyond every list, constant features) call each part
    assert splits.train.source == "train.txt"
    assert splits.valid.source == "the validation queries of train.txt"
    assert splits.files["valid"] == {
        "split_from": "train",
        "valid_fraction": 0.25,
        "split_seed": config.data.split_seed,
        "queries": splits.valid.n_queries,
        "documents": splits.valid.n_docs,
    }


def copy_splits(data_root: Path, root: Path, names: Sequence[str]) -> Path:
    """A new folder ``root`` holding copies of the splits ``names`` of ``data_root``."""
    root.mkdir()
    for name in names:
        shutil.copy(data_root / name, root / name)
    return root


def copy_with_label(source: Path, target: Path, label: str) -> Path:
    """``source`` copied to ``target`` with the label of its first line replaced."""
    first, rest = source.read_text(encoding="utf-8").split("\n", 1)
    target.write_text(f"{label} {first.split(' ', 1)[1]}\n{rest}", encoding="utf-8")
    return target


@pytest.mark.parametrize("big", ["test.txt", "vali.txt"])
def test_a_label_overflowing_the_exp2_gain_is_refused_before_the_first_epoch(
    data_root: Path, tmp_path: Path, big: str
) -> None:
    root = copy_splits(data_root, tmp_path / "data", ("train.txt", "vali.txt", "test.txt"))
    copy_with_label(data_root / big, root / big, "1024")
    qid = load_letor(root / big, use_cache=False).query_ids[0]
    runs = tmp_path / "runs"

    with pytest.raises(DataFormatError) as caught:
        run_experiment(make_config(root, runs, "training.num_epochs=1"), quiet=True)

    assert str(caught.value) == (
        f"{root / big}: label 1024 of query {qid}: the exp2 gain 2^label - 1 overflows float64; "
        "use the linear gain: --set evaluation.gain=linear"
    )
    assert not runs.exists() or not any(runs.iterdir())  # no run directory, no epoch trained


def copy_without_relevant(source: Path, target: Path) -> None:
    """``source`` with every label set to 0."""
    lines = source.read_text(encoding="utf-8").splitlines()
    target.write_text("".join(f"0 {line.split(' ', 1)[1]}\n" for line in lines), encoding="utf-8")


@pytest.mark.parametrize("irrelevant", ["vali.txt", "train.txt"])
def test_validation_queries_without_a_relevant_document_are_refused_before_the_first_epoch(
    data_root: Path, tmp_path: Path, irrelevant: str
) -> None:
    names = ("train.txt", "vali.txt", "test.txt") if irrelevant == "vali.txt" else ("test.txt",)
    root = copy_splits(data_root, tmp_path / "data", names)
    copy_without_relevant(data_root / irrelevant, root / irrelevant)  # no vali: split from train
    runs = tmp_path / "runs"
    config = make_config(root, runs, "training.num_epochs=1", "evaluation.no_relevant=skip")
    where = {
        "vali.txt": f"{root / 'vali.txt'}: no validation query has a relevant document",
        "train.txt": (
            f"the 7 validation queries split from {root / 'train.txt'} (data.valid_fraction=0.2, "
            "data.split_seed=0): none has a relevant document"
        ),
    }[irrelevant]
    with pytest.raises(ConfigError) as caught:
        run_experiment(config, quiet=True)
    assert str(caught.value).startswith(
        f"{where} (every label is 0), so training.early_stopping_metric ndcg@10 would be the "
        "same (or NaN) every epoch and could not pick one; "
    )
    assert not runs.exists() or not any(runs.iterdir())  # no run directory, no epoch trained


def test_labels_of_1024_train_and_test_with_the_linear_gain(
    data_root: Path, tmp_path: Path
) -> None:
    shutil.copy(data_root / "train.txt", tmp_path / "train.txt")
    copy_with_label(data_root / "test.txt", tmp_path / "test.txt", "1024")
    config = make_config(
        tmp_path, tmp_path / "runs", "training.num_epochs=1", "evaluation.gain=linear"
    )

    test = read_json(run_experiment(config, quiet=True) / "metrics.json")["test"]

    assert 0 < test["ndcg@10"] <= 1
    assert LETOR_NDCG10 not in test  # the LETOR script's exp2 gain cannot score these labels


def test_a_training_file_without_features_is_refused_naming_it_before_vali_and_test(
    data_root: Path, tmp_path: Path
) -> None:
    lines = (data_root / "train.txt").read_text(encoding="utf-8").splitlines()
    (tmp_path / "train.txt").write_text(
        "".join(" ".join(line.split()[:2]) + "\n" for line in lines), encoding="utf-8"
    )
    shutil.copy(data_root / "vali.txt", tmp_path / "vali.txt")
    shutil.copy(data_root / "test.txt", tmp_path / "test.txt")

    with pytest.raises(DataFormatError) as caught:
        load_splits(make_config(tmp_path, tmp_path / "runs").data)

    assert str(caught.value) == (
        f"{tmp_path / 'train.txt'}: no features (every line has only a label and qid)"
    )


@pytest.mark.parametrize("files", [("train.txt",), ("train.txt", "vali.txt")])
def test_missing_test_file_is_noticed_with_or_without_validation_file(
    data_root: Path, tmp_path: Path, files: tuple[str, ...], caplog: pytest.LogCaptureFixture
) -> None:
    for name in files:
        shutil.copy(data_root / name, tmp_path / name)
    splits = load_splits(make_config(tmp_path, tmp_path / "runs").data)
    assert splits.test is None
    assert "no test file: metrics.json will hold validation numbers only" in caplog.text


def test_explicit_paths_win_over_the_root_and_valid_txt_is_accepted(
    data_root: Path, tmp_path: Path
) -> None:
    root = tmp_path / "fold"
    root.mkdir()
    shutil.copy(data_root / "train.txt", root / "train.txt")
    shutil.copy(data_root / "vali.txt", root / "valid.txt")
    config = make_config(root, tmp_path, f"data.test={data_root / 'test.txt'}")
    paths = experiment_module.resolve_data_paths(config.data)
    assert (paths.train, paths.valid, paths.test) == (
        root / "train.txt",
        root / "valid.txt",
        data_root / "test.txt",
    )


@pytest.mark.parametrize(
    ("valid", "message"),
    [
        ("test.txt", r"data\.valid and data\.test are the same file .*test\.txt: the epoch would "),
        ("copy of test.txt", r"data\.valid .*vali\.txt holds the same bytes as data\.test .*test"),
        ("train.txt", r"data\.valid and data\.train are the same file .*: the epoch would be "),
    ],
)
def test_a_validation_file_that_is_the_test_or_training_file_is_refused(
    data_root: Path, tmp_path: Path, valid: str, message: str
) -> None:
    root = copy_splits(data_root, tmp_path / "fold", ("train.txt", "test.txt"))
    if valid == "copy of test.txt":  # found in the root as vali.txt, a byte-for-byte copy
        shutil.copy(root / "test.txt", root / "vali.txt")
        overrides: tuple[str, ...] = ()
    else:
        overrides = (f"data.valid={root / valid}",)
    config = make_config(root, tmp_path / "runs", *overrides)
    with pytest.raises(ConfigError, match=message + ".*use a validation file of other queries$"):
        load_splits(config.data)


def test_a_validation_file_of_the_test_files_size_but_other_bytes_is_accepted(
    data_root: Path, tmp_path: Path
) -> None:
    for name in ("train.txt", "test.txt"):
        shutil.copy(data_root / name, tmp_path / name)
    shutil.copy(tmp_path / "test.txt", tmp_path / "vali.txt")
    relabel_in_place(tmp_path / "vali.txt")  # one label flipped: the same size
    assert (tmp_path / "vali.txt").stat().st_size == (tmp_path / "test.txt").stat().st_size
    splits = load_splits(make_config(tmp_path, tmp_path / "runs").data)
    assert not splits.valid_from_train


@pytest.mark.parametrize(("existing", "given"), [("Fold1", "fold1"), ("MQ2008", "mq2008")])
def test_misspelt_data_root_names_the_similar_folder_instead_of_suggesting_synth(
    tmp_path: Path, existing: str, given: str
) -> None:
    (tmp_path / existing).mkdir()
    config = make_config(tmp_path / given, tmp_path)
    with pytest.raises(DataNotFoundError) as error:
        experiment_module.resolve_data_paths(config.data)
    assert str(error.value) == (
        f"data.root {tmp_path / given} is not a folder; did you mean {tmp_path / existing}?"
    )


def test_missing_data_root_hints_at_the_synth_command(tmp_path: Path) -> None:
    config = make_config(tmp_path / "nowhere", tmp_path)
    with pytest.raises(DataNotFoundError, match=r"ltr data synth --out"):
        run_experiment(config, quiet=True)


def test_root_without_training_file_names_what_it_looked_for(tmp_path: Path) -> None:
    config = make_config(tmp_path, tmp_path / "runs")
    with pytest.raises(DataNotFoundError, match=r"train\.txt, train\.txt\.gz"):
        run_experiment(config, quiet=True)


def test_root_with_other_splits_but_no_training_file_names_them_instead_of_synth(
    data_root: Path, tmp_path: Path
) -> None:
    # ltr data synth would refuse this folder
    root = copy_splits(data_root, tmp_path / "fold", ("vali.txt", "test.txt"))
    config = make_config(root, tmp_path)
    with pytest.raises(DataNotFoundError) as error:
        experiment_module.resolve_data_paths(config.data)
    assert str(error.value) == (
        f"data.root {root} holds vali.txt, test.txt but no training file (looked for "
        "train.txt, train.txt.gz); add the training file or point data.root at a folder that "
        "holds one"
    )


def test_distributed_batch_size_must_divide_over_the_processes(
    data_root: Path, tmp_path: Path
) -> None:
    config = make_config(data_root, tmp_path, "training.batch_size=9")
    with pytest.raises(ConfigError, match=r"training\.batch_size=9 must be divisible"):
        run_experiment(config, dist=Distributed(0, 2), quiet=True)
    assert not any(tmp_path.iterdir())  # refused before any work


def test_run_names_get_a_suffix_when_taken(tmp_path: Path) -> None:
    now = datetime(2024, 1, 2, 3, 4, 5)
    first = Run.create(tmp_path, "exp", now=now, tensorboard=False)
    second = Run.create(tmp_path, "exp", now=now, tensorboard=False)
    assert (first.dir.name, second.dir.name) == ("20240102-030405-exp", "20240102-030405-exp-2")


def test_output_dir_that_cannot_hold_a_run_names_the_field(data_root: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where the runs should go")
    config = make_config(data_root, tmp_path / "taken" / "runs")
    with pytest.raises(WriteError, match=r"^tracking\.output_dir .*taken/runs: cannot create a"):
        run_experiment(config, quiet=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into 0o555 folders")
def test_read_only_output_dir_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir(mode=0o555)
    try:
        with pytest.raises(WriteError, match=r"^tracking\.output_dir .*runs: cannot create a"):
            Run.create(tmp_path / "runs", "exp", tensorboard=False)
    finally:
        (tmp_path / "runs").chmod(0o755)


def test_runs_on_other_ranks_write_nothing(tmp_path: Path) -> None:
    run = Run(tmp_path / "run", rank=1)
    run.write_json("metrics.json", {"a": 1.0})
    run.save_checkpoint("last", {"epoch": 1})
    assert not (tmp_path / "run").exists()


def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(LtrError, match=r"last\.pt: not a readable ltr checkpoint"):
        load_checkpoint(path)


def test_checkpoint_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(LtrError, match="not an ltr checkpoint"):
        load_checkpoint(path)


def test_a_data_file_or_checkpoint_that_is_a_directory_is_called_one(
    data_root: Path, tmp_path: Path
) -> None:
    data = make_config(data_root, tmp_path).data.model_copy(update={"test": tmp_path})
    with pytest.raises(DataNotFoundError) as error:
        experiment_module.resolve_data_paths(data)
    assert str(error.value) == f"data.test: file {tmp_path} is a directory, not a file"
    with pytest.raises(DataNotFoundError) as error:
        load_checkpoint(tmp_path)
    assert str(error.value) == f"checkpoint {tmp_path} is a directory, not a file"


@pytest.mark.parametrize(
    ("env", "command"),
    [
        (
            {"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "GROUP_WORLD_SIZE": "1"},
            "torchrun --nproc-per-node 2 -m ltr train --resume {run_dir}",
        ),
        (
            {"WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4", "GROUP_WORLD_SIZE": "2"},
            "torchrun --nnodes 2 --nproc-per-node 4 -m ltr train --resume {run_dir} on every "
            "machine, with the job's rendezvous options",
        ),
    ],
)
def test_the_resume_hint_of_a_torchrun_job_gives_its_machines_and_processes_per_machine(
    tmp_path: Path, env: dict[str, str], command: str
) -> None:
    env = {"RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "h", "MASTER_PORT": "1", **env}
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"not read: the hint says epoch ?")
    note = experiment_module._ResumeNote(
        5, mlflow=False, writer=True, dist=Distributed.from_env(env), run_dir=tmp_path
    )
    assert note.text() == (
        f"{tmp_path}: checkpoints/last.pt holds epoch ? of 5; "
        f"continue with: {command.format(run_dir=tmp_path)}"
    )
