r"""Ranking metrics: per-query values over padded batches, for NumPy arrays and torch tensors.

Every metric has one signature, ``metric(scores, labels, mask, k=None, **conventions)``:
``scores``, ``labels`` and ``mask`` are ``[queries, list_len]`` (mask True = real document,
False = padding) and the result is one value per query, ``[queries]``, float64 (float32 on
Apple ``mps``), of the same array type as the input (a torch tensor stays on its device). Callers
average with ``nanmean``, because a skipped query is NaN. Padding never counts: padded documents
rank below every real one and carry neither gain nor relevance.

The math is written once against a tiny private backend (sort, gather, cumsum, ...) picked from
the input type, so NumPy and torch agree to ~1e-15 (only the summation order differs); torch is
imported only when a tensor arrives, and ``import ltr.metrics`` never imports it (serving relies
on that).

Conventions (keyword-only; the anchor each value reproduces):

- Ties in ``scores`` keep input order (a stable descending sort), as LightGBM
  (``std::stable_sort``) and the LETOR 4.0 script (Perl's mergesort) do; one helper ranks for
  every metric.
- A score of ``-inf`` means *not retrieved* (trec_eval's rule for a judged document missing
  from a run): the document holds no rank, so it adds nothing to DCG, precision or reciprocal
  rank, but it still counts in the ideal DCG and the number of relevant documents.
- ``gain`` (NDCG, DCG): ``"exp2"`` = :math:`2^{rel} - 1` (default: LETOR script, LightGBM, ranx
  ``ndcg_burges``, allRank, TF-Ranking) or ``"linear"`` = :math:`rel` (trec_eval ``ndcg_cut``,
  ranx ``ndcg``, scikit-learn ``ndcg_score``).
- ``discount`` (NDCG, DCG): ``"standard"`` = :math:`1/\log_2(p+1)` at 1-based position
  :math:`p` (default: trec_eval, ranx, LightGBM, scikit-learn) or ``"letor"`` = 1 at positions 1
  and 2, :math:`1/\log_2 p` from position 3 (LETOR 4.0 ``Eval-Score-4.0.pl``). The ideal DCG
  uses the same discount, over all of the query's documents sorted by label, cut at ``k``.
- ``short_list`` (NDCG, DCG; a query with fewer than ``k`` documents): ``"truncate"`` = the
  value over its whole list (default: trec_eval, ranx, LightGBM, scikit-learn) or ``"zero"`` =
  0 (LETOR 4.0 script: NDCG@k for k > n is undefined and counts as 0).
- ``no_relevant`` (a query without a relevant document, including an all-padding row), applied
  alike by every metric so means over several metrics cover the same queries: ``"zero"``
  (default: trec_eval, ranx, scikit-learn, the LETOR script), ``"one"`` (LightGBM ``ndcg`` and
  ``map``, XGBoost, allRank) or ``"skip"`` (NaN, for papers that drop such queries). It takes
  precedence over ``short_list``. "Relevant" means a positive gain (label > 0) for NDCG, DCG
  and ERR, and ``label >= relevance_threshold`` for MAP, MRR, P and R.
- ``relevance_threshold`` (MAP, MRR, P, R): labels at or above it are relevant (default 1, as
  trec_eval's ``-l 1``, ranx and the LETOR script; LightGBM's "label > 0" is the same on its
  integer labels).
- ``ap_denominator`` (MAP with a cutoff ``k``): ``"relevant"`` = the query's number of relevant
  documents (default: trec_eval ``map_cut_k``, ranx ``map@k``) or ``"min_relevant_k"`` =
  ``min(#relevant, k)`` (LightGBM ``map@k``). Without ``k`` both give trec_eval's ``map``.
- ``max_label`` (ERR): the grade whose stop probability is :math:`1 - 2^{-max\_label}`
  (default 4, ``MAX_JUDGMENT`` of TREC's ``gdeval.pl``); it must be positive and labels must
  not exceed it.
- Precision@k divides by ``k`` even when a list is shorter (missing positions count as
  non-relevant), as trec_eval ``P_k``, ranx and the LETOR script do.

Real documents need finite labels >= 0 and scores that are not NaN (only ``-inf`` has a
meaning); otherwise every metric raises :class:`~ltr.errors.ShapeError`. Padding may hold
anything. NDCG and DCG raise it too when a gain overflows (``2^label`` from label 1024 in
float64): a NaN there would read as a skipped query.

:data:`PRESETS` bundles these for ``"letor"``, ``"lightgbm"`` and ``"trec_eval"``;
:func:`compute_metrics` reads report names such as ``"ndcg@10"`` or ``"map"``.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, cast

import numpy as np

from ltr._messages import refuse_bad_labels
from ltr.errors import ConfigError, ShapeError

if TYPE_CHECKING:
    import torch

__all__ = [
    "METRICS",
    "PRESETS",
    "CutoffWarning",
    "MetricFn",
    "average_precision",
    "compute_metrics",
    "conventions_in_force",
    "dcg",
    "err",
    "gain_overflows",
    "metric_order",
    "ndcg",
    "parse_metric_name",
    "per_query_metrics",
    "precision",
    "reads_gain",
    "recall",
    "reciprocal_rank",
]

ArrayT = TypeVar("ArrayT", "np.ndarray[Any, Any]", "torch.Tensor")
Gain = Literal["exp2", "linear"]
Discount = Literal["standard", "letor"]
ShortList = Literal["truncate", "zero"]
NoRelevant = Literal["zero", "one", "skip"]
ApDenominator = Literal["relevant", "min_relevant_k"]

_CHOICES: dict[str, tuple[str, ...]] = {
    "gain": ("exp2", "linear"),
    "discount": ("standard", "letor"),
    "short_list": ("truncate", "zero"),
    "no_relevant": ("zero", "one", "skip"),
    "ap_denominator": ("relevant", "min_relevant_k"),
}
_NUMBERS = ("relevance_threshold", "max_label")
_NO_RELEVANT_VALUE = {"zero": 0.0, "one": 1.0, "skip": math.nan}


class CutoffWarning(UserWarning):
    """A cutoff ``k`` is larger than every list in the batch: legal, but probably a mistake."""

    @classmethod
    def beyond(cls, k: int, longest: int, where: str = "the batch") -> CutoffWarning:
        """The warning for ``k`` above the ``longest`` list of ``where`` (a batch, a file)."""
        return cls(
            f"k={k} is larger than every list in {where} (the longest has {longest} documents); "
            "check the cutoff"
        )


# ---------------------------------------------------------------------------------------------
# Backend: the few array operations the metrics need, for NumPy and for torch.


class _NumpyOps:
    def prepare(self, x: Any, dtype: str) -> Any:
        return np.asarray(x, dtype=np.float64 if dtype == "float" else bool)

    def const(self, values: np.ndarray, like: Any) -> Any:
        return values

    def rank_order(self, scores: Any, mask: Any, cut: int) -> Any:
        # Ascending sort of -score is a descending sort; NaN padding sorts last.
        keys = np.where(mask, -scores, np.nan)
        # The default (introsort) argsort is ~3x faster than the stable one and gives the same
        # order wherever a row has no tied scores; rows with ties are sorted again, stably.
        order = np.argsort(keys, axis=-1)
        in_order = np.take_along_axis(keys, order, axis=-1)
        tied = (in_order[:, 1:] == in_order[:, :-1]).any(axis=-1)  # NaN padding never equals
        if tied.any():
            order[tied] = np.argsort(keys[tied], axis=-1, kind="stable")
        return order[:, :cut]

    def top_sorted(self, values: Any, cut: int) -> Any:
        n = values.shape[-1]
        if 0 < cut < n:  # only the top `cut` need an order: partition first, sort the rest
            values = np.partition(values, n - cut, axis=-1)[:, n - cut :]
        return np.sort(values, axis=-1)[:, ::-1]

    def as_float(self, x: Any, like: Any) -> Any:
        return x.astype(like.dtype)

    def take(self, x: Any, idx: Any) -> Any:
        return np.take_along_axis(x, idx, axis=-1)

    def cumsum(self, x: Any) -> Any:
        return np.cumsum(x, axis=-1)

    def sum(self, x: Any) -> Any:
        return np.sum(x, axis=-1)

    def any(self, x: Any) -> Any:
        return np.any(x, axis=-1)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        return np.where(cond, a, b)

    def exp2(self, x: Any) -> Any:
        return np.exp2(x)

    def maximum(self, a: Any, b: Any) -> Any:
        return np.maximum(a, b)

    def minimum(self, a: Any, b: Any) -> Any:
        return np.minimum(a, b)

    def exclusive_cumprod(self, x: Any) -> Any:
        out = np.ones_like(x)
        np.cumprod(x[:, :-1], axis=-1, out=out[:, 1:])
        return out

    def longest(self, mask: Any) -> int:
        return int(mask.sum(axis=-1).max(initial=0))

    def isnan(self, x: Any) -> Any:
        return np.isnan(x)

    def all_finite(self, x: Any) -> bool:
        return bool(np.isfinite(x).all())


class _TorchOps:
    def __init__(self) -> None:
        import torch  # lazily: only tensors bring torch in

        self.torch = torch

    def prepare(self, x: Any, dtype: str) -> Any:
        if dtype == "bool":
            return x
        # float64 for exact agreement with NumPy; mps has no float64
        return x.detach().to(self.torch.float32 if x.device.type == "mps" else self.torch.float64)

    def const(self, values: np.ndarray, like: Any) -> Any:
        return self.torch.as_tensor(values, dtype=like.dtype, device=like.device)

    def rank_order(self, scores: Any, mask: Any, cut: int) -> Any:
        keys = self.torch.where(mask, -scores, self.torch.nan)  # torch sorts NaN last, too
        return self.torch.argsort(keys, dim=-1, stable=True)[:, :cut]

    def top_sorted(self, values: Any, cut: int) -> Any:
        if 0 < cut < values.shape[-1]:
            return self.torch.topk(values, cut, dim=-1, sorted=True).values
        return self.torch.sort(values, dim=-1, descending=True).values

    def as_float(self, x: Any, like: Any) -> Any:
        return x.to(like.dtype)

    def take(self, x: Any, idx: Any) -> Any:
        return x.gather(-1, idx)

    def cumsum(self, x: Any) -> Any:
        return x.cumsum(-1)

    def sum(self, x: Any) -> Any:
        return x.sum(-1)

    def any(self, x: Any) -> Any:
        return x.any(-1)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        return self.torch.where(cond, a, b)

    def exp2(self, x: Any) -> Any:
        return self.torch.exp2(x)

    def maximum(self, a: Any, b: Any) -> Any:
        return (
            self.torch.clamp(a, min=b) if isinstance(b, float | int) else self.torch.maximum(a, b)
        )

    def minimum(self, a: Any, b: Any) -> Any:
        return (
            self.torch.clamp(a, max=b) if isinstance(b, float | int) else self.torch.minimum(a, b)
        )

    def exclusive_cumprod(self, x: Any) -> Any:
        ones = self.torch.ones_like(x[:, :1])
        return self.torch.cat([ones, x[:, :-1].cumprod(-1)], dim=-1)

    def longest(self, mask: Any) -> int:
        return int(mask.sum(-1).max()) if mask.numel() else 0

    def isnan(self, x: Any) -> Any:
        return self.torch.isnan(x)

    def all_finite(self, x: Any) -> bool:
        return bool(self.torch.isfinite(x).all())


_Ops = _NumpyOps | _TorchOps


@functools.cache
def _torch_ops() -> _TorchOps:
    return _TorchOps()


_NUMPY_OPS = _NumpyOps()


def _is_tensor(x: object) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _dtype_name(x: Any) -> str:
    return str(x.dtype).removeprefix("torch.")


# ---------------------------------------------------------------------------------------------
# Shared steps: validate, rank once, apply the no-relevant policy.


class _Ranked:
    """A validated batch ranked by score: float ``labels`` and ``order`` of the top ``cut``."""

    def __init__(self, scores: Any, labels: Any, mask: Any, k: int | None, stacklevel: int) -> None:
        self.ops = _backend(scores, labels, mask)
        _check_cutoff(k)
        ops = self.ops
        self.mask = ops.prepare(mask, "bool")
        # padded labels become 0 before any arithmetic (2^label of junk may overflow)
        self.labels = ops.where(self.mask, ops.prepare(labels, "float"), 0.0)
        scores = ops.prepare(scores, "float")
        _check_values(ops, scores, self.labels, self.mask)
        list_len = self.mask.shape[-1]
        self.k = k
        self.cut = list_len if k is None else min(k, list_len)
        if k is not None and self.mask.shape[0] and k > (longest := ops.longest(self.mask)):
            warnings.warn(CutoffWarning.beyond(k, longest), stacklevel=stacklevel + 1)
        self.order = ops.rank_order(scores, self.mask, self.cut)
        # -inf = not retrieved (a judged document missing from a TREC run): it sorts last and
        # holds no rank, but still counts in the ideal DCG and the number of relevant documents.
        self.retrieved = self.mask & (scores > -math.inf)
        self.positions = ops.const(np.arange(1.0, self.cut + 1.0), like=self.labels)

    def ranked(self, values: Any) -> Any:
        """``values`` ``[queries, list_len]`` in ranked order, top ``cut`` positions."""
        return self.ops.take(self.ops.where(self.retrieved, values, 0.0), self.order)

    def relevant(self, relevance_threshold: float) -> Any:
        """Float 0/1 ``[queries, list_len]``: real documents with a label at the threshold."""
        _check_number("relevance_threshold", relevance_threshold)
        return self.ops.as_float((self.labels >= relevance_threshold) & self.mask, self.labels)

    def finish(self, value: Any, has_relevant: Any, no_relevant: str) -> Any:
        _check_choice("no_relevant", no_relevant)
        return self.ops.where(has_relevant, value, _NO_RELEVANT_VALUE[no_relevant])


def _backend(scores: Any, labels: Any, mask: Any) -> _Ops:
    tensors = [_is_tensor(x) for x in (scores, labels, mask)]
    if any(tensors) and not all(tensors):
        kinds = ", ".join(type(x).__name__ for x in (scores, labels, mask))
        raise ShapeError(
            f"scores, labels and mask must be all NumPy arrays or all torch tensors; got {kinds}"
        )
    ops: _Ops = _torch_ops() if all(tensors) else _NUMPY_OPS
    if not all(tensors):
        scores, labels, mask = (np.asarray(x) for x in (scores, labels, mask))
    shapes = [tuple(x.shape) for x in (scores, labels, mask)]
    if len(shapes[0]) != 2 or len(set(shapes)) != 1:
        got = ", ".join(str(s) for s in shapes)
        hint = "; for a single query add a leading axis (x[None])" if len(shapes[0]) == 1 else ""
        raise ShapeError(
            f"scores, labels and mask must share shape [queries, list_len]; got {got}{hint}"
        )
    if _dtype_name(mask) != "bool":
        raise ShapeError(f"mask must be bool (True = real document); got {_dtype_name(mask)}")
    for name, x in (("scores", scores), ("labels", labels)):
        if not re.fullmatch(r"(u?int|float|bfloat)\d*|bool", _dtype_name(x)):
            raise ShapeError(f"{name} must hold real numbers; got {_dtype_name(x)}")
    if all(tensors) and len({str(x.device) for x in (scores, labels, mask)}) != 1:
        got = ", ".join(str(x.device) for x in (scores, labels, mask))
        raise ShapeError(f"scores, labels and mask must be on one device; got {got}")
    return ops


def _check_values(ops: _Ops, scores: Any, labels: Any, mask: Any) -> None:
    """Real documents need a score that is not NaN and a finite label >= 0; padding may hold
    anything (``labels`` has 0 there already)."""
    if not all(mask.shape):
        return
    # Fast path, three reductions without temporaries: the sum is NaN only if some score is NaN
    # (or +inf meets -inf, which the exact check below clears); a NaN label makes min NaN.
    with np.errstate(all="ignore"):  # padding may overflow the sum; only NaN matters here
        total = float(scores.sum())
    if not math.isnan(total) and float(labels.min()) >= 0 and float(labels.max()) < math.inf:
        return
    if n_nan := int((mask & ops.isnan(scores)).sum()):
        raise ShapeError(
            "scores of real documents must not be NaN (-inf means not retrieved); "
            f"scores hold NaN at {n_nan} real documents"
        )
    refuse_bad_labels(
        n_infinite=int((ops.isnan(labels) | (labels == math.inf)).sum()),
        n_negative=int((labels < 0).sum()),
    )


def _check_cutoff(k: int | None) -> None:
    if k is None:
        return
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"k must be a positive integer or None; got {k!r}")


def _check_choice(name: str, value: str) -> None:
    if value not in _CHOICES[name]:
        valid = ", ".join(repr(c) for c in _CHOICES[name])
        raise ConfigError(f"{name} must be one of {valid}; got {value!r}")


def _check_number(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ConfigError(f"{name} must be a number; got {value!r}")


@functools.cache
def _discounts(cut: int, discount: str) -> np.ndarray:
    positions = np.arange(1.0, cut + 1.0)
    if discount == "letor":  # Eval-Score-4.0.pl: positions 1 and 2 undiscounted
        return np.where(positions <= 2, 1.0, 1.0 / np.log2(np.maximum(positions, 2.0)))
    return 1.0 / np.log2(positions + 1.0)


# ---------------------------------------------------------------------------------------------
# Metrics.


def _dcg_parts(r: _Ranked, gain: str, discount: str, short_list: str) -> tuple[Any, Any, Any]:
    """DCG@k, ideal DCG@k and the short-list filter ``[queries]`` shared by dcg and ndcg."""
    _check_choice("gain", gain)
    _check_choice("discount", discount)
    _check_choice("short_list", short_list)
    ops = r.ops
    with np.errstate(over="ignore"):  # an overflow is reported below, as an error
        gains = r.labels if gain == "linear" else ops.exp2(r.labels) - 1.0
        disc = ops.const(_discounts(r.cut, discount), like=gains)
        ideal = ops.sum(ops.top_sorted(gains, r.cut) * disc)
    # One check per call: every DCG is at most its query's ideal DCG. Unchecked, an overflow
    # made NDCG inf / inf = NaN, which means "skipped" to every mean.
    if not ops.all_finite(ideal):
        raise _gain_overflow(r.labels, gain)
    value = ops.sum(r.ranked(gains) * disc)
    keep = None
    if short_list == "zero" and r.k is not None:  # LETOR: NDCG@k of a list shorter than k is 0
        keep = ops.sum(r.mask) >= r.k
    return value, ideal, keep


def gain_overflows(largest_label: float, gain: str, dtype: str = "float64") -> bool:
    """Whether the gain of ``largest_label`` is past ``dtype``'s range, so that NDCG and DCG
    refuse the labels; only the exp2 gain can be (``2^1024 - 1`` in float64).

    >>> gain_overflows(1023, "exp2"), gain_overflows(1024, "exp2"), gain_overflows(1024, "linear")
    (False, True, False)
    """
    _check_choice("gain", gain)
    if gain == "linear":  # labels are finite (checked first): so is their sum in the ideal DCG
        return False
    with np.errstate(over="ignore"):
        return not bool(np.isfinite(np.exp2(np.asarray(largest_label, dtype=dtype)) - 1.0))


def _gain_overflow(labels: Any, gain: str) -> ShapeError:
    largest, dtype = float(labels.max()), _dtype_name(labels)
    try:
        one_label = gain_overflows(largest, gain, dtype)
    except TypeError:  # a dtype numpy lacks (bfloat16): 2^label is the likelier overflow
        one_label = gain == "exp2"
    if one_label:
        return ShapeError(
            f"the exp2 gain 2^label - 1 overflows {dtype} at the largest label, {largest:g}; "
            "use gain='linear' for labels this large"
        )
    return ShapeError(f"the ideal DCG overflows {dtype}; the largest label is {largest:g}")


def dcg(
    scores: ArrayT,
    labels: ArrayT,
    mask: ArrayT,
    k: int | None = None,
    *,
    gain: Gain = "exp2",
    discount: Discount = "standard",
    short_list: ShortList = "truncate",
    no_relevant: NoRelevant = "zero",
) -> ArrayT:
    r"""Discounted cumulative gain (Järvelin & Kekäläinen, ACM TOIS 2002), unnormalized.

    .. math:: \mathrm{DCG@k} = \sum_{p=1}^{\min(k, n)} g(rel_p)\, d(p)

    with gain :math:`g` and discount :math:`d` chosen by ``gain`` and ``discount`` (module
    docstring). A query without a positive label gets the ``no_relevant`` value.

    Args:
        scores: ``[queries, list_len]`` model outputs, higher ranks first.
        labels: ``[queries, list_len]`` graded relevance, 0 = not relevant.
        mask: ``[queries, list_len]`` bool, True for real documents.
        k: cutoff; None ranks the whole list.

    Returns:
        ``[queries]`` float values, same array type (and device) as ``scores``.

    >>> dcg(np.array([[3.0, 2.0, 1.0]]), np.array([[0.0, 1.0, 2.0]]), np.ones((1, 3), bool))
    array([2.13092975])
    """
    r = _Ranked(scores, labels, mask, k, stacklevel=2)
    value, ideal, keep = _dcg_parts(r, gain, discount, short_list)
    if keep is not None:
        value = r.ops.where(keep, value, 0.0)
    result: ArrayT = r.finish(value, ideal > 0, no_relevant)
    return result


def ndcg(
    scores: ArrayT,
    labels: ArrayT,
    mask: ArrayT,
    k: int | None = None,
    *,
    gain: Gain = "exp2",
    discount: Discount = "standard",
    short_list: ShortList = "truncate",
    no_relevant: NoRelevant = "zero",
) -> ArrayT:
    r"""Normalized DCG (Järvelin & Kekäläinen, ACM TOIS 2002): DCG@k over the ideal DCG@k.

    .. math:: \mathrm{NDCG@k} = \mathrm{DCG@k} / \mathrm{IDCG@k}

    where IDCG@k is the DCG@k of the query's documents sorted by label. A query whose IDCG is 0
    (no positive label) gets the ``no_relevant`` value; conventions in the module docstring.

    Args:
        scores: ``[queries, list_len]`` model outputs, higher ranks first.
        labels: ``[queries, list_len]`` graded relevance, 0 = not relevant.
        mask: ``[queries, list_len]`` bool, True for real documents.
        k: cutoff; None ranks the whole list.

    Returns:
        ``[queries]`` values in [0, 1], same array type (and device) as ``scores``.

    >>> scores, labels = np.array([[3.0, 2.0, 1.0]]), np.array([[0.0, 1.0, 2.0]])
    >>> ndcg(scores, labels, np.ones((1, 3), bool), gain="linear").round(4)
    array([0.6199])
    """
    r = _Ranked(scores, labels, mask, k, stacklevel=2)
    value, ideal, keep = _dcg_parts(r, gain, discount, short_list)
    has_relevant = ideal > 0
    value = value / r.ops.where(has_relevant, ideal, 1.0)
    if keep is not None:
        value = r.ops.where(keep, value, 0.0)
    result: ArrayT = r.finish(value, has_relevant, no_relevant)
    return result


def average_precision(
    scores: ArrayT,
    labels: ArrayT,
    mask: ArrayT,
    k: int | None = None,
    *,
    relevance_threshold: float = 1,
    ap_denominator: ApDenominator = "relevant",
    no_relevant: NoRelevant = "zero",
) -> ArrayT:
    r"""Average precision (Buckley & Voorhees, SIGIR 2000; trec_eval ``map``), report name ``map``.

    .. math:: \mathrm{AP@k} = \frac{1}{D} \sum_{p=1}^{\min(k, n)} \mathrm{P@p}\; rel_p

    with :math:`D` = the query's number of relevant documents, or :math:`\min(D, k)` when
    ``ap_denominator="min_relevant_k"`` (LightGBM ``map@k``).

    Args:
        scores: ``[queries, list_len]`` model outputs, higher ranks first.
        labels: ``[queries, list_len]`` graded relevance; ``>= relevance_threshold`` is relevant.
        mask: ``[queries, list_len]`` bool, True for real documents.
        k: cutoff; None ranks the whole list.

    Returns:
        ``[queries]`` values in [0, 1], same array type (and device) as ``scores``.

    >>> average_precision(np.array([[3.0, 2.0, 1.0]]), np.array([[0, 1, 1]]), np.ones((1, 3), bool))
    array([0.58333333])
    """
    _check_choice("ap_denominator", ap_denominator)
    r = _Ranked(scores, labels, mask, k, stacklevel=2)
    ops, rel = r.ops, r.relevant(relevance_threshold)
    n_relevant = ops.sum(rel)
    ranked = r.ranked(rel)
    total = ops.sum(ops.cumsum(ranked) / r.positions * ranked)
    if k is not None and ap_denominator == "min_relevant_k":
        n_relevant = ops.minimum(n_relevant, float(k))
    result: ArrayT = r.finish(total / ops.maximum(n_relevant, 1.0), n_relevant > 0, no_relevant)
    return result


def reciprocal_rank(
    scores: ArrayT,
    labels: ArrayT,
    mask: ArrayT,
    k: int | None = None,
    *,
    relevance_threshold: float = 1,
    no_relevant: NoRelevant = "zero",
) -> ArrayT:
    r"""Reciprocal rank of the first relevant document (Voorhees, TREC-8 QA 1999), name ``mrr``.

    .. math:: \mathrm{RR@k} = 1 / p^*, \quad p^* = \min\{p \le k : rel_p\}; \ 0 \text{ if none}

    Args:
        scores: ``[queries, list_len]`` model outputs, higher ranks first.
        labels: ``[queries, list_len]`` graded relevance; ``>= relevance_threshold`` is relevant.
        mask: ``[queries, list_len]`` bool, True for real documents.
        k: cutoff; None ranks the whole list.

    Returns:
        ``[queries]`` values in [0, 1], same array type (and device) as ``scores``.

    >>> reciprocal_rank(np.array([[3.0, 2.0, 1.0]]), np.array([[0, 2, 1]]), np.ones((1, 3), bool))
    array([0.5])
    """
    r = _Ranked(scores, labels, mask, k, stacklevel=2)
    ops, rel = r.ops, r.relevant(relevance_threshold)
    ranked = r.ranked(rel)
    first = ranked * (ops.cumsum(ranked) == 1)  # 1 at the first relevant position only
    result: ArrayT = r.finish(ops.sum(first / r.positions), ops.any(rel > 0), no_relevant)
    return result


def precision(
    scores: ArrayT,
    labels: ArrayT,
    mask: ArrayT,
    k: int | None = None,
    *,
    relevance_threshold: float = 1,
    no_relevant: NoRelevant = "zero",
) -> ArrayT:
    r"""Precision at k (trec_eval ``P_k``), report name ``p``: relevant share of the top k.

    .. math:: \mathrm{P@k} = \frac{1}{k} \sum_{p=1}^{\min(k, n)} rel_p

    Positions past the end of a short list count as non-relevant; without ``k`` the divisor
    is the number of retrieved documents ``n``.

    Args:
        scores: ``[queries, list_len]`` model outputs, higher ranks first.
        labels: ``[queries, list_len]`` graded relevance; ``>= relevance_threshold`` is relevant.
        mask: ``[queries, list_len]`` bool, True for real documents.
        k: cutoff; None ranks the whole list.

    Returns:
        ``[queries]`` values in [0, 1], same array type (and device) as ``scores``.

    >>> precision(np.array([[3.0, 2.0, 1.0]]), np.array([[0, 2, 1]]), np.ones((1, 3), bool), k=2)
    array([0.5])
    """
    r = _Ranked(scores, labels, mask, k, stacklevel=2)
    ops, rel = r.ops, r.relevant(relevance_threshold)
    divisor = ops.maximum(ops.sum(ops.as_float(r.retrieved, rel)), 1.0) if k is None else float(k)
    result: ArrayT = r.finish(ops.sum(r.ranked(rel)) / divisor, ops.any(rel > 0), no_relevant)
    return result


def recall(
    scores: ArrayT,
    labels: ArrayT,
    mask: ArrayT,
    k: int | None = None,
    *,
    relevance_threshold: float = 1,
    no_relevant: NoRelevant = "zero",
) -> ArrayT:
    r"""Recall at k (trec_eval ``recall_k``): share of the query's relevant documents in the top k.

    .. math:: \mathrm{R@k} = \frac{1}{D} \sum_{p=1}^{\min(k, n)} rel_p,
              \quad D = \#\text{relevant documents of the query}

    Args:
        scores: ``[queries, list_len]`` model outputs, higher ranks first.
        labels: ``[queries, list_len]`` graded relevance; ``>= relevance_threshold`` is relevant.
        mask: ``[queries, list_len]`` bool, True for real documents.
        k: cutoff; None ranks the whole list.

    Returns:
        ``[queries]`` values in [0, 1], same array type (and device) as ``scores``.

    >>> recall(np.array([[3.0, 2.0, 1.0]]), np.array([[0, 2, 1]]), np.ones((1, 3), bool), k=2)
    array([0.5])
    """
    r = _Ranked(scores, labels, mask, k, stacklevel=2)
    ops, rel = r.ops, r.relevant(relevance_threshold)
    n_relevant = ops.sum(rel)
    hits = ops.sum(r.ranked(rel))
    result: ArrayT = r.finish(hits / ops.maximum(n_relevant, 1.0), n_relevant > 0, no_relevant)
    return result


def err(
    scores: ArrayT,
    labels: ArrayT,
    mask: ArrayT,
    k: int | None = None,
    *,
    max_label: float = 4,
    no_relevant: NoRelevant = "zero",
) -> ArrayT:
    r"""Expected reciprocal rank (Chapelle, Metzler, Zhang & Grinspan, CIKM 2009).

    .. math:: \mathrm{ERR@k} = \sum_{p=1}^{\min(k, n)} \frac{R_p}{p} \prod_{i<p} (1 - R_i),
              \quad R = \frac{2^{rel} - 1}{2^{max\_label}}

    ``max_label`` = 4 is ``MAX_JUDGMENT`` of TREC's ``gdeval.pl``. A query without a positive
    label gets the ``no_relevant`` value.

    Args:
        scores: ``[queries, list_len]`` model outputs, higher ranks first.
        labels: ``[queries, list_len]`` graded relevance in ``[0, max_label]``.
        mask: ``[queries, list_len]`` bool, True for real documents.
        k: cutoff; None ranks the whole list.

    Returns:
        ``[queries]`` values in [0, 1], same array type (and device) as ``scores``.

    Raises:
        ConfigError: ``max_label`` is not a finite number > 0.
        ShapeError: a real document's label exceeds ``max_label``.

    >>> scores, labels = np.array([[3.0, 2.0, 1.0]]), np.array([[0.0, 1.0, 2.0]])
    >>> err(scores, labels, np.ones((1, 3), bool), max_label=2).round(4)
    array([0.3125])
    """
    _check_number("max_label", max_label)
    if not 0 < max_label < math.inf:  # NaN fails both comparisons; inf makes every stop 0
        raise ConfigError(f"max_label must be a finite number > 0; got {max_label!r}")
    r = _Ranked(scores, labels, mask, k, stacklevel=2)
    ops = r.ops
    if n_above := int((r.labels > max_label).sum()):  # a stop chance above 1 is no probability
        raise ShapeError(
            f"labels must not exceed max_label={max_label}; "
            f"labels exceed it at {n_above} real documents"
        )
    # chance the user stops at a document, (2^label - 1) / 2^max_label, in a form that cannot
    # overflow (label <= max_label) and is exact for integer labels
    stop = ops.exp2(r.labels - max_label) - 2.0**-max_label
    ranked = r.ranked(stop)
    reach = ops.exclusive_cumprod(1.0 - ranked)  # chance the user gets to each position
    result: ArrayT = r.finish(ops.sum(ranked * reach / r.positions), ops.any(stop > 0), no_relevant)
    return result


# ---------------------------------------------------------------------------------------------
# Registry, presets and report names.


class MetricFn(Protocol):
    """A metric: ``(scores, labels, mask, k=None, *, <conventions>) -> [queries]``."""

    def __call__(self, scores: Any, labels: Any, mask: Any, k: int | None = None) -> Any: ...


METRICS: dict[str, MetricFn] = {
    "ndcg": ndcg,
    "dcg": dcg,
    "map": average_precision,
    "mrr": reciprocal_rank,
    "p": precision,
    "recall": recall,
    "err": err,
}

PRESETS: dict[str, dict[str, Any]] = {
    # Eval-Score-4.0.pl, rules in ../shared/data/README.md
    "letor": {
        "gain": "exp2",
        "discount": "letor",
        "short_list": "zero",
        "no_relevant": "zero",
        "relevance_threshold": 1,
        "ap_denominator": "relevant",
    },
    # LightGBM's ndcg@k / map@k metrics (rank_metric.hpp, map_metric.hpp)
    "lightgbm": {
        "gain": "exp2",
        "discount": "standard",
        "short_list": "truncate",
        "no_relevant": "one",
        "relevance_threshold": 1,
        "ap_denominator": "min_relevant_k",
    },
    # trec_eval (and pytrec_eval): ndcg_cut_k, map, map_cut_k, recip_rank, P_k, recall_k
    "trec_eval": {
        "gain": "linear",
        "discount": "standard",
        "short_list": "truncate",
        "no_relevant": "zero",
        "relevance_threshold": 1,
        "ap_denominator": "relevant",
    },
}

_NAME = re.compile(r"([a-z_]+)(?:@(\d+))?")


def parse_metric_name(name: str) -> tuple[str, int | None]:
    """Split a report name into registry key and cutoff: ``"ndcg@10"`` -> ``("ndcg", 10)``.

    Raises:
        ConfigError: unknown metric or a cutoff that is not a positive integer.

    >>> parse_metric_name("ndcg@10"), parse_metric_name("MAP")
    (('ndcg', 10), ('map', None))
    """
    match = _NAME.fullmatch(name.strip().lower()) if isinstance(name, str) else None
    if match is None or match.group(1) not in METRICS or int(match.group(2) or 1) < 1:
        valid = ", ".join(sorted(METRICS))
        raise ConfigError(
            f"metric name must be one of {valid}, optionally with a cutoff @k (k >= 1) "
            f"such as ndcg@10; got {name!r}"
        )
    return match.group(1), None if match.group(2) is None else int(match.group(2))


def reads_gain(names: Iterable[str]) -> bool:
    """Whether a metric of ``names`` (report names) reads the ``gain`` convention (NDCG, DCG).

    >>> reads_gain(["map", "ndcg@10"]), reads_gain(["map", "err@10"])
    (True, False)
    """
    fns = (cast(Callable[..., Any], METRICS[parse_metric_name(name)[0]]) for name in names)
    return any("gain" in _accepted(fn) for fn in fns)


def metric_order(name: str) -> tuple[str, int, str]:
    """Sort key for report names: ``ndcg@1 < ndcg@3 < ndcg@10 < ndcg@10[...] < map < mrr``, by
    metric (NDCG first, the headline), cutoff as a number, then variant.

    >>> sorted(["map", "ndcg@10", "ndcg@3", "ndcg@1"], key=metric_order)
    ['ndcg@1', 'ndcg@3', 'ndcg@10', 'map']
    """
    base, _, variant = name.partition("[")
    metric, _, k = base.partition("@")
    return ("" if metric == "ndcg" else metric, int(k) if k.isdigit() else 0, variant)


def _resolve_conventions(preset: str | None, conventions: Mapping[str, Any]) -> dict[str, Any]:
    """Preset values overridden by explicit ones, every name and value checked."""
    if preset is not None and preset not in PRESETS:
        valid = ", ".join(sorted(PRESETS))
        raise ConfigError(f"preset must be one of {valid}; got {preset!r}")
    merged = {**(PRESETS[preset] if preset is not None else {}), **conventions}
    for key, value in merged.items():
        if key in _CHOICES:
            _check_choice(key, value)
        elif key in _NUMBERS:
            _check_number(key, value)
        else:
            valid = ", ".join(sorted([*_CHOICES, *_NUMBERS]))
            raise ConfigError(f"metric convention must be one of {valid}; got {key!r}")
    return merged


def conventions_in_force(preset: str | None = None, **conventions: Any) -> dict[str, Any]:
    """Every convention a metric of :data:`METRICS` reads, with the value it gets: the metric
    functions' defaults, then ``PRESETS[preset]``, then explicit keywords.

    >>> conventions_in_force("letor", gain="linear")["gain"], conventions_in_force()["discount"]
    ('linear', 'standard')
    """
    defaults: dict[str, Any] = {}
    for fn in METRICS.values():  # the defaults are the signatures', so they cannot drift
        for param in inspect.signature(fn).parameters.values():
            if param.kind is inspect.Parameter.KEYWORD_ONLY:
                defaults.setdefault(param.name, param.default)
    return {**defaults, **_resolve_conventions(preset, conventions)}


@functools.cache
def _accepted(fn: Callable[..., Any]) -> frozenset[str]:
    params = inspect.signature(fn).parameters.values()
    return frozenset(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def per_query_metrics(
    scores: ArrayT,
    labels: ArrayT,
    mask: ArrayT,
    names: Iterable[str] | str,
    *,
    preset: str | None = None,
    **conventions: Any,
) -> dict[str, ArrayT]:
    """Per-query values ``[queries]`` of each report name (``"ndcg@10"``, ``"map"``, ...).

    Conventions come from ``PRESETS[preset]``, overridden by explicit keywords; each metric
    takes the conventions it understands and ignores the others.

    Raises:
        ConfigError: unknown metric name, preset, convention or convention value.

    >>> values = per_query_metrics(
    ...     np.array([[2.0, 1.0]]), np.array([[0.0, 1.0]]), np.ones((1, 2), bool), ["mrr"]
    ... )
    >>> values["mrr"]
    array([0.5])
    """
    merged = _resolve_conventions(preset, conventions)
    parsed = {
        name: parse_metric_name(name) for name in ([names] if isinstance(names, str) else names)
    }
    out = {}
    for name, (key, k) in parsed.items():
        fn = cast(Callable[..., Any], METRICS[key])
        kwargs = {c: v for c, v in merged.items() if c in _accepted(fn)}
        out[name] = fn(scores, labels, mask, k, **kwargs)
    return out


def _to_host(values: Any) -> Any:
    return values.detach().cpu() if _is_tensor(values) else values


def compute_metrics(
    scores: ArrayT,
    labels: ArrayT,
    mask: ArrayT,
    names: Iterable[str] | str,
    *,
    preset: str | None = None,
    **conventions: Any,
) -> dict[str, float]:
    """Mean over queries of each report name, skipping NaN (queries dropped by ``"skip"``).

    A metric whose every query is NaN averages to NaN. Arguments as :func:`per_query_metrics`.

    >>> compute_metrics(
    ...     np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([[0.0, 1.0], [0.0, 0.0]]),
    ...     np.ones((2, 2), bool), ["mrr", "p@1"], no_relevant="skip",
    ... )
    {'mrr': 0.5, 'p@1': 0.0}
    """
    means = {}
    for name, values in per_query_metrics(
        scores, labels, mask, names, preset=preset, **conventions
    ).items():
        host = np.asarray(_to_host(values), np.float64)
        kept = host[~np.isnan(host)]
        means[name] = float(kept.mean()) if kept.size else math.nan
    return means
