"""Paired tests and intervals agree with scipy and with a brute-force enumeration."""

from __future__ import annotations

import itertools
import math
import tracemalloc
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from ltr.errors import ShapeError
from ltr.experiments.significance import (
    bootstrap_confidence_interval,
    holm_bonferroni,
    mean_confidence_interval,
    paired_t_test,
    randomization_test,
    win_tie_loss,
)


def paired_values(n: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-query values of a baseline ``b`` and a run ``a`` better by ``shift`` on average."""
    rng = np.random.default_rng(seed)
    b = rng.random(n)
    return b + shift + rng.normal(0.0, 0.2, n), b


def mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def test_paired_t_test_matches_scipy_ttest_rel() -> None:
    a, b = paired_values(50, 0.03, seed=1)
    expected = stats.ttest_rel(a, b)
    low, high = expected.confidence_interval(0.95)
    result = paired_t_test(a, b)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-10)
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-10)
    assert result.mean_diff == pytest.approx(np.mean(a - b)) and result.n == 50


def test_randomization_test_is_exact_for_small_n_like_full_enumeration_and_scipy() -> None:
    a, b = paired_values(10, 0.08, seed=2)
    d = a - b
    observed = abs(d.mean())
    flips = np.array(list(itertools.product([-1.0, 1.0], repeat=10)))  # all 1024 sign vectors
    enumerated = np.mean(np.abs(flips @ d / 10) >= observed * (1 - 1e-12))
    scipy_exact = stats.permutation_test(
        (a, b), mean_diff, permutation_type="samples", n_resamples=10_000, vectorized=True
    )
    result = randomization_test(a, b, n_resamples=10_000)
    assert result.p_value == enumerated
    assert result.p_value == pytest.approx(scipy_exact.pvalue, abs=1e-12)


# metric values as they are meant (1/3, not its float), so the oracle's ties are real ties
LEVELS = [Fraction(0), Fraction(1, 3), Fraction(1, 2), Fraction(6309, 10000), Fraction(1)]
LEVELS += [Fraction(1, 10), Fraction(2, 10), Fraction(3, 10), Fraction(4309, 10000)]


def exact_rational_p(a: list[Fraction], b: list[Fraction]) -> float:
    """Every sign flip, in exact arithmetic: the share with |sum| >= the observed |sum|."""
    d = [x - y for x, y in zip(a, b, strict=True)]
    observed = abs(sum(d))
    flips = itertools.product((1, -1), repeat=len(d))
    hits = sum(
        abs(sum(s * x for s, x in zip(signs, d, strict=True))) >= observed for signs in flips
    )
    return hits / 2 ** len(d)


def test_randomization_test_counts_ties_where_the_differences_cancel() -> None:
    """Differences summing to -0.0024 where |d| sums to 2.3: no flip has a smaller |sum|, so
    p = 1, yet rounding put the float sums of equal flips on both sides of the observed one."""
    a = [LEVELS[i] for i in (0, 8, 0, 1, 1)]
    b = [LEVELS[i] for i in (0, 0, 5, 0, 4)]

    result = randomization_test([float(x) for x in a], [float(x) for x in b])

    assert result.p_value == exact_rational_p(a, b) == 1.0


def test_randomization_test_exact_branch_matches_exact_arithmetic_on_metric_like_values() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(2, 10))
        a = [LEVELS[i] for i in rng.integers(0, 8, n)]
        b = [LEVELS[i] for i in rng.integers(0, 8, n)]
        p = randomization_test([float(x) for x in a], [float(x) for x in b]).p_value
        assert p == exact_rational_p(a, b), (a, b)


def test_randomization_test_monte_carlo_counts_ties_as_integer_arithmetic_does() -> None:
    """P@10-like values: the same sign flips summed as integers (tenths) count alike."""
    rng = np.random.default_rng(3)
    for _ in range(40):
        a, b = rng.integers(0, 11, 40), rng.integers(0, 11, 40)
        tenths = a - b
        flips = np.random.default_rng(0).integers(0, 2, size=(10_000, 40), dtype=np.int8)
        sums = tenths.sum() - 2 * (flips.astype(np.int64) @ tenths)
        expected = (1 + np.count_nonzero(np.abs(sums) >= abs(tenths.sum()))) / 10_001
        assert randomization_test(a / 10, b / 10, seed=0).p_value == expected


def test_randomization_test_enumerates_in_chunks_of_bounded_memory() -> None:
    """2**20 sign vectors of 20 queries: 160 MB as one float matrix, far less in chunks."""
    a, b = paired_values(20, 0.05, seed=4)
    tracemalloc.start()
    try:
        result = randomization_test(a, b, n_resamples=2**20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    d = a - b
    flips = np.array(list(itertools.product([-1.0, 1.0], repeat=10)))  # halves of the 20 signs
    halves = flips @ d[:10], flips @ d[10:]
    sums = np.abs(halves[0][:, None] + halves[1][None, :])
    tolerance = 4 * 20 * np.finfo(np.float64).eps * np.abs(d).sum()
    assert result.p_value == np.count_nonzero(sums >= abs(d.sum()) - tolerance) / 2**20
    assert peak < 80e6


def test_randomization_test_agrees_with_scipy_within_monte_carlo_error() -> None:
    a, b = paired_values(40, 0.07, seed=3)  # p near 0.2: the Monte-Carlo error is largest
    n_resamples = 20_000
    expected = stats.permutation_test(
        (a, b),
        mean_diff,
        permutation_type="samples",
        n_resamples=n_resamples,
        vectorized=True,
        rng=np.random.default_rng(1),
    ).pvalue
    result = randomization_test(a, b, n_resamples=n_resamples, seed=5)
    # two independent Monte-Carlo estimates: standard error of their difference, 5 sigma
    sigma = math.sqrt(2 * expected * (1 - expected) / n_resamples)
    assert 0.01 < expected < 0.99
    assert abs(result.p_value - expected) < 5 * sigma


def test_randomization_test_adds_one_to_numerator_and_denominator() -> None:
    a, b = paired_values(200, 0.3, seed=4)  # no sign flip comes close to the observed mean
    result = randomization_test(a, b, n_resamples=999)
    assert result.p_value == 1 / 1000


def test_randomization_test_is_reproducible_with_a_seed() -> None:
    a, b = paired_values(60, 0.02, seed=5)
    first, again = randomization_test(a, b, seed=7), randomization_test(a, b, seed=7)
    assert first == again


@pytest.mark.parametrize("n", [5, 50])  # exact enumeration and Monte Carlo
def test_identical_runs_give_p_value_one(n: int) -> None:
    values = np.random.default_rng(6).random(n)
    t_test, randomization = paired_t_test(values, values), randomization_test(values, values)
    assert t_test.p_value == 1.0 and t_test.statistic == 0.0
    assert randomization.p_value == 1.0 and randomization.mean_diff == 0.0


def test_clear_winner_gives_tiny_p_values() -> None:
    a, b = paired_values(100, 0.2, seed=7)
    assert paired_t_test(a, b).p_value < 1e-10
    assert randomization_test(a, b).p_value < 1e-3
    assert paired_t_test(a, b).ci_low > 0 and randomization_test(a, b).ci_low > 0


def test_constant_nonzero_difference_is_certain() -> None:
    result = paired_t_test([0.5, 0.6, 0.7], [0.4, 0.5, 0.6])
    assert result.p_value == 0.0 and result.statistic == math.inf


def test_nan_pairs_are_dropped_from_both_runs() -> None:
    a, b = paired_values(30, 0.05, seed=8)
    a_nan, b_nan = a.copy(), b.copy()
    a_nan[[0, 5]] = np.nan
    b_nan[[5, 9]] = np.nan
    keep = np.ones(30, dtype=bool)
    keep[[0, 5, 9]] = False
    assert paired_t_test(a_nan, b_nan) == paired_t_test(a[keep], b[keep])
    assert randomization_test(a_nan, b_nan) == randomization_test(a[keep], b[keep])
    assert paired_t_test(a_nan, b_nan).n == 27


def test_paired_tests_need_equal_lengths() -> None:
    with pytest.raises(ShapeError, match=r"equal length; got shapes \(3,\), \(2,\)"):
        paired_t_test([0.1, 0.2, 0.3], [0.1, 0.2])


def test_paired_tests_need_two_pairs_with_values() -> None:
    with pytest.raises(ShapeError, match="in both runs; got 1 of 3; the other 2 are NaN"):
        randomization_test([0.1, np.nan, 0.3], [0.2, 0.2, np.nan])


def test_paired_tests_of_one_query_do_not_blame_skipped_queries() -> None:
    with pytest.raises(ShapeError, match=r"in both runs; got 1$"):
        paired_t_test([0.1], [0.2])


def test_win_tie_loss_counts_queries_and_ignores_tiny_differences() -> None:
    a = [0.5, 0.2, 0.3, 0.7, np.nan, 0.1 + 0.2]
    b = [0.4, 0.2, 0.9, 0.7 + 1e-15, 0.3, 0.3]  # 0.1 + 0.2 != 0.3 in floating point: a tie
    assert tuple(win_tie_loss(a, b)) == (1, 3, 1)


def test_mean_confidence_interval_matches_scipy_t_interval() -> None:
    values = np.random.default_rng(9).random(25)
    low, high = stats.t.interval(0.9, df=24, loc=values.mean(), scale=stats.sem(values))
    interval = mean_confidence_interval(values, confidence=0.9)
    assert tuple(interval) == pytest.approx((values.mean(), low, high), rel=1e-12)


def test_mean_confidence_interval_drops_nan_and_handles_tiny_samples() -> None:
    mean, low, high = mean_confidence_interval([0.4, np.nan])
    assert mean == 0.4 and math.isnan(low) and math.isnan(high)  # one value: no interval
    assert all(math.isnan(v) for v in mean_confidence_interval([np.nan]))


def test_bootstrap_interval_agrees_with_scipy_percentile_bootstrap() -> None:
    values = np.random.default_rng(10).random(80)
    expected = stats.bootstrap(
        (values,), np.mean, method="percentile", n_resamples=20_000, rng=np.random.default_rng(0)
    ).confidence_interval
    low, high = bootstrap_confidence_interval(values, n_resamples=20_000, seed=3)
    assert low < values.mean() < high
    assert (low, high) == pytest.approx((expected.low, expected.high), abs=0.006)


def test_holm_bonferroni_steps_down_and_stays_monotone() -> None:
    # sorted p: 0.01 x4 -> 0.04; 0.02 x3 -> 0.06; 0.04 x2 -> 0.08; 0.5 x1 -> 0.5
    adjusted = holm_bonferroni([0.04, 0.01, 0.5, 0.02])
    assert adjusted == pytest.approx([0.08, 0.04, 0.5, 0.06])
    assert holm_bonferroni([0.03, 0.02]) == pytest.approx([0.04, 0.04])  # max-accumulated
    assert holm_bonferroni([0.9, 0.8]) == [1.0, 1.0]


def test_holm_bonferroni_leaves_nan_out_of_the_family() -> None:
    adjusted = holm_bonferroni([0.01, float("nan"), 0.02])
    assert adjusted[0] == pytest.approx(0.02) and adjusted[2] == pytest.approx(0.02)
    assert math.isnan(adjusted[1])
