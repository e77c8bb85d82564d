"""build_loss: config names to callables, with early and precise errors."""

from __future__ import annotations

import math

import pytest
import torch

from ltr.errors import ConfigError
from ltr.losses import LOSSES, build_loss, lambdarank_loss


def test_registry_holds_the_design_losses() -> None:
    assert set(LOSSES) == {
        "mse",
        "ranknet",
        "lambdarank",
        "ndcgloss2pp",
        "listnet",
        "listmle",
        "approx_ndcg",
        "neural_ndcg",
    }


def test_build_loss_binds_parameters() -> None:
    scores, labels = torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[2.0, 1.0, 0.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    loss_fn = build_loss("lambdarank", {"sigma": 2.0, "k": 2})
    assert torch.equal(
        loss_fn(scores, labels, mask), lambdarank_loss(scores, labels, mask, sigma=2.0, k=2)
    )


def test_build_loss_without_params_returns_the_function() -> None:
    assert build_loss("listnet") is LOSSES["listnet"]


def test_unknown_loss_lists_the_registered_names() -> None:
    with pytest.raises(
        ConfigError,
        match=r"loss\.name: unknown loss 'lamdarank'; choose one of: mse, ranknet, lambdarank",
    ):
        build_loss("lamdarank", {})


def test_unknown_parameter_is_named_with_the_valid_ones() -> None:
    with pytest.raises(
        ConfigError,
        match=r"loss\.params\.temperature: approx_ndcg has no parameter 'temperature'; "
        r"valid: alpha$",
    ):
        build_loss("approx_ndcg", {"temperature": 0.1})


def test_positional_arguments_cannot_be_passed_as_params() -> None:
    with pytest.raises(
        ConfigError,
        match=r"loss\.params\.labels: listnet has no parameter 'labels'; valid: \(none\)",
    ):
        build_loss("listnet", {"labels": 1.0})


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("ranknet", {"sigma": -1}, r"^loss\.params\.sigma: must be greater than 0; got -1$"),
        ("ranknet", {"sigma": "1"}, r"^loss\.params\.sigma: must be a finite number; got '1'$"),
        ("ranknet", {"sigma": True}, r"^loss\.params\.sigma: must be a finite number; got True$"),
        (
            "lambdarank",
            {"sigma": math.inf},
            r"^loss\.params\.sigma: must be a finite number; got inf$",
        ),
        (
            "ranknet",
            {"sigma": math.nan},
            r"^loss\.params\.sigma: must be a finite number; got nan$",
        ),
        (
            "approx_ndcg",
            {"alpha": math.inf},
            r"^loss\.params\.alpha: must be a finite number; got inf$",
        ),
        (
            "neural_ndcg",
            {"tau": math.inf},
            r"^loss\.params\.tau: must be a finite number; got inf$",
        ),
        ("ndcgloss2pp", {"mu": math.inf}, r"^loss\.params\.mu: must be a finite number; got inf$"),
        ("ndcgloss2pp", {"mu": -1}, r"^loss\.params\.mu: must be at least 0; got -1$"),
        (
            "neural_ndcg",
            {"sinkhorn_iters": math.inf},
            r"^loss\.params\.sinkhorn_iters: must be an integer >= 0; got inf$",
        ),
        ("lambdarank", {"k": 2.5}, r"^loss\.params\.k: must be a positive integer or None"),
        ("listmle", {"ties": "last"}, r"^loss\.params\.ties: must be 'random' or 'first'"),
    ],
)
def test_build_loss_refuses_a_bad_value_before_the_first_call(
    name: str, params: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build_loss(name, params)
