r"""Paired significance tests over per-query metric values, and confidence intervals.

Two rankers scored on the same test queries give paired values ``a[i]``, ``b[i]`` (one per
query); every test here looks at the differences ``d[i] = a[i] - b[i]``. Conventions, stated once:

- **Pairs with a NaN are dropped.** A metric is NaN for a query it skips (``no_relevant="skip"``);
  such a query says nothing about either ranker, so it leaves both samples (pairwise deletion).
  ``TestResult.n`` counts the pairs that remain.
- **Two-sided.** ``mean_diff > 0`` means ``a`` scores higher than ``b``; p-values ignore the sign.
- **Intervals** are for the mean: 95% unless ``confidence`` says otherwise.

Tests:

- :func:`paired_t_test`: Student's paired t-test,
  :math:`t = \bar d / (s_d / \sqrt n)` with :math:`n - 1` degrees of freedom (equals
  ``scipy.stats.ttest_rel``).
- :func:`randomization_test`: Fisher's paired randomization (sign-flip permutation) test. Under
  the null hypothesis the two runs are exchangeable within a query, so each ``d[i]`` is as likely
  to carry either sign; the p-value is the share of sign flips whose mean difference is at least
  as extreme as the observed one (Smucker, Allan & Carterette, CIKM 2007, recommend it for IR).
- :func:`win_tie_loss`: counts of queries where ``a`` beats, ties or loses to ``b``.
- :func:`holm_bonferroni`: adjusts the p-values of several runs compared with one baseline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from ltr.errors import ShapeError

__all__ = [
    "ConfidenceInterval",
    "TestResult",
    "WinTieLoss",
    "bootstrap_confidence_interval",
    "holm_bonferroni",
    "mean_confidence_interval",
    "paired_t_test",
    "randomization_test",
    "win_tie_loss",
]

# values per chunk of resamples: 10,000 resamples x 200 queries at most in memory at once
_CHUNK_VALUES = 2_000_000


@dataclass(frozen=True)
class TestResult:
    """The outcome of a paired test of ``a`` against ``b``.

    Attributes:
        statistic: the t statistic (t-test) or the observed mean difference (randomization).
        p_value: two-sided p-value.
        mean_diff: mean of ``a - b`` over the ``n`` pairs.
        ci_low, ci_high: confidence interval of ``mean_diff`` (t-based for the t-test,
            percentile bootstrap for the randomization test).
        n: pairs used (queries with a value in both ``a`` and ``b``).
    """

    __test__ = False  # a library class, not a pytest test class

    statistic: float
    p_value: float
    mean_diff: float
    ci_low: float
    ci_high: float
    n: int


class ConfidenceInterval(NamedTuple):
    """A sample mean and an interval around it."""

    mean: float
    low: float
    high: float


class WinTieLoss(NamedTuple):
    """Queries where ``a`` beats ``b`` (wins), matches it within a tolerance (ties), or loses."""

    wins: int
    ties: int
    losses: int


def paired_t_test(a: ArrayLike, b: ArrayLike, *, confidence: float = 0.95) -> TestResult:
    r"""Two-sided paired t-test of ``mean(a - b) = 0``.

    :math:`t = \bar d / (s_d / \sqrt n)`, :math:`s_d` the sample standard deviation (``ddof=1``),
    p-value from Student's t with :math:`n - 1` degrees of freedom; the interval is
    :math:`\bar d \pm t_{n-1} s_d / \sqrt n`. Edge cases: all differences zero give t = 0 and
    p = 1; equal non-zero differences (no spread) give t = +-inf and p = 0.

    Args:
        a, b: ``[queries]`` per-query values of two runs on the same queries, in the same order.
        confidence: level of the interval of the mean difference.

    Returns:
        :class:`TestResult`; ``statistic`` is t.

    Raises:
        ShapeError: ``a`` and ``b`` differ in length, or fewer than 2 pairs remain.

    >>> round(paired_t_test([0.5, 0.6, 0.7, 0.9], [0.4, 0.6, 0.5, 0.6]).p_value, 4)
    0.1027
    """
    d = _differences(a, b)
    n, mean = d.size, float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(n)
    if se == 0.0:  # no spread: the sign of the mean decides, with certainty
        t = 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
        p = 1.0 if mean == 0.0 else 0.0
        return TestResult(t, p, mean, mean, mean, n)
    t = mean / se
    p = float(2.0 * stats.t.sf(abs(t), df=n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, df=n - 1)) * se
    return TestResult(t, min(p, 1.0), mean, mean - half, mean + half, n)


def randomization_test(
    a: ArrayLike,
    b: ArrayLike,
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> TestResult:
    r"""Two-sided paired randomization (sign-flip permutation) test of ``mean(a - b) = 0``.

    Each resample flips the sign of every difference with probability 1/2 and recomputes the mean
    :math:`T^*`. The p-value counts resamples at least as extreme as the observed mean
    :math:`T`, with a tolerance of :math:`4 n \epsilon \sum_i |d_i|` on the sums (a bound on
    their rounding error), so rounding does not split equal values, not even where the
    differences cancel and :math:`T` is near 0:

    .. math:: p = \frac{1 + \#\{|T^*| \ge |T|\}}{1 + B}

    The **+1 correction** counts the observed labelling as one of the resamples: the p-value is
    then never 0 and the test keeps its level with a finite number ``B`` of random resamples
    (Phipson & Smyth, 2010). When ``2**n <= n_resamples`` every sign flip is enumerated instead
    and the p-value is exact, :math:`\#\{|T^*| \ge |T|\} / 2^n`, with no correction (the
    observed labelling is among the enumerated ones; enumerated in chunks, so memory stays
    bounded). The exact p-value is that of
    ``scipy.stats.permutation_test(..., permutation_type="samples", n_resamples=np.inf)`` (the
    sign-flip null is symmetric, so counting ``|T*| >= |T|`` equals scipy's twice the smaller
    tail), except where the differences nearly cancel: scipy's tolerance, relative to
    :math:`|T|`, then splits equal values (3 of 3,000 small metric-like cases, checked against
    exact rational arithmetic, which this function matches in all 3,000).

    Args:
        a, b: ``[queries]`` per-query values of two runs on the same queries, in the same order.
        n_resamples: random sign flips ``B`` (vectorized in chunks, not a Python loop).
        seed: seed of the sign flips and of the bootstrap interval; same seed, same p-value.
        confidence: level of the percentile-bootstrap interval of the mean difference.

    Returns:
        :class:`TestResult`; ``statistic`` is the observed mean difference.

    Raises:
        ShapeError: ``a`` and ``b`` differ in length, or fewer than 2 pairs remain.
    """
    d = _differences(a, b)
    n, observed = d.size, float(d.mean())
    # Compared on sums, with a tolerance bounding the rounding error of both the observed and
    # a resampled sum (each off by at most about n eps sum|d|): an equal value is counted where
    # the differences cancel and |sum d| is far below that error.
    total = float(d.sum())
    threshold = abs(total) - 4.0 * n * np.finfo(np.float64).eps * float(np.abs(d).sum())
    chunk = max(1, _CHUNK_VALUES // n)
    extreme = 0
    if 2**n <= n_resamples:  # small n: all 2**n sign vectors, an exact p-value
        for start in range(0, 2**n, chunk):  # in chunks: 2**n rows would not fit in memory
            rows = np.arange(start, min(start + chunk, 2**n))
            signs = 1.0 - 2.0 * ((rows[:, None] >> np.arange(n)) & 1)
            extreme += int(np.count_nonzero(np.abs(signs @ d) >= threshold))
        p = extreme / 2**n
    else:
        rng = np.random.default_rng(seed)
        for start in range(0, n_resamples, chunk):
            size = min(chunk, n_resamples - start)
            flips = rng.integers(0, 2, size=(size, n), dtype=np.int8)  # 1: swap the pair
            sums = total - 2.0 * (flips @ d)
            extreme += int(np.count_nonzero(np.abs(sums) >= threshold))
        p = (1 + extreme) / (1 + n_resamples)
    low, high = bootstrap_confidence_interval(d, confidence=confidence, seed=seed)
    return TestResult(observed, min(p, 1.0), observed, low, high, n)


def win_tie_loss(a: ArrayLike, b: ArrayLike, *, tol: float = 1e-12) -> WinTieLoss:
    """Count queries where ``a`` is above ``b`` by more than ``tol`` (wins), below it (losses),
    or within ``tol`` (ties); pairs with a NaN are dropped.

    >>> win_tie_loss([0.5, 0.2, 0.3], [0.4, 0.2, 0.9])
    WinTieLoss(wins=1, ties=1, losses=1)
    """
    d = _differences(a, b, min_pairs=0)
    wins, losses = int(np.count_nonzero(d > tol)), int(np.count_nonzero(d < -tol))
    return WinTieLoss(wins, d.size - wins - losses, losses)


def mean_confidence_interval(values: ArrayLike, *, confidence: float = 0.95) -> ConfidenceInterval:
    r"""Mean of ``values`` with a t-based interval, :math:`\bar x \pm t_{n-1} s / \sqrt n`.

    NaN values (skipped queries) are dropped. One value has no interval (its bounds are NaN: a
    zero-width one would read as certainty); none gives NaN throughout. The interval is not
    clipped to the range of a bounded metric: plots clip what they draw.

    >>> [round(v, 3) for v in mean_confidence_interval([0.2, 0.4, 0.6])]
    [0.4, -0.097, 0.897]
    """
    x = _finite_values(values)
    if x.size == 0:
        return ConfidenceInterval(math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if x.size == 1:
        return ConfidenceInterval(mean, math.nan, math.nan)
    half = float(stats.t.ppf(0.5 + confidence / 2.0, df=x.size - 1) * x.std(ddof=1))
    half /= math.sqrt(x.size)
    return ConfidenceInterval(mean, mean - half, mean + half)


def bootstrap_confidence_interval(
    values: ArrayLike, *, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``values`` (NaN dropped).

    Resamples the values with replacement ``n_resamples`` times (vectorized in chunks) and takes
    the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the resampled means.
    Makes no normality assumption, but is a little narrow for very few values. No value gives
    ``(nan, nan)``.
    """
    x = _finite_values(values)
    if x.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    chunk = max(1, _CHUNK_VALUES // x.size)
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        means[start : start + size] = x[
            rng.integers(0, x.size, size=(size, x.size), dtype=np.int32)
        ].mean(axis=1)
    low, high = np.quantile(means, [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
    return float(low), float(high)


def holm_bonferroni(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``m`` p-values (Holm, 1979), in the input order.

    Sort ascending; the ``i``-th smallest (``i`` from 0) becomes ``(m - i) * p``, made
    non-decreasing along the sorted order and capped at 1. Rejecting where the adjusted value is
    below alpha controls the family-wise error rate at alpha over all ``m`` comparisons (here:
    each run against the same baseline), under any dependence between them. NaN stays NaN and
    does not count in ``m``.

    >>> holm_bonferroni([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = order.size
    scaled = (m - np.arange(m)) * p[order]
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return [float(v) for v in adjusted]


def _differences(a: ArrayLike, b: ArrayLike, *, min_pairs: int = 2) -> NDArray[np.float64]:
    """``a - b`` over the pairs where both are finite; checks lengths and the pair count."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ShapeError(
            f"a and b must be 1-d per-query values of equal length; got shapes {x.shape}, {y.shape}"
        )
    d = (x - y)[np.isfinite(x) & np.isfinite(y)]
    if d.size < min_pairs:
        others = x.size - d.size
        skipped = f" of {x.size}; the other {others} are NaN (skipped queries)" if others else ""
        raise ShapeError(
            f"a paired test needs at least {min_pairs} queries with a value in both runs; "
            f"got {d.size}{skipped}"
        )
    return d


def _finite_values(values: ArrayLike) -> NDArray[np.float64]:
    x = np.asarray(values, dtype=np.float64).ravel()
    return x[np.isfinite(x)]
