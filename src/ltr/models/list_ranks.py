"""Where each feature value stands within its own list: percentile ranks as extra inputs.

A scorer that sees one document at a time cannot tell whether a BM25 of 0.4 is the best or the
worst of its list, and neither can the trees of gradient boosting. Appending, for every feature,
the document's percentile rank among the real documents of its list gives an MLP that context
for ``F`` more inputs, without attention. On MQ2008 vali it lifted NDCG@10 of lists with 10 or
more documents by 0.003 to 0.014 for ListMLE, RankNet and LambdaRank (BENCHMARKS.md, "Session
6"), and it lifts the context-aware scorer too ("Session 7"); both take it as ``list_ranks``
(:mod:`ltr.models.inputs`).

Conventions:

- rank = (#values below + (#equal values - 1) / 2) / (n - 1) over the list's n real documents:
  0 for the list's lowest value, 1 for its highest, ties share their average; a one-document
  list gets 0.5 everywhere.
- The input is ``(rank - 0.5) * sqrt(12)``: a list of distinct values gives a column of mean 0
  and variance about 1, the scale of standardized features. On MQ2008 vali, raw ranks in
  [0, 1] trained worse, and z-scoring the ranks per list did no better than this fixed scale.
- Padded rows (``mask`` False) neither count nor get a rank: their columns are 0.
- Ranks are invariant to increasing per-feature transforms, so they are the same on raw and on
  normalized features (per-query normalizations included). Features must be finite.
- Two stable sorts per list, O(L log L) rather than the O(L^2) of comparing every pair: a
  value's position in the ascending order plus its position counted from the end of the
  descending order is twice its average rank, because both sorts break ties by document index.
  Training MLP + LambdaRank on 1,000-document lists takes 7% longer with them (BENCHMARKS.md,
  "Training").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["ListPercentileRanks"]

_UNIT_SCALE = 12.0**0.5  # the standard deviation of a uniform variable on [0, 1] is 1 / sqrt(12)


class ListPercentileRanks(nn.Module):
    """``features [B, L, F], mask [B, L] -> [B, L, F]``: each value's percentile rank in its list,
    centered and scaled (module docstring).

    >>> ranks = ListPercentileRanks()
    >>> x = torch.tensor([[[0.1], [0.7], [0.7], [9.0]], [[2.0], [1.0], [3.0], [0.0]]])
    >>> mask = torch.tensor([[True, True, True, False], [True] * 4])
    >>> (ranks(x, mask).squeeze(-1) / 12**0.5 + 0.5 * mask).tolist()
    [[0.0, 0.75, 0.75, 0.0], [0.6666666865348816, 0.3333333432674408, 1.0, 0.0]]
    """

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        """``[B, L, F]`` scaled ranks of ``features [B, L, F]`` among the real documents of
        each list (``mask [B, L]`` True); padded rows get 0."""
        real = mask.unsqueeze(-1)  # [B, L, 1]
        last = torch.full_like(features, float("inf"))  # padding sorts after every real value
        ascending = _sorted_positions(torch.where(real, features, last))
        descending = _sorted_positions(torch.where(real, -features, last))
        count = mask.sum(dim=-1, keepdim=True).unsqueeze(-1).to(features.dtype)  # [B, 1, 1]
        twice = ascending + (count - 1.0 - descending)  # ties: (first + last position) of the run
        ranks = twice / (2.0 * (count - 1.0).clamp(min=1.0))
        ranks = ranks.masked_fill(count < 2.0, 0.5)
        return (ranks - 0.5) * _UNIT_SCALE * real.to(features.dtype)


def _sorted_positions(values: Tensor) -> Tensor:
    """Each entry's position along dim 1 in a stable ascending sort (float, same shape)."""
    order = torch.argsort(values, dim=1, stable=True)
    steps = torch.arange(values.shape[1], dtype=values.dtype, device=values.device)
    return torch.zeros_like(values).scatter(1, order, steps.view(1, -1, 1).expand_as(values))
