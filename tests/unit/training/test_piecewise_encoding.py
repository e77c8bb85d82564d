"""model.piecewise_bins in training: edges fitted on the normalized training file, kept, resumed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ltr.data.letor import load_letor
from ltr.data.preprocessing import Normalizer
from ltr.inference import Predictor
from ltr.training.checkpoint import load_checkpoint
from support.tiny_runs import tiny_run, write_tiny_data

BINS = 4


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_data(tmp_path_factory.mktemp("piecewise") / "data")


def test_edges_are_quantiles_of_the_normalized_training_file(data: Path, tmp_path: Path) -> None:
    run = tiny_run(data, tmp_path, f"model.piecewise_bins={BINS}")
    weights = load_checkpoint(run / "checkpoints" / "best.pt")["model"]
    train = load_letor(data / "train.txt")
    normalized = Normalizer("standard").fit(train).transform(train.features).astype(np.float64)

    quantiles = np.quantile(normalized, np.linspace(0, 1, BINS + 1), axis=0)  # [bins + 1, F]

    low, inv_width = weights["encoding.low"].double(), weights["encoding.inv_width"].double()
    np.testing.assert_allclose(low.numpy(), quantiles[:-1].T, atol=1e-6)
    np.testing.assert_allclose((low + 1 / inv_width).numpy(), quantiles[1:].T, atol=1e-5)


def test_prediction_uses_the_trained_edges(data: Path, tmp_path: Path) -> None:
    run = tiny_run(data, tmp_path, f"model.piecewise_bins={BINS}")
    predictor = Predictor.load(run)
    test = load_letor(data / "test.txt")
    scorer = predictor.model
    assert scorer.encoding.inv_width.abs().sum() > 0  # fitted, not the all-zero start

    scores = predictor.score(test)

    scorer.encoding.inv_width.zero_()  # an unfitted encoding would score every document alike
    assert not np.allclose(scores, predictor.score(test))


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(data: Path, tmp_path: Path) -> None:
    whole = tiny_run(data, tmp_path / "whole", f"model.piecewise_bins={BINS}")
    part = tiny_run(
        data, tmp_path / "part", f"model.piecewise_bins={BINS}", "training.num_epochs=1"
    )
    resumed = tiny_run(data, tmp_path / "part", f"model.piecewise_bins={BINS}", resume=part)

    expected = load_checkpoint(whole / "checkpoints" / "last.pt")["model"]
    got = load_checkpoint(resumed / "checkpoints" / "last.pt")["model"]
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=0, atol=0)
