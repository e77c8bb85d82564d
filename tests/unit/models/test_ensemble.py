"""EnsembleScorer: the weighted mean of its members' scores, its config errors, uses_context."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from ltr.errors import ConfigError
from ltr.models import EnsembleScorer, build_model, uses_context

N_FEATURES = 6
MLP = {"name": "mlp", "hidden_dims": [8], "dropout": 0.0}
LINEAR = {"name": "linear"}
TRANSFORMER = {"name": "transformer", "d_model": 8, "n_heads": 2, "n_layers": 1}


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(3, 7, N_FEATURES, generator=generator)
    mask = torch.rand(3, 7, generator=generator) > 0.3
    mask[:, 0] = True
    return features, mask


def standalone_scores(
    ensemble: EnsembleScorer, members: list[dict[str, Any]], features: torch.Tensor, mask
) -> list[torch.Tensor]:
    """Each member rebuilt on its own with build_model, its weights copied from the ensemble."""
    scores = []
    for member, config in zip(ensemble.members, members, strict=True):
        params = dict(config)
        scorer = build_model(params.pop("name"), N_FEATURES, **params)
        scorer.load_state_dict(member.state_dict())
        with torch.no_grad():
            scores.append(scorer.eval()(features, mask))
    return scores


@pytest.mark.parametrize(
    ("members", "weights"),
    [
        ([MLP, LINEAR], [1.0, 3.0]),
        ([MLP, LINEAR, TRANSFORMER], [0.5, 0.0, 2.0]),
        ([LINEAR, LINEAR], [2, 2]),
    ],
)
def test_scores_are_the_normalized_weighted_mean_of_the_members(members, weights) -> None:
    torch.manual_seed(0)
    ensemble = build_model("ensemble", N_FEATURES, members=members, weights=weights).eval()
    features, mask = batch()
    with torch.no_grad():
        scores = ensemble(features, mask)

    parts = standalone_scores(ensemble, members, features, mask)
    expected = sum(w * s for w, s in zip(weights, parts, strict=True)) / sum(weights)
    torch.testing.assert_close(scores, expected)
    assert ensemble.weights.sum().item() == pytest.approx(1.0)


def test_default_weights_are_equal_and_give_the_plain_mean() -> None:
    members = [MLP, LINEAR, {**MLP, "hidden_dims": [4]}]
    torch.manual_seed(1)
    ensemble = EnsembleScorer(N_FEATURES, members).eval()
    features, mask = batch(1)
    with torch.no_grad():
        scores = ensemble(features, mask)

    assert ensemble.weights.tolist() == pytest.approx([1 / 3] * 3)
    expected = torch.stack(standalone_scores(ensemble, members, features, mask)).mean(0)
    torch.testing.assert_close(scores, expected)


def test_members_are_independently_initialized_and_weights_are_in_the_state_dict() -> None:
    torch.manual_seed(0)
    ensemble = EnsembleScorer(N_FEATURES, [LINEAR, LINEAR], weights=[1, 3])
    first, second = ensemble.members
    assert not torch.equal(first.linear.weight, second.linear.weight)
    state = ensemble.state_dict()
    assert state["weights"].tolist() == [0.25, 0.75]
    restored = EnsembleScorer(N_FEATURES, [LINEAR, LINEAR])  # equal weights until loaded
    restored.load_state_dict(state)
    assert restored.weights.tolist() == [0.25, 0.75]


@pytest.mark.parametrize(
    ("members", "weights", "message"),
    [
        ([], None, r"model\.members: give a non-empty list"),
        ({"name": "mlp"}, None, r"model\.members: give a non-empty list"),
        (
            [LINEAR, {"hidden_dims": [8]}],
            None,
            r"model\.members\[1\]: needs a mapping with a 'name'",
        ),
        ([LINEAR, "mlp"], None, r"model\.members\[1\]: needs a mapping with a 'name'"),
        (
            [{"name": "ensemble", "members": [LINEAR]}],
            None,
            r"model\.members\[0\]: ensembles do not nest",
        ),
        ([LINEAR, MLP], [1.0], r"model\.weights: 1 weights for 2 members"),
        ([LINEAR, MLP], [1.0, 2.0, 3.0], r"model\.weights: 3 weights for 2 members"),
        ([LINEAR, MLP], [1.0, -0.5], r"model\.weights: need finite, non-negative weights"),
        ([LINEAR, MLP], [0.0, 0.0], r"positive sum"),
        ([LINEAR, MLP], [1.0, float("nan")], r"model\.weights: need finite, non-negative weights"),
        ([LINEAR, MLP], [1.0, float("inf")], r"model\.weights: need finite, non-negative weights"),
        ([LINEAR, {"name": "cnn"}], None, r"model\.name: unknown model 'cnn'"),
    ],
)
def test_invalid_members_or_weights_raise_config_error(members, weights, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_model("ensemble", N_FEATURES, members=members, weights=weights)


def test_an_ensemble_without_members_is_a_config_error_not_a_type_error() -> None:
    # what `ltr train --set 'model={name: ensemble}'` builds: the config names no members
    with pytest.raises(
        ConfigError, match=r"model: ensemble: missing a required argument: 'members'"
    ):
        build_model("ensemble", N_FEATURES)


@pytest.mark.parametrize(
    ("members", "expected"),
    [([MLP, LINEAR], False), ([LINEAR], False), ([MLP, TRANSFORMER], True), ([TRANSFORMER], True)],
)
def test_uses_context_when_any_member_is_a_transformer(members, expected: bool) -> None:
    assert uses_context(EnsembleScorer(N_FEATURES, members)) is expected


@pytest.mark.parametrize(
    ("name", "expected"), [("linear", False), ("mlp", False), ("transformer", True)]
)
def test_uses_context_of_single_scorers(name: str, expected: bool) -> None:
    assert uses_context(build_model(name, N_FEATURES)) is expected


def test_a_context_aware_member_sees_the_other_documents_through_the_ensemble() -> None:
    torch.manual_seed(0)
    ensemble = EnsembleScorer(N_FEATURES, [LINEAR, {**TRANSFORMER, "dropout": 0.0}]).eval()
    features, _ = batch()
    mask = torch.ones(features.shape[:2], dtype=torch.bool)
    changed = features.clone()
    changed[:, -1] += 1.0  # only the last document of each list changes
    with torch.no_grad():
        before, after = ensemble(features, mask), ensemble(changed, mask)
    assert not torch.allclose(before[:, 0], after[:, 0])
