"""Pairwise losses: a logistic loss on every pair of documents whose labels differ.

All three losses here are one computation, :func:`ranknet_loss`, with different pair weights:
RankNet weighs every pair 1, LambdaRank by the |ΔNDCG| of swapping the pair, NDCG-Loss2++ by the
LambdaLoss bound. Weights depend on the current ranking only through ``argsort`` (piecewise
constant in the scores), so they are computed without gradient, as in the papers.

Reduction: the weighted pair losses are averaged over the valid pairs of the whole batch (pairs
``(i, j)`` of real documents with ``y_i > y_j``), so LambdaRank with all weights 1 is RankNet. A
batch without a valid pair (all-equal labels, all padding) gives 0.0 with zero gradient.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from ltr.errors import ConfigError
from ltr.losses._common import (
    check_k,
    exp2_gain,
    ideal_dcg,
    prepare,
    rank_discounts,
    require_positive,
    score_ranks,
)


class PairWeight(Protocol):
    """Weights ``[queries, list_len, list_len]`` of pair ``(i, j)`` from the current ranking.

    Called under ``torch.no_grad()`` with scores and labels whose padding is already 0; entries
    outside valid pairs are ignored (they may be anything finite).
    """

    def __call__(self, scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor: ...


def ranknet_loss(
    scores: Tensor,
    labels: Tensor,
    mask: Tensor,
    *,
    sigma: float = 1.0,
    pair_weight: PairWeight | None = None,
) -> Tensor:
    r"""RankNet (Burges et al., ICML 2005): logistic loss over pairs whose labels differ.

    .. math:: \ell = \frac{1}{|P|} \sum_{(i, j) \in P} w_{ij} \log(1 + e^{-\sigma (s_i - s_j)}),
              \quad P = \{(i, j) : y_i > y_j\}

    with :math:`w_{ij} = 1` unless ``pair_weight`` is given (that is how LambdaRank and
    NDCG-Loss2++ are built on this function).

    Args:
        scores: ``[queries, list_len]`` model outputs.
        labels: ``[queries, list_len]`` graded relevance, 0 = not relevant.
        mask: ``[queries, list_len]`` True for real documents, False for padding.
        sigma: slope of the logistic.
        pair_weight: optional weights of the pairs, computed without gradient.

    Returns:
        Scalar tensor: mean over valid pairs in the batch; 0.0 when there are none.

    >>> ranknet_loss(torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]]),
    ...              torch.ones(1, 3, dtype=torch.bool))
    tensor(0.2201)
    """
    require_positive("sigma", sigma)
    scores, labels = prepare(scores, labels, mask)
    # Padding gets label -inf as the better document and +inf as the worse one, so one
    # comparison builds the pair mask: padding never forms a pair.
    better = labels.masked_fill(~mask, -math.inf).unsqueeze(-1)
    worse = labels.masked_fill(~mask, math.inf).unsqueeze(-2)
    if pair_weight is None:
        # 1.0 where y_i > y_j, else 0.0 (never inf - inf: only `better` holds -inf, only
        # `worse` +inf); one float tensor, no bool-to-float copy.
        weights = (better - worse).sign_().clamp_(min=0.0)
    else:
        with torch.no_grad():
            weights = pair_weight(scores.detach(), labels, mask).to(scores.dtype)
            weights.masked_fill_(better <= worse, 0.0)
    n_pairs = _count_pairs(better.squeeze(-1), worse.squeeze(-2)).clamp(min=1)
    total: Tensor = _WeightedPairLogistic.apply(scores, weights, sigma)  # type: ignore[no-untyped-call]
    return total / n_pairs


def _count_pairs(better: Tensor, worse: Tensor) -> Tensor:
    """Number of pairs with ``better_i > worse_j`` in the batch, in O(n log n) by binary search."""
    below = torch.searchsorted(worse.sort(dim=-1).values, better.contiguous())
    return below.sum().to(better.dtype)


class _WeightedPairLogistic(torch.autograd.Function):
    """``sum_ij w_ij softplus(sigma (s_j - s_i))`` with its gradient computed in the forward pass.

    Autograd would keep (and allocate anew in backward) several ``[q, n, n]`` tensors; here the
    per-document gradient ``[q, n]`` is all that is saved, and the forward pass allocates one
    ``[q, n, n]`` tensor besides the weights. Not twice differentiable.
    """

    @staticmethod
    def forward(ctx: Any, scores: Tensor, weights: Tensor, sigma: float) -> Tensor:
        margins = (scores.unsqueeze(-2) - scores.unsqueeze(-1)).mul_(sigma)  # sigma (s_j - s_i)
        per_pair = F.softplus(margins)  # log(1 + e^{-sigma (s_i - s_j)}) without overflow
        del margins
        total = per_pair.reshape(-1) @ weights.reshape(-1)
        # d softplus(x)/dx = sigmoid(x) = -expm1(-softplus(x)), computed in place and accurate
        # for tiny values; times the weights it is the pair's lambda.
        lambdas = per_pair.neg_().expm1_().neg_().mul_(weights)
        # s_i enters pair (i, j) with -sigma, s_j with +sigma.
        ctx.save_for_backward((lambdas.sum(dim=-2) - lambdas.sum(dim=-1)).mul_(sigma))
        return total

    @staticmethod
    def backward(ctx: Any, grad_total: Tensor) -> tuple[Tensor, None, None]:
        (grad_scores,) = ctx.saved_tensors
        return grad_total * grad_scores, None, None


def _delta_ndcg(scores: Tensor, labels: Tensor, mask: Tensor, *, k: int | None) -> Tensor:
    """|ΔNDCG@k| of swapping documents i and j in the ranking by ``scores``: ``[q, n, n]``."""
    gains = exp2_gain(labels)
    # A query with a valid pair has a positive label, so its ideal DCG is positive; the clamp
    # only keeps queries without pairs (weights unused) free of 0/0.
    gains = gains / ideal_dcg(gains, k).clamp(min=1e-12).unsqueeze(-1)
    discounts = rank_discounts(labels.shape[-1], k, scores)[score_ranks(scores, mask)]
    weights = (gains.unsqueeze(-1) - gains.unsqueeze(-2)).abs_()
    return weights.mul_((discounts.unsqueeze(-1) - discounts.unsqueeze(-2)).abs_())


def lambdarank_loss(
    scores: Tensor, labels: Tensor, mask: Tensor, *, sigma: float = 1.0, k: int | None = None
) -> Tensor:
    r"""LambdaRank (Burges et al., NIPS 2006): RankNet with pairs weighted by |ΔNDCG|.

    .. math:: \ell = \frac{1}{|P|} \sum_{(i, j) \in P} |\Delta \mathrm{NDCG@k}_{ij}|
              \log(1 + e^{-\sigma (s_i - s_j)}),
              \quad |\Delta \mathrm{NDCG@k}_{ij}| = \frac{|G_i - G_j|\,|D_i - D_j|}{\mathrm{IDCG@k}}

    with :math:`G = 2^y - 1` and :math:`D_i = 1 / \log_2(1 + r_i)` for the rank :math:`r_i` of
    document i under the current scores (0 beyond ``k``). The gradient is the LambdaRank lambda
    :math:`\sigma |\Delta \mathrm{NDCG}_{ij}| / (1 + e^{\sigma (s_i - s_j)})`, as used by
    LambdaMART (Burges, MSR-TR-2010-82).

    Args:
        scores: ``[queries, list_len]`` model outputs.
        labels: ``[queries, list_len]`` graded relevance, 0 = not relevant.
        mask: ``[queries, list_len]`` True for real documents, False for padding.
        sigma: slope of the logistic.
        k: NDCG truncation for the weights; None = whole list. Pairs ranked both below ``k``
            get weight 0 (and still count in the mean).

    Returns:
        Scalar tensor: mean over valid pairs in the batch; 0.0 when there are none.

    >>> lambdarank_loss(torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[2.0, 1.0, 0.0]]),
    ...                 torch.ones(1, 3, dtype=torch.bool))
    tensor(0.3690)
    """
    check_k(k)
    weight = functools.partial(_delta_ndcg, k=k)
    return ranknet_loss(scores, labels, mask, sigma=sigma, pair_weight=weight)


def _lambdaloss_weight(scores: Tensor, labels: Tensor, mask: Tensor, *, mu: float) -> Tensor:
    """NDCG-Loss2++ weight ``(rho_ij + mu * delta_ij) |G_i - G_j| / ln 2``: ``[q, n, n]``.

    ``delta_ij`` depends on the rank distance ``|r_i - r_j|`` only, so it is looked up in a
    table of ``n`` entries rather than computed with logarithms on ``[q, n, n]`` tensors.
    """
    n = labels.shape[-1]
    gains = exp2_gain(labels)
    gains = gains / ideal_dcg(gains).clamp(min=1e-12).unsqueeze(-1)
    ranks = score_ranks(scores, mask)
    scale = 1.0 / math.log(2.0)  # the paper's log2 of the sigmoid
    discounts = rank_discounts(n, None, scores)[ranks].mul_(scale)  # 1 / D(r_i), over ln 2
    # delta(d) = 1 / D(d) - 1 / D(d + 1) for d = |r_i - r_j| >= 1; d = 0 (the diagonal, never a
    # pair) takes d = 1's value.
    distance = torch.arange(n, dtype=scores.dtype, device=scores.device).clamp_(min=1.0)
    table = (distance + 1.0).log2_().reciprocal_()
    table.sub_(distance.add_(2.0).log2_().reciprocal_()).mul_(mu * scale)
    ranks = ranks.to(torch.int32)  # half the memory of the [q, n, n] distances
    distances = (ranks.unsqueeze(-1) - ranks.unsqueeze(-2)).abs_()
    weights = table.index_select(0, distances.view(-1)).view(distances.shape)  # mu delta_ij
    del distances
    weights.add_((discounts.unsqueeze(-1) - discounts.unsqueeze(-2)).abs_())  # + rho_ij
    return weights.mul_((gains.unsqueeze(-1) - gains.unsqueeze(-2)).abs_())  # |G_i - G_j|


def ndcgloss2pp_loss(
    scores: Tensor, labels: Tensor, mask: Tensor, *, sigma: float = 1.0, mu: float = 10.0
) -> Tensor:
    r"""NDCG-Loss2++ of the LambdaLoss framework (Wang et al., CIKM 2018, eq. 13).

    .. math:: \ell = \frac{1}{|P|} \sum_{(i, j) \in P} (\rho_{ij} + \mu \delta_{ij})
              |G_i - G_j| \log_2(1 + e^{-\sigma (s_i - s_j)})

    with :math:`G = (2^y - 1) / \mathrm{IDCG}`, :math:`D(r) = \log_2(1 + r)`,
    :math:`\rho_{ij} = |1/D(r_i) - 1/D(r_j)|` (the LambdaRank term) and
    :math:`\delta_{ij} = 1/D(|r_i - r_j|) - 1/D(|r_i - r_j| + 1)` (NDCG-Loss2), ranks
    :math:`r` from the current scores. Weights are constants of the EM-like bound, hence no
    gradient through them.

    Args:
        scores: ``[queries, list_len]`` model outputs.
        labels: ``[queries, list_len]`` graded relevance, 0 = not relevant.
        mask: ``[queries, list_len]`` True for real documents, False for padding.
        sigma: slope of the logistic.
        mu: weight of the NDCG-Loss2 term against the LambdaRank term.

    Returns:
        Scalar tensor: mean over valid pairs in the batch; 0.0 when there are none.

    >>> ndcgloss2pp_loss(torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[2.0, 1.0, 0.0]]),
    ...                  torch.ones(1, 3, dtype=torch.bool))
    tensor(3.5646)
    """
    if not mu >= 0:
        raise ConfigError(f"mu must be at least 0; got {mu!r}")
    weight = functools.partial(_lambdaloss_weight, mu=mu)
    return ranknet_loss(scores, labels, mask, sigma=sigma, pair_weight=weight)
