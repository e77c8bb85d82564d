"""An ensemble scorer: the (weighted) mean of its members' scores.

Averaging the scores of models trained alike from different seeds cancels part of each model's
variance; it is the usual last step of neural learning-to-rank systems that match gradient
boosting (Qin et al. 2021, "Are Neural Rankers still Outperformed by Gradient Boosted Decision
Trees?"). ``ltr ensemble`` builds one from finished runs (:mod:`ltr.training.ensemble`); the
result is one scorer, so ``ltr predict``, ``ltr export`` and the model store treat it like any
other. Members see the same normalized features, so they must share the normalizer; the mean
of raw scores assumes comparable score scales, which members trained with the same loss have.
For members of different losses, ``ltr ensemble`` folds a per-member scale into the weights
(:mod:`ltr.training.ensemble`, score scaling), so this module stays a weighted mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ltr.errors import ConfigError


class EnsembleScorer(nn.Module):
    """Scores ``[B, L]``: the weighted mean of the member scorers' scores.

    Args:
        n_features: length of each document's feature vector (every member's input).
        members: one mapping per member, ``{"name": <scorer>, **its parameters}`` (the ``model``
            section of the member's config); at least one, no nested ensembles.
        weights: one non-negative weight per member (normalized to sum 1); None = equal.

    >>> ensemble = EnsembleScorer(4, [{"name": "linear"}, {"name": "mlp", "hidden_dims": [8]}])
    >>> ensemble(torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool)).shape
    torch.Size([2, 3])
    """

    def __init__(
        self,
        n_features: int,
        members: Sequence[Mapping[str, Any]],
        weights: Sequence[float] | None = None,
    ) -> None:
        from ltr.models import build_model  # the registry imports this module

        super().__init__()
        if isinstance(members, (str, bytes, Mapping)) or not members:
            raise ConfigError("model.members: give a non-empty list of member model configs")
        built = []
        for index, member in enumerate(members):
            if not isinstance(member, Mapping) or "name" not in member:
                raise ConfigError(f"model.members[{index}]: needs a mapping with a 'name'")
            params = dict(member)
            name = params.pop("name")
            if name == "ensemble":
                raise ConfigError(f"model.members[{index}]: ensembles do not nest")
            built.append(build_model(name, n_features, **params))
        self.members = nn.ModuleList(built)
        self.weights: Tensor
        self.register_buffer("weights", _normalized(weights, len(built)))

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        """``[B, L]`` weighted mean of the members' scores of ``features [B, L, F]``."""
        scores = torch.stack([member(features, mask) for member in self.members], dim=-1)
        return scores @ self.weights.to(scores.dtype)


def _normalized(weights: Sequence[float] | None, count: int) -> Tensor:
    if weights is None:
        return torch.full((count,), 1.0 / count)
    values = [float(w) for w in weights]
    if len(values) != count:
        raise ConfigError(f"model.weights: {len(values)} weights for {count} members")
    if any(not 0 <= w < math.inf for w in values) or sum(values) <= 0:  # NaN fails too
        raise ConfigError(
            f"model.weights: need finite, non-negative weights with a positive sum; got {values}"
        )
    total = sum(values)
    return torch.tensor([w / total for w in values])
