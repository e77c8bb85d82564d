"""Piecewise-linear encoding of numeric inputs, fitted on the training features.

Gorishniy et al. 2022 ("On Embeddings for Numerical Features in Tabular Deep Learning") encode
each feature as ``bins`` columns, one per quantile bin of its training distribution: column t
holds how far the value has passed through bin t (0 below the bin, 1 above it, linear inside).
An MLP on these columns can react to thresholds the way the trees of gradient boosting split
on them, which a single linear layer over the raw value cannot.

Conventions:

- Edges are the quantiles ``0, 1/bins, ..., 1`` of each feature over the training documents
  (real documents only: the trainer passes the flat, normalized training features), duplicates
  removed; a feature with few distinct values gets fewer bins and zero columns fill up to
  ``bins``. A feature constant in training encodes to zeros.
- Every column is clipped to ``[0, 1]``, the first and last bins included, so values beyond
  the training range saturate (as a tree's last split does) instead of extrapolating.
- The edges are buffers: they travel in the state dict, hence in checkpoints, ensembles and the
  ONNX graph (a subtract, a multiply and a clip).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ltr.errors import ConfigError, LtrError, ShapeError

__all__ = ["PiecewiseLinearEncoding", "fit_input_encodings"]


class PiecewiseLinearEncoding(nn.Module):
    """``[B, L, F] -> [B, L, F * bins]``: quantile-bin piecewise-linear encoding per feature.

    Args:
        n_features: features per document.
        bins: quantile bins per feature (at least 2).

    Call :meth:`fit` on the training features before training; an unfitted encoding maps
    everything to 0.

    >>> encoding = PiecewiseLinearEncoding(1, 2)
    >>> encoding.fit(np.array([[0.0], [1.0], [2.0]]))
    >>> encoding(torch.tensor([[[0.5], [1.5], [9.0]]])).tolist()
    [[[0.5, 0.0], [1.0, 0.5], [1.0, 1.0]]]
    """

    low: Tensor
    inv_width: Tensor

    def __init__(self, n_features: int, bins: int) -> None:
        super().__init__()
        if not isinstance(bins, int) or isinstance(bins, bool) or bins < 2:
            raise ConfigError(f"model.piecewise_bins: must be an integer >= 2; got {bins!r}")
        self.n_features, self.bins = int(n_features), bins
        # column (f, t) = clip((x_f - low[f, t]) * inv_width[f, t], 0, 1); inv_width 0 = unused
        self.register_buffer("low", torch.zeros(self.n_features, self.bins))
        self.register_buffer("inv_width", torch.zeros(self.n_features, self.bins))

    @property
    def n_outputs(self) -> int:
        return self.n_features * self.bins

    def extra_repr(self) -> str:
        """What ``print(model)`` shows beside the class name."""
        return f"n_features={self.n_features}, bins={self.bins}"

    def fit(self, features: np.ndarray) -> None:
        """Set the bin edges from training features ``[n_docs, n_features]`` (no padding)."""
        x = np.asarray(features)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ShapeError(
                f"piecewise-linear encoding of {self.n_features} features: expected "
                f"[n_docs, {self.n_features}] training features; got {x.shape}"
            )
        if x.shape[0] == 0:
            raise LtrError("piecewise-linear encoding needs at least one training document")
        levels = np.linspace(0.0, 1.0, self.bins + 1)
        low = np.zeros((self.n_features, self.bins))
        inv_width = np.zeros((self.n_features, self.bins))
        tiny = np.finfo(np.float32).tiny
        for f in range(self.n_features):  # one float64 column at a time: memory stays small
            quantiles = np.quantile(x[:, f].astype(np.float64), levels)
            # edges distinct in float32, the graph's precision, so every width is invertible
            edges = np.unique(quantiles.astype(np.float32)).astype(np.float64)
            edges = edges[np.concatenate([[True], np.diff(edges) >= tiny])]
            used = edges.size - 1  # 0 for a constant feature: all its columns stay 0
            low[f, :used] = edges[:-1]
            inv_width[f, :used] = 1.0 / np.diff(edges)
        with torch.no_grad():
            self.low.copy_(torch.from_numpy(low))
            self.inv_width.copy_(torch.from_numpy(inv_width))

    def forward(self, features: Tensor) -> Tensor:
        """``[..., F * bins]`` encoding of ``features [..., F]``, every column in [0, 1];
        feature f's columns are ``f * bins`` to ``f * bins + bins - 1``."""
        encoded = ((features.unsqueeze(-1) - self.low) * self.inv_width).clamp(0.0, 1.0)
        return encoded.flatten(-2)


def fit_input_encodings(model: nn.Module, features: np.ndarray) -> None:
    """Fit every :class:`PiecewiseLinearEncoding` inside ``model`` on the training features."""
    for module in model.modules():
        if isinstance(module, PiecewiseLinearEncoding):
            module.fit(features)
