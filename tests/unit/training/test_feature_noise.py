"""training.feature_noise: Gaussian noise on real documents' features, only while training."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from ltr.config import load_config
from ltr.data.dataset import Batch, QueryDataset
from ltr.data.synthetic import make_synthetic
from ltr.errors import ConfigError
from ltr.losses import build_loss
from ltr.models import build_model
from ltr.training.checkpoint import load_checkpoint
from ltr.training.trainer import train_step
from support.tiny_runs import N_FEATURES, tiny_run, write_tiny_data


def padded_batch() -> Batch:
    """One batch of 16 queries of different lengths, so some rows are padding."""
    data = make_synthetic(n_queries=16, n_features=N_FEATURES, max_docs=12, seed=0)
    batch = next(iter(QueryDataset(data).loader(16)))
    assert not batch.mask.all()
    return batch


class Recorder(nn.Module):
    """A linear scorer that keeps a copy of the features it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.scorer = build_model("linear", N_FEATURES)
        self.seen: list[torch.Tensor] = []

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self.seen.append(features.detach().clone())
        scores: torch.Tensor = self.scorer(features, mask)
        return scores


def step(model: nn.Module, batch: Batch, noise: float, seed: int = 0) -> torch.Tensor:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(seed)
    return train_step(model, build_loss("listnet"), optimizer, batch, 1.0, noise)


def test_zero_noise_is_the_plain_step_and_draws_no_random_numbers() -> None:
    batch = padded_batch()
    torch.manual_seed(0)
    model = build_model("linear", N_FEATURES)
    manual = copy.deepcopy(model)

    rng = torch.get_rng_state()
    loss = train_step(
        model, build_loss("listnet"), torch.optim.SGD(model.parameters(), lr=0.1), batch, 1.0, 0.0
    )
    assert torch.equal(torch.get_rng_state(), rng)  # runs without noise replay as before

    optimizer = torch.optim.SGD(manual.parameters(), lr=0.1)
    expected = build_loss("listnet")(manual(batch.features, batch.mask), batch.labels, batch.mask)
    optimizer.zero_grad()
    expected.backward()
    nn.utils.clip_grad_norm_(manual.parameters(), 1.0)
    optimizer.step()
    assert torch.equal(loss, expected.detach())
    for after, reference in zip(model.parameters(), manual.parameters(), strict=True):
        assert torch.equal(after, reference)


def test_noise_changes_the_loss_reproducibly_for_one_seed() -> None:
    batch = padded_batch()
    torch.manual_seed(0)
    model = build_model("linear", N_FEATURES)

    clean = step(copy.deepcopy(model), batch, 0.0)
    noisy = step(copy.deepcopy(model), batch, 0.5, seed=1)
    again = step(copy.deepcopy(model), batch, 0.5, seed=1)
    other = step(copy.deepcopy(model), batch, 0.5, seed=2)

    assert noisy != clean
    assert torch.equal(noisy, again)
    assert noisy != other


def test_noise_reaches_real_documents_only_and_has_the_configured_spread() -> None:
    batch = padded_batch()
    original = batch.features.clone()
    model = Recorder()

    step(model, batch, 0.5)

    (seen,) = model.seen
    assert torch.equal(batch.features, original)  # the data itself is not modified in place
    assert torch.equal(seen[~batch.mask], original[~batch.mask])  # padding: no noise
    added = (seen - original)[batch.mask]
    assert (added != 0).all()
    assert added.mean().item() == pytest.approx(0.0, abs=0.05)
    assert added.std().item() == pytest.approx(0.5, rel=0.1)


@pytest.mark.parametrize("value", ["-1", "-0.01"])
def test_negative_noise_is_rejected_naming_the_field(value: str) -> None:
    with pytest.raises(ConfigError, match=r"training\.feature_noise"):
        load_config(
            base={"data": {"train": "train.txt"}}, overrides=[f"training.feature_noise={value}"]
        )


def test_noise_defaults_to_zero() -> None:
    assert load_config(base={"data": {"train": "train.txt"}}).training.feature_noise == 0.0


# --------------------------------------------------------------------------------------------
# Through run_experiment: the setting is used, and resuming keeps the noise stream
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_data(tmp_path_factory.mktemp("noise_data"))


def last_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    weights: dict[str, torch.Tensor] = load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]
    return weights


def test_resumed_noisy_run_ends_like_an_uninterrupted_one(data_root: Path, tmp_path: Path) -> None:
    noisy = "training.feature_noise=0.1"
    whole = tiny_run(data_root, tmp_path / "whole", noisy)
    clean = tiny_run(data_root, tmp_path / "clean")
    first = tiny_run(data_root, tmp_path / "parts", noisy, "training.num_epochs=2")
    resumed = tiny_run(data_root, tmp_path / "parts", noisy, resume=first)

    assert resumed == first
    expected, got = last_weights(whole), last_weights(resumed)
    assert all(torch.equal(got[key], expected[key]) for key in expected)
    assert not all(torch.equal(last_weights(clean)[key], expected[key]) for key in expected)
