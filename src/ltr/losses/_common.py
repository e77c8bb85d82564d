"""Helpers shared by the losses: input checks, masking, NDCG gains, discounts and ideal DCG.

Conventions used by every NDCG-based loss: gain ``2**label - 1`` and discount
``1 / log2(rank + 1)`` with ranks starting at 1; ranks computed from scores break ties in input
order (stable sort), as the metrics do.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from ltr._messages import refuse_bad_labels
from ltr.errors import ConfigError, ShapeError


def check_inputs(scores: Tensor, labels: Tensor, mask: Tensor) -> None:
    """Raise :class:`ShapeError` unless all three are tensors of shape ``[queries, list_len]``
    on one device, with floating-point scores and a bool mask; reads attributes only.
    """
    if not all(isinstance(x, Tensor) for x in (scores, labels, mask)):
        kinds = ", ".join(type(x).__name__ for x in (scores, labels, mask))
        raise ShapeError(f"scores, labels and mask must be torch tensors; got {kinds}")
    if scores.dim() != 2 or scores.shape != labels.shape or scores.shape != mask.shape:
        hint = "; for a single query add a leading axis (x[None])" if scores.dim() == 1 else ""
        raise ShapeError(
            "scores, labels and mask must share shape [queries, list_len]; got "
            f"{tuple(scores.shape)}, {tuple(labels.shape)}, {tuple(mask.shape)}{hint}"
        )
    if mask.dtype != torch.bool:
        raise ShapeError(f"mask must be a bool tensor (True = real document); got {mask.dtype}")
    if not scores.is_floating_point():
        raise ShapeError(f"scores must be a floating-point tensor; got {scores.dtype}")
    if labels.is_complex():
        raise ShapeError(f"labels must hold real numbers; got {labels.dtype}")
    if not scores.device == labels.device == mask.device:
        raise ShapeError(
            "scores, labels and mask must be on one device; got "
            f"{scores.device}, {labels.device}, {mask.device}"
        )


def check_label_values(labels: Tensor, mask: Tensor) -> None:
    """Raise :class:`ShapeError` unless the labels of real documents are finite and >= 0
    (padding may hold anything), with the metrics' messages.

    For the losses a bad label would corrupt without a sign (a NaN label skipped its query, a
    negative one gave LambdaRank a loss of 1e11). MSE, ListNet and ListMLE skip it: a NaN label
    makes their loss NaN, any other real number is a target they can use, and this pass would
    cost them 2-6% of a step (``benchmarks/bench_losses.py``), against allRank margins of a few
    percent. One fused pass (``aminmax``, which NaN propagates to) and one host sync over the
    whole tensor: padding is usually 0 and then needs no masking; only when that pass fails are
    the real documents looked at (the error, or padding such as allRank's -1).
    """
    if labels.numel() == 0 or labels.dtype == torch.bool:
        return
    low, high = torch.aminmax(labels)
    if low.item() >= 0 and high.item() < math.inf:  # on a GPU only the first read waits
        return
    real = labels[mask]
    refuse_bad_labels(
        n_infinite=int((real.isnan() | (real == math.inf)).sum()),
        n_negative=int((real < 0).sum()),
    )


def prepare(scores: Tensor, labels: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`check_inputs` and :func:`check_label_values`, then :func:`zero_padding`.

    Raises:
        ShapeError: see both checks.
    """
    check_inputs(scores, labels, mask)
    check_label_values(labels, mask)
    return zero_padding(scores, labels, mask)


def zero_padding(scores: Tensor, labels: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``scores, labels`` (in the scores' dtype) with padding set to 0; inputs already checked.

    Zeroing keeps wild padded values (inf, NaN, -1 labels) out of every later expression and
    gives padded scores an exactly-zero gradient. ``torch.where`` rather than ``masked_fill``
    of ``~mask``: one kernel instead of three, forward and backward.
    """
    return torch.where(mask, scores, 0.0), torch.where(mask, labels.to(scores.dtype), 0.0)


def no_documents_loss(scores: Tensor) -> Tensor:
    """0.0 for a zero-width batch (``list_len == 0``), still a graph node so backward works.

    The listwise losses reduce over the list (``amax``), which has no value on an empty axis.
    """
    return scores.sum()


def require_finite(name: str, value: float) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a finite real number (not a bool): an
    infinite ``sigma`` or ``alpha`` would make the loss NaN at the first batch."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number; got {value!r}")


def require_positive(name: str, value: float) -> None:
    """Raise :class:`ConfigError` unless ``value`` is finite and ``> 0`` (``sigma``, ...)."""
    require_finite(name, value)
    if not value > 0:
        raise ConfigError(f"{name} must be greater than 0; got {value!r}")


def require_non_negative(name: str, value: float) -> None:
    """Raise :class:`ConfigError` unless ``value`` is finite and ``>= 0`` (``mu``)."""
    require_finite(name, value)
    if not value >= 0:
        raise ConfigError(f"{name} must be at least 0; got {value!r}")


def require_count(name: str, value: int) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a whole number ``>= 0`` (not a bool); a
    float such as ``50.0`` counts."""
    whole = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and int(value) == value
    )
    if not whole or value < 0:
        raise ConfigError(f"{name} must be an integer >= 0; got {value!r}")


def check_k(k: int | None) -> None:
    """Raise :class:`ConfigError` unless ``k`` is None or a positive integer."""
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ConfigError(f"k must be a positive integer or None; got {k!r}")


def varied_queries(labels: Tensor, mask: Tensor) -> Tensor:
    """``[queries]`` bool: the query has two real documents with different labels.

    Other queries (all-padding, a single document, all-equal labels) hold no ranking
    information; listwise losses give them the value 0 and leave them out of the mean, so they
    add neither loss nor gradient.
    """
    highest = labels.masked_fill(~mask, -math.inf).amax(dim=-1)
    lowest = labels.masked_fill(~mask, math.inf).amin(dim=-1)
    return highest > lowest


def mean_over(per_query: Tensor, keep: Tensor) -> Tensor:
    """Mean of ``per_query`` over queries where ``keep``; 0.0 (zero gradient) when none."""
    total = per_query.masked_fill(~keep, 0.0).sum()
    return total / keep.sum().clamp(min=1)


def exp2_gain(labels: Tensor) -> Tensor:
    """``[queries, list_len]`` gains ``2**label - 1``, each query's divided by ``2**top``, ``top``
    its largest label, so that none overflows (``2**label`` is inf in float32 from label 128,
    in float16 from 16); padding must already be 0 (see :func:`prepare`).

    The scale cancels wherever the losses use gains: always over the ideal DCG of the same
    gains. For integer labels the quotient is bit-identical (powers of two scale exactly).
    """
    if labels.shape[-1] == 0:
        return labels
    top = labels.amax(dim=-1, keepdim=True)
    return torch.exp2(labels - top) - torch.exp2(-top)


def rank_discounts(list_len: int, k: int | None, like: Tensor) -> Tensor:
    """``[list_len]`` discounts ``1 / log2(rank + 1)`` for ranks 1.., 0 beyond ``k``."""
    ranks = torch.arange(1, list_len + 1, dtype=like.dtype, device=like.device)
    discounts = 1.0 / torch.log2(ranks + 1.0)
    if k is not None:
        discounts[k:] = 0.0
    return discounts


def ideal_dcg(gains: Tensor, k: int | None = None) -> Tensor:
    """``[queries]`` DCG of the best ordering (cut at ``k``); padded gains must be 0."""
    best = gains.sort(dim=-1, descending=True).values
    return best @ rank_discounts(gains.shape[-1], k, gains)


def score_ranks(scores: Tensor, mask: Tensor) -> Tensor:
    """``[queries, list_len]`` 0-based rank of each document by descending score.

    Ties keep input order; padding sinks below every real document.
    """
    order = scores.masked_fill(~mask, -math.inf).argsort(dim=-1, descending=True, stable=True)
    positions = torch.arange(scores.shape[-1], device=scores.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, positions)
