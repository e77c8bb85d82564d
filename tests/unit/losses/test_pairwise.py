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


def pairwise_reference(scores: Tensor, weight_of, sigma: float, reduction: str) -> Tensor:
    """Each query's sum over pairs (i, j) with y_i > y_j of w_ij log(1 + e^{-sigma (s_i - s_j)});
    averaged over queries ("queries") or divided by the batch's number of pairs ("pairs")."""
    sums, counts = [], []
    for q in range(scores.shape[0]):
        docs = real(q)
        total, count = scores.new_zeros(()), 0
        for i in docs:
            for j in docs:
                if LABELS[q, i] > LABELS[q, j]:
                    weight = weight_of(q, docs, i, j)
                    total = total + weight * torch.log1p(
                        torch.exp(-sigma * (scores[q, i] - scores[q, j]))
                    )
                    count += 1
        sums.append(total)
        counts.append(count)
    if reduction == "pairs":
        return sum(sums) / sum(counts)
    return sum(sums) / sum(1 for c in counts if c > 0)


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


REDUCTIONS = ["queries", "pairs"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("sigma", [1.0, 2.5])
def test_ranknet_matches_double_loop_over_pairs(sigma: float, reduction: str) -> None:
    assert_matches_reference(
        lambda s, y, m: ranknet_loss(s, y, m, sigma=sigma, reduction=reduction),
        lambda s: pairwise_reference(s, lambda q, docs, i, j: 1.0, sigma, reduction),
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("k", [None, 2])
def test_lambdarank_matches_pairs_weighted_by_swapped_ndcg(k: int | None, reduction: str) -> None:
    assert_matches_reference(
        lambda s, y, m: lambdarank_loss(s, y, m, sigma=1.5, k=k, reduction=reduction),
        lambda s: pairwise_reference(
            s, lambda q, d, i, j: swap_delta_ndcg(q, d, i, j, k), 1.5, reduction
        ),
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("mu", [0.0, 10.0])
def test_ndcgloss2pp_matches_per_pair_loop(mu: float, reduction: str) -> None:
    assert_matches_reference(
        lambda s, y, m: ndcgloss2pp_loss(s, y, m, mu=mu, reduction=reduction),
        lambda s: pairwise_reference(
            s, lambda q, d, i, j: lambdaloss_weight(q, d, i, j, mu), 1.0, reduction
        ),
    )


PAIRWISE = [ranknet_loss, lambdarank_loss, ndcgloss2pp_loss]


def uneven_batch() -> tuple[Tensor, Tensor, Tensor]:
    """A long list with many pairs, a short one, and one without a pair (equal labels)."""
    generator = torch.Generator().manual_seed(11)
    scores = torch.randn(3, 12, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 3, (3, 12), generator=generator).double()
    labels[0, :2] = torch.tensor([2.0, 0.0])
    labels[1, :3] = torch.tensor([1.0, 0.0, 0.0])
    labels[2] = 1.0
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[1, 3:] = False
    return scores, labels, mask


@pytest.mark.parametrize("loss", PAIRWISE)
def test_queries_reduction_averages_each_querys_own_loss(loss) -> None:
    scores, labels, mask = uneven_batch()
    alone = [loss(scores[q : q + 1], labels[q : q + 1], mask[q : q + 1]) for q in range(3)]
    assert alone[2].item() == 0.0  # no pair: not counted in the mean
    torch.testing.assert_close(loss(scores, labels, mask), (alone[0] + alone[1]) / 2)


@pytest.mark.parametrize("loss", PAIRWISE)
def test_pairs_reduction_weighs_queries_by_their_number_of_pairs(loss) -> None:
    scores, labels, mask = uneven_batch()
    alone = [
        loss(scores[q : q + 1], labels[q : q + 1], mask[q : q + 1], reduction="pairs")
        for q in range(2)
    ]
    pairs = [int((labels[q, mask[q]][:, None] > labels[q, mask[q]][None, :]).sum()) for q in (0, 1)]
    expected = (alone[0] * pairs[0] + alone[1] * pairs[1]) / sum(pairs)
    assert pairs[0] > 5 * pairs[1]  # the long list dominates this mean, not the other
    torch.testing.assert_close(loss(scores, labels, mask, reduction="pairs"), expected)


@pytest.mark.parametrize("loss", PAIRWISE)
def test_pairs_reduction_ignores_padding_and_passes_gradcheck(loss) -> None:
    scores, labels, mask = uneven_batch()
    padded = (
        torch.cat([scores, torch.full((3, 2), 1e6, dtype=torch.float64)], dim=1),
        torch.cat([labels, torch.full((3, 2), 9.0, dtype=torch.float64)], dim=1),
        torch.cat([mask, torch.zeros(3, 2, dtype=torch.bool)], dim=1),
    )
    torch.testing.assert_close(
        loss(*padded, reduction="pairs"), loss(scores, labels, mask, reduction="pairs")
    )
    leaf = scores.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda s: loss(s, labels, mask, reduction="pairs"), (leaf,))


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
        (
            lambda: lambdarank_loss(SCORES, LABELS, MASK, reduction="sum"),
            r"reduction must be 'queries' or 'pairs'; got 'sum'",
        ),
    ],
)
def test_invalid_parameters_raise_config_error(call, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()
