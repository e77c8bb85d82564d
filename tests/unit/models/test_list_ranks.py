"""Within-list percentile ranks: against scipy's rankdata, masks, invariances, the scorer option."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from ltr.models import ListPercentileRanks, build_model, fit_input_encodings, uses_context
from ltr.models.inputs import document_inputs

RANKS = ListPercentileRanks()


def reference(features: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per list and feature: average ranks of the real documents as percentiles in [0, 1],
    centered and scaled by sqrt(12); 0 for padding and for one-document lists."""
    out = np.zeros(features.shape)
    for b in range(features.shape[0]):
        real = features[b, mask[b]]  # [n, F]
        n = real.shape[0]
        if n > 1:
            percentile = (rankdata(real, method="average", axis=0) - 1) / (n - 1)
            out[b, mask[b]] = (percentile - 0.5) * np.sqrt(12)
    return out


def ranks(features: np.ndarray, mask: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return RANKS(torch.tensor(features), torch.tensor(mask)).numpy()


@pytest.mark.parametrize("seed", range(5))
def test_ranks_match_scipy_average_ranks_with_ties_and_padding(seed: int) -> None:
    rng = np.random.default_rng(seed)
    features = rng.integers(0, 4, (4, 9, 3)).astype(np.float32)  # few values: many ties
    mask = rng.random((4, 9)) > 0.3
    mask[0] = False
    mask[0, 2] = True  # a one-document list
    mask[1] = False  # an all-padding list

    np.testing.assert_allclose(ranks(features, mask), reference(features, mask), atol=1e-6)


def test_padding_neither_counts_nor_gets_a_rank() -> None:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(2, 6, 4)).astype(np.float32)
    mask = np.array([[True] * 4 + [False] * 2, [True] * 6])
    junk = features.copy()
    junk[0, 4:] = [-1e6, 1e6, 0, 0]

    got = ranks(junk, mask)

    np.testing.assert_array_equal(got, ranks(features, mask))
    np.testing.assert_array_equal(got[0, 4:], 0.0)
    np.testing.assert_allclose(got[0, :4], ranks(features[:1, :4], mask[:1, :4])[0])


def test_ranks_do_not_change_under_increasing_transforms() -> None:
    rng = np.random.default_rng(2)
    features = rng.uniform(0.1, 5.0, (3, 8, 5)).astype(np.float32)
    mask = np.ones((3, 8), dtype=bool)

    transformed = (np.log(features) * 3.0 - 7.0).astype(np.float32)

    np.testing.assert_array_equal(ranks(transformed, mask), ranks(features, mask))


def test_a_long_list_is_ranked_exactly() -> None:
    features = np.random.default_rng(3).permutation(1000).astype(np.float32)[None, :, None]
    got = ranks(features, np.ones((1, 1000), dtype=bool))

    expected = (features[0, :, 0] / 999 - 0.5) * np.sqrt(12)
    np.testing.assert_allclose(got[0, :, 0], expected, atol=1e-5)


def test_distinct_values_give_a_standardized_column() -> None:
    features = np.random.default_rng(4).normal(size=(1, 500, 2)).astype(np.float32)
    got = ranks(features, np.ones((1, 500), dtype=bool))[0]

    np.testing.assert_allclose(got.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(got.std(axis=0), 1.0, atol=0.01)


def test_mlp_with_list_ranks_scores_a_document_by_its_list() -> None:
    torch.manual_seed(0)
    plain = build_model("mlp", 3, hidden_dims=[8], dropout=0.0).eval()
    torch.manual_seed(0)
    ranked = build_model("mlp", 3, hidden_dims=[8], dropout=0.0, list_ranks=True).eval()
    features = torch.randn(1, 4, 3)
    mask = torch.ones(1, 4, dtype=torch.bool)
    changed = features.clone()
    changed[0, 3] = features[0, 0] + 1.0  # a new best of every feature: document 0 drops in rank

    with torch.no_grad():
        assert torch.equal(plain(features, mask)[0, 0], plain(changed, mask)[0, 0])
        assert not torch.allclose(ranked(features, mask)[0, 0], ranked(changed, mask)[0, 0])
    assert ranked.linears[0].in_features == 6
    assert uses_context(ranked) and not uses_context(plain)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("mlp", {"hidden_dims": [8]}),
        ("transformer", {"d_model": 8, "n_heads": 2, "n_layers": 1, "dim_feedforward": 16}),
    ],
)
def test_scorers_read_their_encoded_features_then_the_ranks(name: str, params) -> None:
    scorer = build_model(name, 3, piecewise_bins=4, list_ranks=True, **params).eval()
    fit_input_encodings(scorer, np.random.default_rng(0).normal(size=(200, 3)))
    features = torch.randn(2, 6, 3)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])

    inputs = document_inputs(features, mask, scorer.encoding, scorer.ranks)

    first = scorer.linears[0] if name == "mlp" else scorer.input[0]
    assert first.in_features == inputs.shape[-1] == 3 * 4 + 3
    assert torch.equal(inputs[..., :12], scorer.encoding(features))
    assert torch.equal(inputs[..., 12:], RANKS(features, mask))
    assert uses_context(scorer)
