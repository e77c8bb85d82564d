"""A linear scorer: ``score = w . x + b`` per document, the classic LETOR baseline."""

from __future__ import annotations

from torch import Tensor, nn

from ltr.models.inputs import zero_padding


class LinearScorer(nn.Module):
    """One linear layer applied to every document independently.

    Args:
        n_features: length of each document's feature vector.

    >>> import torch
    >>> LinearScorer(4)(torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool)).shape
    torch.Size([2, 3])
    """

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, 1)

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        """Scores ``[B, L]`` from ``features [B, L, F]`` and ``mask [B, L]`` (True = real)."""
        if self.training:  # keep padded values out of the gradient (zero_padding)
            features = zero_padding(features, mask)
        scores: Tensor = self.linear(features)
        return scores.squeeze(-1)
