"""training.weight_averaging: a moving average of the weights validates, is saved, predicts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from ltr.config import load_config
from ltr.data.letor import load_letor
from ltr.data.preprocessing import Normalizer
from ltr.errors import ConfigError, LtrError
from ltr.models import build_model
from ltr.training.checkpoint import load_checkpoint
from ltr.training.trainer import WeightAverage, evaluate_model
from support.tiny_runs import N_FEATURES, tiny_run, write_tiny_data


def test_update_is_the_warmed_up_exponential_average() -> None:
    torch.manual_seed(0)
    model = build_model("linear", N_FEATURES)
    average = WeightAverage(model, decay=0.9)
    expected = [p.detach().clone() for p in model.parameters()]
    for step in range(1, 31):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter))
        average.update(model)
        decay = min(0.9, (1 + step) / (10 + step))
        expected = [
            decay * old + (1 - decay) * new.detach()
            for old, new in zip(expected, model.parameters(), strict=True)
        ]
    for got, want in zip(average.model.parameters(), expected, strict=True):
        torch.testing.assert_close(got, want)
    assert not any(p.requires_grad for p in average.model.parameters())
    assert average.steps == 30


def test_buffers_are_copied_not_averaged() -> None:
    model = build_model("mlp", N_FEATURES, hidden_dims=[4], norm="batch")
    average = WeightAverage(model, decay=0.99)
    with torch.no_grad():
        for buffer in model.buffers():
            buffer.fill_(3.0)
    average.update(model)
    for buffer in average.model.buffers():
        assert torch.all(buffer == 3.0)


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.1"])
def test_decay_outside_zero_one_is_rejected_naming_the_field(value: str) -> None:
    with pytest.raises(ConfigError, match=r"training\.weight_averaging"):
        load_config(
            base={"data": {"train": "t.txt"}}, overrides=[f"training.weight_averaging={value}"]
        )


def test_weight_averaging_is_off_by_default() -> None:
    assert load_config(base={"data": {"train": "t.txt"}}).training.weight_averaging is None


# --------------------------------------------------------------------------------------------
# Through run_experiment: what is saved, what validates, and resuming
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_data(tmp_path_factory.mktemp("averaging_data"))


def run(root: Path, out: Path, *overrides: str, resume: Path | None = None) -> Path:
    """4 epochs at a learning rate that moves the weights, averaged with decay 0.9."""
    training = {"num_epochs": 4, "learning_rate": 0.01, "weight_averaging": 0.9}
    return tiny_run(root, out, *overrides, training=training, resume=resume)


def test_best_checkpoint_holds_the_averaged_weights_that_validated(
    data_root: Path, tmp_path: Path
) -> None:
    run_dir = run(data_root, tmp_path)
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert set(best["trained"]) == set(best["model"])
    assert not all(torch.equal(best["trained"][k], v) for k, v in best["model"].items())
    batches = math.ceil(load_letor(data_root / "train.txt").n_queries / 8)  # batch_size 8
    assert best["averaged"] == best["epoch"] * batches  # one update per optimizer step

    model = build_model("mlp", N_FEATURES, hidden_dims=[8], dropout=0.1)
    model.load_state_dict(best["model"])
    model.eval()
    normalizer = Normalizer.from_dict(best["normalizer"])
    valid = normalizer.transform_data(load_letor(data_root / "vali.txt"))
    value = evaluate_model(model, valid, ["ndcg@10"], batch_size=8).means["ndcg@10"]
    history = json.loads((run_dir / "training_history.json").read_text())
    assert value == pytest.approx(history[best["state"]["best_epoch"] - 1]["valid_ndcg@10"])


def test_averaging_leaves_the_trained_weights_alone(data_root: Path, tmp_path: Path) -> None:
    averaged = load_checkpoint(run(data_root, tmp_path / "on") / "checkpoints" / "last.pt")
    plain = load_checkpoint(
        run(data_root, tmp_path / "off", "training.weight_averaging=null")
        / "checkpoints"
        / "last.pt"
    )
    assert "trained" not in plain and "averaged" not in plain
    assert all(torch.equal(averaged["trained"][k], v) for k, v in plain["model"].items())
    assert not all(torch.equal(averaged["model"][k], v) for k, v in plain["model"].items())


def test_resumed_run_ends_like_an_uninterrupted_one(data_root: Path, tmp_path: Path) -> None:
    whole = load_checkpoint(run(data_root, tmp_path / "whole") / "checkpoints" / "last.pt")
    first = run(data_root, tmp_path / "parts", "training.num_epochs=2")
    resumed = load_checkpoint(run(data_root, tmp_path / "parts", resume=first)
                              / "checkpoints" / "last.pt")  # fmt: skip
    assert resumed["epoch"] == whole["epoch"] == 4
    for key in ("model", "trained"):
        assert all(torch.equal(resumed[key][k], v) for k, v in whole[key].items()), key
    assert resumed["averaged"] == whole["averaged"]


def test_resuming_with_another_averaging_setting_is_refused(
    data_root: Path, tmp_path: Path
) -> None:
    first = run(data_root, tmp_path, "training.num_epochs=2")
    with pytest.raises(LtrError, match=r"training\.weight_averaging"):
        run(data_root, tmp_path, "training.weight_averaging=null", resume=first)
