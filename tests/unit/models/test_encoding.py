"""Piecewise-linear input encoding: the definition, odd features, errors, the MLP around it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ltr.errors import ConfigError, ShapeError
from ltr.models import MLPScorer, PiecewiseLinearEncoding, build_model, fit_input_encodings


def reference_encoding(train: np.ndarray, x: np.ndarray, bins: int) -> np.ndarray:
    """Gorishniy et al.'s encoding written out per feature, bin and value, in float64."""
    out = np.zeros((x.shape[0], train.shape[1] * bins))
    for f in range(train.shape[1]):
        edges = np.unique(np.quantile(train[:, f], np.linspace(0, 1, bins + 1)))
        for t in range(edges.size - 1):
            for n, value in enumerate(x[:, f]):
                passed = (value - edges[t]) / (edges[t + 1] - edges[t])
                out[n, f * bins + t] = min(1.0, max(0.0, passed))
    return out


def encode(encoding: PiecewiseLinearEncoding, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return encoding(torch.tensor(x, dtype=torch.float32)).double().numpy()


@pytest.mark.parametrize("bins", [2, 5, 16])
def test_encoding_matches_the_definition(bins: int) -> None:
    rng = np.random.default_rng(bins)
    train = np.column_stack(
        [rng.normal(size=300), rng.exponential(size=300), rng.uniform(size=300)]
    )
    x = np.vstack([train[:50], rng.normal(scale=3.0, size=(50, 3))])  # seen and unseen values
    encoding = PiecewiseLinearEncoding(3, bins)
    encoding.fit(train)

    np.testing.assert_allclose(encode(encoding, x), reference_encoding(train, x, bins), atol=1e-5)


def test_few_distinct_values_use_fewer_bins_and_constants_encode_to_zero() -> None:
    train = np.array([[0.0, 7.0, 0.0], [0.0, 7.0, 1.0], [1.0, 7.0, 2.0], [0.0, 7.0, 3.0]])
    encoding = PiecewiseLinearEncoding(3, 4)
    encoding.fit(train)

    encoded = encode(encoding, np.array([[1.0, 7.0, 3.0], [0.5, 99.0, 1.5]])).reshape(2, 3, 4)
    # mostly-zero binary feature: quantiles 0, 0, 0, 0.25, 1 (interpolated), so two bins and
    # two unused columns
    np.testing.assert_allclose(encoded[:, 0], [[1, 1, 0, 0], [1, 1 / 3, 0, 0]], rtol=1e-6)
    # constant in training: nothing to learn from, whatever the value later
    np.testing.assert_allclose(encoded[:, 1], 0.0)
    # four distinct values, quantiles 0, 0.75, 1.5, 2.25, 3: four bins
    np.testing.assert_allclose(encoded[:, 2], [[1, 1, 1, 1], [1, 1, 0, 0]])


def test_values_beyond_the_training_range_saturate() -> None:
    train = np.linspace(0.0, 1.0, 101)[:, None]
    encoding = PiecewiseLinearEncoding(1, 8)
    encoding.fit(train)

    encoded = encode(encoding, np.array([[-5.0], [0.0], [1.0], [40.0]]))

    np.testing.assert_allclose(encoded[[0, 1]], 0.0)
    np.testing.assert_allclose(encoded[[2, 3]], 1.0)


def test_the_encoding_is_continuous_and_nondecreasing_in_the_value() -> None:
    rng = np.random.default_rng(0)
    encoding = PiecewiseLinearEncoding(1, 6)
    encoding.fit(rng.gamma(2.0, size=(500, 1)))
    grid = np.linspace(-1.0, 15.0, 4001)[:, None]

    encoded = encode(encoding, grid)

    steps = np.diff(encoded, axis=0)
    assert (steps >= -1e-6).all()
    assert np.abs(steps).max() < 0.05  # no jumps: a fine grid moves every column a little


@pytest.mark.parametrize("bins", [1, 0, 2.5, True, "8", [8]])
def test_bad_bin_counts_name_the_field(bins: object) -> None:
    with pytest.raises(ConfigError, match=r"model\.piecewise_bins"):
        build_model("mlp", 4, piecewise_bins=bins)


def test_fit_checks_the_feature_count() -> None:
    encoding = PiecewiseLinearEncoding(3, 4)
    with pytest.raises(ShapeError, match=r"\[n_docs, 3\]"):
        encoding.fit(np.zeros((10, 4)))


def test_mlp_feeds_every_encoded_column_to_its_first_layer() -> None:
    torch.manual_seed(0)
    mlp = build_model("mlp", 5, hidden_dims=[8], piecewise_bins=4)
    assert isinstance(mlp, MLPScorer) and mlp.linears[0].in_features == 20
    fit_input_encodings(mlp, np.random.default_rng(0).normal(size=(200, 5)))
    features = torch.randn(2, 7, 5)

    mlp(features, torch.ones(2, 7, dtype=torch.bool)).sum().backward()

    assert mlp.linears[0].weight.grad is not None
    assert mlp.linears[0].weight.grad.abs().sum() > 0
    assert mlp.encoding is not None and mlp.encoding.low.grad is None  # edges are not learned


SCORERS = {
    "mlp": {"hidden_dims": [4]},
    "transformer": {"d_model": 8, "n_heads": 2, "n_layers": 1, "dim_feedforward": 16},
}


@pytest.mark.parametrize("name", sorted(SCORERS))
def test_fitted_edges_travel_in_the_state_dict(name: str) -> None:
    torch.manual_seed(0)
    fitted = build_model(name, 3, piecewise_bins=3, **SCORERS[name])
    fit_input_encodings(fitted, np.random.default_rng(1).exponential(size=(100, 3)))
    assert fitted.encoding is not None and fitted.encoding.inv_width.abs().sum() > 0
    rebuilt = build_model(name, 3, piecewise_bins=3, **SCORERS[name])
    rebuilt.load_state_dict(fitted.state_dict())
    fitted.eval(), rebuilt.eval()  # no dropout
    features, mask = torch.rand(2, 6, 3) * 4, torch.ones(2, 6, dtype=torch.bool)

    with torch.no_grad():
        torch.testing.assert_close(rebuilt(features, mask), fitted(features, mask))
