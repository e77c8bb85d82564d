"""Scorers: shapes, padding isolation, determinism, learning, registry errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ltr.errors import ConfigError
from ltr.losses import listnet_loss
from ltr.models import MODELS, build_model, fit_input_encodings

N_FEATURES = 6
SMALL = {  # fast configurations of every registered scorer
    "linear": {},
    "mlp": {"hidden_dims": (16, 8), "dropout": 0.1},
    "transformer": {"d_model": 16, "n_heads": 2, "n_layers": 2, "dim_feedforward": 32},
    "ensemble": {
        "members": [{"name": "mlp", "hidden_dims": [8], "dropout": 0.1}, {"name": "linear"}]
    },
}
VARIANTS = [(name, SMALL[name]) for name in sorted(MODELS)] + [
    ("mlp", {"hidden_dims": (16,), "norm": "batch", "activation": "gelu"}),
    ("mlp", {"hidden_dims": (16,), "norm": "layer", "activation": "tanh"}),
    ("mlp", {"hidden_dims": (16,), "dropout": 0.1, "list_ranks": True}),
    ("transformer", {**SMALL["transformer"], "list_ranks": True}),
    ("mlp", {"hidden_dims": (16,), "piecewise_bins": 4}),
    ("transformer", {**SMALL["transformer"], "piecewise_bins": 4, "list_ranks": True}),
    (
        "ensemble",
        {"members": [{"name": "linear"}, {"name": "transformer", **SMALL["transformer"]}]},
    ),
]
IDS = [
    f"{name}-{params.get('norm', '')}{'-ranks' if params.get('list_ranks') else ''}"
    f"{'-bins' if params.get('piecewise_bins') else ''}"
    f"{'-context' if 'transformer' in str(params.get('members')) else ''}"
    for name, params in VARIANTS
]
# what a caller may leave in padded rows; NaN and inf leak as 0 x NaN wherever padding is
# multiplied by a zero weight (attention, a first layer's weight gradient)
JUNK = {
    "wild": lambda n: torch.randn(n, N_FEATURES) * 1e3,
    "nan": lambda n: torch.full((n, N_FEATURES), float("nan")),
    "inf": lambda n: torch.full((n, N_FEATURES), float("inf")),
    "-inf": lambda n: torch.full((n, N_FEATURES), float("-inf")),
}


def batch(queries: int, list_len: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(queries, list_len, N_FEATURES, generator=generator)
    mask = torch.rand(queries, list_len, generator=generator) > 0.3
    mask[:, 0] = True
    return features, mask


def model(name: str, params: dict[str, object], seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    scorer = build_model(name, N_FEATURES, **params)
    fit_input_encodings(scorer, np.random.default_rng(seed).standard_normal((200, N_FEATURES)))
    return scorer


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=IDS)
@pytest.mark.parametrize("list_len", [1, 7, 1000])
def test_scores_have_one_finite_value_per_document(name, params, list_len: int) -> None:
    features, mask = batch(2, list_len)
    scores = model(name, params)(features, mask)
    assert scores.shape == (2, list_len)
    assert torch.isfinite(scores).all()


def with_junk(features: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    junk = features.clone()
    junk[~mask] = JUNK[kind](int((~mask).sum()))
    return junk


def no_dropout(params: dict[str, object]) -> dict[str, object]:
    return {**params, "dropout": 0.0} if "dropout" in params else params


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=IDS)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("kind", sorted(JUNK))
def test_padded_features_do_not_change_real_scores(name, params, training: bool, kind) -> None:
    scorer = model(name, no_dropout(params))
    scorer.train(training)
    features, mask = batch(3, 9)
    junk = with_junk(features, mask, kind)
    with torch.no_grad():
        torch.manual_seed(1)
        clean = scorer(features, mask)
        torch.manual_seed(1)
        noisy = scorer(junk, mask)
    assert torch.isfinite(noisy[mask]).all()
    torch.testing.assert_close(noisy[mask], clean[mask])


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=IDS)
@pytest.mark.parametrize("kind", ["nan", "inf"])
def test_padded_features_do_not_change_gradients(name, params, kind: str) -> None:
    features, mask = batch(3, 9)
    labels = torch.rand(3, 9, generator=torch.Generator().manual_seed(2))
    grads = []
    for inputs in (features, with_junk(features, mask, kind)):
        scorer = model(name, no_dropout(params))
        listnet_loss(scorer(inputs, mask), labels, mask).backward()
        grads.append([p.grad for p in scorer.parameters() if p.grad is not None])
    assert grads[0] and all(torch.isfinite(g).all() for g in grads[1])
    for clean, noisy in zip(*grads, strict=True):
        torch.testing.assert_close(noisy, clean)


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=IDS)
def test_same_seed_gives_same_model_and_scores(name, params) -> None:
    features, mask = batch(2, 5)
    first, second = model(name, params, seed=3), model(name, params, seed=3)
    first.eval()
    second.eval()
    assert torch.equal(first(features, mask), second(features, mask))


def test_transformer_scores_a_list_without_real_documents_finitely() -> None:
    features, _ = batch(2, 4)
    mask = torch.tensor([[True, True, False, False], [False] * 4])
    scorer = model("transformer", SMALL["transformer"]).eval()
    with torch.no_grad():
        assert torch.isfinite(scorer(features, mask)).all()


def test_transformer_uses_the_other_documents_of_the_list() -> None:
    features, _ = batch(1, 4)
    mask = torch.ones(1, 4, dtype=torch.bool)
    scorer = model("transformer", {**SMALL["transformer"], "dropout": 0.0}).eval()
    changed = features.clone()
    changed[0, 3] += 1.0
    with torch.no_grad():
        assert not torch.allclose(scorer(features, mask)[0, 0], scorer(changed, mask)[0, 0])


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=IDS)
def test_a_few_training_steps_reduce_the_loss(name, params) -> None:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(16, 10, N_FEATURES, generator=generator)
    labels = (features[..., 0] > 0).float() + (features[..., 1] > 0.5).float()
    mask = torch.ones(16, 10, dtype=torch.bool)
    scorer = model(name, {**params, "dropout": 0.0} if "dropout" in params else params)
    optimizer = torch.optim.Adam(scorer.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = listnet_loss(scorer(features, mask), labels, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05


def test_batch_norm_statistics_ignore_padding() -> None:
    scorer = model("mlp", {"hidden_dims": (4,), "norm": "batch", "dropout": 0.0})
    features, mask = batch(2, 6)
    scorer.train()
    scorer(features, mask)
    stats = scorer.norms[0].running_mean.clone()
    junk = features.clone()
    junk[~mask] = 1e3
    again = model("mlp", {"hidden_dims": (4,), "norm": "batch", "dropout": 0.0})
    again(junk, mask)
    torch.testing.assert_close(again.norms[0].running_mean, stats)


def test_unknown_model_lists_the_registered_names() -> None:
    with pytest.raises(
        ConfigError,
        match=r"model\.name: unknown model 'cnn'; choose one of: linear, mlp, transformer",
    ):
        build_model("cnn", N_FEATURES)


def test_unknown_parameter_is_named_with_the_valid_ones() -> None:
    with pytest.raises(
        ConfigError,
        match=r"model\.hidden: mlp has no parameter 'hidden'; valid: hidden_dims, dropout",
    ):
        build_model("mlp", N_FEATURES, hidden=(3,))


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("mlp", {"activation": "swish"}, r"model\.activation: unknown activation 'swish'"),
        ("mlp", {"norm": "group"}, r"model\.norm: unknown norm 'group'"),
        ("mlp", {"dropout": 1.0}, r"model\.dropout: must be in \[0, 1\)"),
        ("mlp", {"list_ranks": "yes"}, r"model\.list_ranks: must be true or false; got 'yes'"),
        ("transformer", {"d_model": 10, "n_heads": 4}, r"model\.n_heads: must divide d_model"),
        ("transformer", {"n_layers": 0}, r"model\.n_layers: must be an integer >= 1"),
        ("transformer", {"d_model": "abc"}, r"model\.d_model: must be an integer >= 1"),
        ("mlp", {"hidden_dims": [8.5]}, r"model\.hidden_dims: must be a list of integer"),
        ("mlp", {"hidden_dims": 8}, r"model\.hidden_dims: must be a list of integer"),
        ("mlp", {"dropout": "abc"}, r"model\.dropout: must be in \[0, 1\); got 'abc'"),
        ("transformer", {"list_ranks": 1}, r"model\.list_ranks: must be true or false; got 1"),
    ],
)
def test_invalid_values_raise_config_error(name: str, params, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_model(name, N_FEATURES, **params)


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=IDS)
def test_scorers_export_with_dynamic_batch_and_list_length(name, params) -> None:
    # torch.export is what the ONNX exporter traces with; data-dependent Python control flow
    # or nested tensors in forward would fail here.
    scorer = model(name, params).eval()
    features, mask = batch(3, 7)
    batch_dim, list_dim = torch.export.Dim("batch"), torch.export.Dim("list_len")
    dims = {0: batch_dim, 1: list_dim}
    exported = torch.export.export(scorer, (features, mask), dynamic_shapes=(dims, dims))
    other_features, other_mask = batch(2, 11, seed=1)
    with torch.no_grad():
        expected = scorer(other_features, other_mask)
    torch.testing.assert_close(exported.module()(other_features, other_mask), expected)
