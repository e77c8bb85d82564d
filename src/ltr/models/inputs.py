"""What the first layer of a scorer sees, built one way for the MLP and the context-aware scorer.

The features, or their piecewise-linear encoding (``piecewise_bins``), followed, with
``list_ranks``, by each feature's percentile rank within its list. The encoding and the ranks
stay attributes of the scorer (``encoding``, ``ranks``), so checkpoints keep their keys and the
ONNX exporter can see what the first layer reads.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ltr.errors import ConfigError
from ltr.models.encoding import PiecewiseLinearEncoding
from ltr.models.list_ranks import ListPercentileRanks

__all__ = ["document_inputs", "input_modules", "zero_padding"]


def input_modules(
    n_features: int, piecewise_bins: int | None, list_ranks: bool
) -> tuple[PiecewiseLinearEncoding | None, ListPercentileRanks | None, int]:
    """The scorer's encoding and list ranks (None when off) and the input width they make.

    Raises:
        ConfigError: fewer than 2 bins, or a ``list_ranks`` that is not true or false.
    """
    if not isinstance(list_ranks, bool):
        raise ConfigError(f"model.list_ranks: must be true or false; got {list_ranks!r}")
    encoding = (
        None if piecewise_bins is None else PiecewiseLinearEncoding(n_features, piecewise_bins)
    )
    width = n_features if encoding is None else encoding.n_outputs
    if list_ranks:
        return encoding, ListPercentileRanks(), width + n_features
    return encoding, None, width


def document_inputs(
    features: Tensor,
    mask: Tensor,
    encoding: PiecewiseLinearEncoding | None,
    ranks: ListPercentileRanks | None,
) -> Tensor:
    """``[B, L, width]`` first-layer inputs from ``features [B, L, F]`` and ``mask [B, L]``."""
    inputs = features if encoding is None else encoding(features)
    if ranks is None:
        return inputs
    return torch.cat([inputs, ranks(features, mask)], dim=-1)


def zero_padding(features: Tensor, mask: Tensor) -> Tensor:
    """``features [B, L, F]`` with the padded rows (``mask [B, L]`` False) set to 0.

    Whatever a caller leaves in padded rows would otherwise leak as 0 x NaN = NaN (0 x inf
    too): through attention, which weighs a padded document by 0, and into the weight gradient
    of any first layer, which multiplies a padded row by its zero gradient. The context-aware
    scorer calls this always; scorers that score each document alone call it in training only,
    since in evaluation a padded row reaches nothing but its own score, which callers ignore,
    and their exported graphs stay free of it.
    """
    return features.masked_fill(~mask.unsqueeze(-1), 0.0)
