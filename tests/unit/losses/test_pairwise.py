"""RankNet, LambdaRank and NDCG-Loss2++ against explicit loops over pairs (float64)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from ltr.errors import ConfigError
from ltr.losses import lambdarank_loss, ndcgloss2pp_loss, ranknet_loss

SCORES = torch.tensor(
    [[0.5, -1.2, 2.0, 0.1, 9.0], [1.5, 0.3, -0.4, 0.8, 0.0], [0.2, 0.9, -0.7, 1.1, -2.0]],
    dtype=torch.float64,
)
LABELS = torch.tensor(
    [[2.0, 0.0, 1.0, 3.0, 1.0], [0.0, 1.0, 1.0, 4.0, 2.0], [1.0, 0.0, 2.0, 0.0, 0.0]],
    dtype=torch.float64,
)
MASK = torch.tensor([[True, True, True, True, False], [True] * 5, [True, True, True, True, False]])


def ranking(scores: list[float]) -> list[int]:
    """Document indices by descending score, ties in input order."""
    return sorted(range(len(scores)), key=lambda i: -scores[i])


def ndcg_at(order: list[int], labels: list[float], k: int | None) -> float:
    cut = len(order) if k is None else k
    dcg = sum((2 ** labels[d] - 1) / math.log2(r + 2) for r, d in enumerate(order[:cut]))
    ideal = sorted(labels, reverse=True)[:cut]
    return dcg / sum((2**g - 1) / math.log2(r + 2) for r, g in enumerate(ideal))


def real(q: int) -> list[int]:
    return [i for i in range(SCORES.shape[1]) if MASK[q, i]]


def pairwise_reference(scores: Tensor, weight_of, sigma: float) -> Tensor:
    """sum over pairs (i, j) with y_i > y_j of w_ij log(1 + e^{-sigma (s_i - s_j)}) / #pairs."""
    total, count = scores.new_zeros(()), 0
    for q in range(scores.shape[0]):
        docs = real(q)
        for i in docs:
            for j in docs:
                if LABELS[q, i] > LABELS[q, j]:
                    weight = weight_of(q, docs, i, j)
                    total = total + weight * torch.log1p(
                        torch.exp(-sigma * (scores[q, i] - scores[q, j]))
                    )
                    count += 1
    return total / count


def swap_delta_ndcg(q: int, docs: list[int], i: int, j: int, k: int | None) -> float:
    """|NDCG@k change| when documents i and j swap places, recomputed from scratch."""
    scores = [SCORES[q, d].item() for d in docs]
    labels = [LABELS[q, d].item() for d in docs]
    order = ranking(scores)
    a, b = order.index(docs.index(i)), order.index(docs.index(j))
    swapped = list(order)
    swapped[a], swapped[b] = swapped[b], swapped[a]
    return abs(ndcg_at(order, labels, k) - ndcg_at(swapped, labels, k))


def lambdaloss_weight(q: int, docs: list[int], i: int, j: int, mu: float) -> float:
    scores = [SCORES[q, d].item() for d in docs]
    labels = [LABELS[q, d].item() for d in docs]
    order = ranking(scores)
    rank_i, rank_j = order.index(docs.index(i)) + 1, order.index(docs.index(j)) + 1
    ideal = sum((2**g - 1) / math.log2(r + 2) for r, g in enumerate(sorted(labels, reverse=True)))
    gain_gap = abs(2 ** LABELS[q, i].item() - 2 ** LABELS[q, j].item()) / ideal
    rho = abs(1 / math.log2(1 + rank_i) - 1 / math.log2(1 + rank_j))
    distance = abs(rank_i - rank_j)
    delta = 1 / math.log2(1 + distance) - 1 / math.log2(2 + distance)
    return (rho + mu * delta) * gain_gap / math.log(2)


def assert_matches_reference(loss_fn, reference) -> None:
    scores = SCORES.clone().requires_grad_()
    loss = loss_fn(scores, LABELS, MASK)
    (grad,) = torch.autograd.grad(loss, scores)
    ref_scores = SCORES.clone().requires_grad_()
    ref_loss = reference(ref_scores)
    (ref_grad,) = torch.autograd.grad(ref_loss, ref_scores)
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(grad, ref_grad)


@pytest.mark.parametrize("sigma", [1.0, 2.5])
def test_ranknet_matches_double_loop_over_pairs(sigma: float) -> None:
    assert_matches_reference(
        lambda s, y, m: ranknet_loss(s, y, m, sigma=sigma),
        lambda s: pairwise_reference(s, lambda q, docs, i, j: 1.0, sigma),
    )


@pytest.mark.parametrize("k", [None, 2])
def test_lambdarank_matches_pairs_weighted_by_swapped_ndcg(k: int | None) -> None:
    assert_matches_reference(
        lambda s, y, m: lambdarank_loss(s, y, m, sigma=1.5, k=k),
        lambda s: pairwise_reference(s, lambda q, d, i, j: swap_delta_ndcg(q, d, i, j, k), 1.5),
    )


@pytest.mark.parametrize("mu", [0.0, 10.0])
def test_ndcgloss2pp_matches_per_pair_loop(mu: float) -> None:
    assert_matches_reference(
        lambda s, y, m: ndcgloss2pp_loss(s, y, m, mu=mu),
        lambda s: pairwise_reference(s, lambda q, d, i, j: lambdaloss_weight(q, d, i, j, mu), 1.0),
    )


def test_lambdarank_with_unit_weights_is_ranknet() -> None:
    ones = lambda scores, labels, mask: torch.ones(scores.shape + scores.shape[-1:])  # noqa: E731
    torch.testing.assert_close(
        ranknet_loss(SCORES, LABELS, MASK, pair_weight=ones), ranknet_loss(SCORES, LABELS, MASK)
    )


def test_pair_weights_receive_no_gradient() -> None:
    scores = SCORES.clone().requires_grad_()
    seen = []
    ranknet_loss(
        scores,
        LABELS,
        MASK,
        pair_weight=lambda s, y, m: (
            seen.append(s.requires_grad) or torch.ones(s.shape + s.shape[-1:], dtype=s.dtype)
        ),
    )
    assert seen == [False]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ranknet_loss(SCORES, LABELS, MASK, sigma=0.0), r"sigma must be greater than 0"),
        (lambda: lambdarank_loss(SCORES, LABELS, MASK, k=0), r"k must be a positive integer"),
        (lambda: ndcgloss2pp_loss(SCORES, LABELS, MASK, mu=-1.0), r"mu must be at least 0"),
    ],
)
def test_invalid_parameters_raise_config_error(call, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()
