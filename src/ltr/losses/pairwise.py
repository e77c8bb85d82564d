"""Pairwise losses: a logistic loss on every pair of documents whose labels differ.

All three losses here are one computation, :func:`ranknet_loss`, with different pair weights:
RankNet weighs every pair 1, LambdaRank by the |ΔNDCG| of swapping the pair, NDCG-Loss2++ by the
LambdaLoss bound. Weights depend on the current ranking only through ``argsort`` (piecewise
constant in the scores), so they are computed without gradient, as in the papers.

Reduction (``reduction``), over the valid pairs ``(i, j)`` of real documents with ``y_i > y_j``:

- ``"queries"``: each query's weighted pair losses are summed and the sums averaged over the
  queries that have a valid pair. A query's weight grows with its pairs, as in LambdaMART
  (LightGBM sums the lambdas of each query) and allRank's default ``reduction="sum"`` (divided
  here by the number of queries, so the step size does not depend on the batch size).
- ``"pairs"``: the weighted pair losses are averaged over all valid pairs of the batch
  (allRank's ``reduction="mean"``). Then a batch of long lists, whose many pairs mostly carry
  tiny |ΔNDCG| weights, takes a much smaller step than a batch of short lists, which
  underweights long lists when batches group lists of similar length.

Either way LambdaRank with all weights 1 is RankNet. A batch without a valid pair (all-equal
labels, all padding) gives 0.0 with zero gradient.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Literal, Protocol, get_args

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
    require_non_negative,
    require_positive,
    score_ranks,
)

Reduction = Literal["queries", "pairs"]


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
    reduction: Reduction = "queries",
    pair_weight: PairWeight | None = None,
) -> Tensor:
    r"""RankNet (Burges et al., ICML 2005): logistic loss over pairs whose labels differ.

    .. math:: \ell_q = \sum_{(i, j) \in P_q} w_{ij} \log(1 + e^{-\sigma (s_i - s_j)}),
              \quad P_q = \{(i, j) : y_i > y_j\}

    averaged over the queries with a pair (``reduction="queries"``), or
    :math:`\sum_q \ell_q / \sum_q |P_q|` (``"pairs"``); :math:`w_{ij} = 1` unless
    ``pair_weight`` is given (that is how LambdaRank and NDCG-Loss2++ are built on this
    function).

    Args:
        scores: ``[queries, list_len]`` model outputs.
        labels: ``[queries, list_len]`` graded relevance, 0 = not relevant.
        mask: ``[queries, list_len]`` True for real documents, False for padding.
        sigma: slope of the logistic.
        reduction: ``"queries"`` (per-query sums, averaged over queries) or ``"pairs"`` (mean
            over the batch's pairs); see the module docstring.
        pair_weight: optional weights of the pairs, computed without gradient.

    Returns:
        Scalar tensor; 0.0 when the batch has no valid pair.

    Raises:
        ConfigError: ``sigma`` is not positive or ``reduction`` is unknown.

    >>> ranknet_loss(torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]]),
    ...              torch.ones(1, 3, dtype=torch.bool), reduction="pairs")
    tensor(0.2201)
    """
    require_positive("sigma", sigma)
    if reduction not in get_args(Reduction):
        raise ConfigError(f"reduction must be 'queries' or 'pairs'; got {reduction!r}")
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
    pairs = _pairs_per_query(better.squeeze(-1), worse.squeeze(-2))
    divisor = pairs.sum() if reduction == "pairs" else (pairs > 0).sum()
    total: Tensor = _WeightedPairLogistic.apply(scores, weights, sigma)  # type: ignore[no-untyped-call]
    return total / divisor.clamp(min=1).to(scores.dtype)


def _pairs_per_query(better: Tensor, worse: Tensor) -> Tensor:
    """``[queries]`` counts of pairs with ``better_i > worse_j``, O(n log n) by binary search."""
    return torch.searchsorted(worse.sort(dim=-1).values, better.contiguous()).sum(dim=-1)


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
    scores: Tensor,
    labels: Tensor,
    mask: Tensor,
    *,
    sigma: float = 1.0,
    k: int | None = None,
    reduction: Reduction = "queries",
) -> Tensor:
    r"""LambdaRank (Burges et al., NIPS 2006): RankNet with pairs weighted by |ΔNDCG|.

    .. math:: \ell_q = \sum_{(i, j) \in P_q} |\Delta \mathrm{NDCG@k}_{ij}|
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
            get weight 0 (and still count for ``reduction="pairs"``).
        reduction: as in :func:`ranknet_loss`; the per-query sums of ``"queries"`` are
            LambdaMART's.

    Returns:
        Scalar tensor: :math:`\ell_q` reduced as ``reduction`` says; 0.0 when there are no
        valid pairs.

    >>> lambdarank_loss(torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[2.0, 1.0, 0.0]]),
    ...                 torch.ones(1, 3, dtype=torch.bool), reduction="pairs")
    tensor(0.3690)
    """
    check_k(k)
    weight = functools.partial(_delta_ndcg, k=k)
    return ranknet_loss(scores, labels, mask, sigma=sigma, reduction=reduction, pair_weight=weight)


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
    scores: Tensor,
    labels: Tensor,
    mask: Tensor,
    *,
    sigma: float = 1.0,
    mu: float = 10.0,
    reduction: Reduction = "queries",
) -> Tensor:
    r"""NDCG-Loss2++ of the LambdaLoss framework (Wang et al., CIKM 2018, eq. 13).

    .. math:: \ell_q = \sum_{(i, j) \in P_q} (\rho_{ij} + \mu \delta_{ij})
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
        reduction: as in :func:`ranknet_loss` (the paper sums over each query's pairs).

    Returns:
        Scalar tensor: :math:`\ell_q` reduced as ``reduction`` says; 0.0 when there are no
        valid pairs.

    >>> ndcgloss2pp_loss(torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[2.0, 1.0, 0.0]]),
    ...                  torch.ones(1, 3, dtype=torch.bool), reduction="pairs")
    tensor(3.5646)
    """
    require_non_negative("mu", mu)
    weight = functools.partial(_lambdaloss_weight, mu=mu)
    return ranknet_loss(scores, labels, mask, sigma=sigma, reduction=reduction, pair_weight=weight)
