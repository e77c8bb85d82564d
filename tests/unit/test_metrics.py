"""ltr.metrics: hand-computed values, conventions, edge cases, properties, NumPy == torch."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ltr.errors import ConfigError, ShapeError
from ltr.metrics import (
    METRICS,
    PRESETS,
    CutoffWarning,
    average_precision,
    compute_metrics,
    dcg,
    err,
    gain_overflows,
    ndcg,
    parse_metric_name,
    per_query_metrics,
    precision,
    reads_gain,
    recall,
    reciprocal_rank,
)

NORMALIZED = ["ndcg", "map", "mrr", "p", "recall", "err"]
LOG2_3 = math.log2(3)


def one_query(scores: list[float], labels: list[float]) -> tuple[np.ndarray, ...]:
    return np.array([scores], float), np.array([labels], float), np.ones((1, len(scores)), bool)


def random_batch(
    seed: int, queries: int = 3, list_len: int = 6, ties: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Graded labels 0-4, ragged lists (mask a prefix), scores tie-free unless ``ties``."""
    rng = np.random.default_rng(seed)
    scores = (
        rng.integers(0, 3, (queries, list_len)) * 1.0 if ties else rng.random((queries, list_len))
    )
    labels = rng.integers(0, 5, (queries, list_len)).astype(float)
    lengths = rng.integers(1, list_len + 1, queries)
    lengths[0] = list_len  # the longest list reaches the padded width: no CutoffWarning
    return scores, labels, np.arange(list_len) < lengths[:, None]


# ---------------------------------------------------------------------------------------------
# Hand-computed values.


def test_ndcg_of_a_reversed_list_by_hand() -> None:
    scores, labels, mask = one_query([3, 2, 1], [0, 1, 2])
    dcg_exp2 = 1 / LOG2_3 + 3 / 2
    ideal_exp2 = 3 + 1 / LOG2_3

    assert ndcg(scores, labels, mask)[0] == pytest.approx(dcg_exp2 / ideal_exp2, abs=1e-15)
    assert ndcg(scores, labels, mask, gain="linear")[0] == pytest.approx(
        (1 / LOG2_3 + 1) / (2 + 1 / LOG2_3), abs=1e-15
    )
    assert dcg(scores, labels, mask, 2)[0] == pytest.approx(1 / LOG2_3, abs=1e-15)


def test_letor_discount_leaves_positions_one_and_two_undiscounted() -> None:
    scores, labels, mask = one_query([4, 3, 2, 1], [0, 1, 1, 1])

    value = dcg(scores, labels, mask, discount="letor")[0]

    assert value == pytest.approx(1 + 1 / math.log2(3) + 1 / math.log2(4), abs=1e-15)


def test_letor_short_list_counts_ndcg_at_k_beyond_the_list_as_zero() -> None:
    scores = np.array([[2.0, 1.0, 0.0], [2.0, 1.0, 0.0]])
    labels = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    mask = np.array([[True, True, True], [True, True, False]])

    assert ndcg(scores, labels, mask, 3, short_list="zero").tolist() == [1.0, 0.0]
    assert ndcg(scores, labels, mask, 3).tolist() == [1.0, 1.0]


def test_average_precision_by_hand() -> None:
    scores, labels, mask = one_query([6, 5, 4, 3, 2, 1], [0, 1, 1, 1, 1, 0])
    hits = 1 / 2 + 2 / 3

    assert average_precision(scores, labels, mask)[0] == pytest.approx(
        (hits + 3 / 4 + 4 / 5) / 4, abs=1e-15
    )
    assert average_precision(scores, labels, mask, 3)[0] == pytest.approx(hits / 4, abs=1e-15)
    assert average_precision(scores, labels, mask, 3, ap_denominator="min_relevant_k")[
        0
    ] == pytest.approx(hits / 3, abs=1e-15)


def test_binary_metrics_use_the_relevance_threshold() -> None:
    scores, labels, mask = one_query([4, 3, 2, 1], [1, 0, 2, 0])

    assert reciprocal_rank(scores, labels, mask)[0] == 1.0
    assert reciprocal_rank(scores, labels, mask, relevance_threshold=2)[0] == pytest.approx(1 / 3)
    assert reciprocal_rank(scores, labels, mask, 2, relevance_threshold=2)[0] == 0.0
    assert precision(scores, labels, mask, 2)[0] == 0.5
    assert precision(scores, labels, mask)[0] == 0.5  # k=None divides by the list length
    assert recall(scores, labels, mask, 1)[0] == 0.5


def test_precision_counts_positions_past_a_short_list_as_non_relevant() -> None:
    scores = np.array([[2.0, 1.0, 0.0], [2.0, 1.0, 0.0]])
    labels = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    mask = np.array([[True, True, True], [True, True, False]])

    assert precision(scores, labels, mask, 3).tolist() == [1.0, pytest.approx(2 / 3)]


def test_err_by_hand() -> None:
    scores, labels, mask = one_query([3, 2, 1], [1, 4, 2])
    stop = [1 / 16, 15 / 16, 3 / 16]
    expected = stop[0] + (1 - stop[0]) * stop[1] / 2 + (1 - stop[0]) * (1 - stop[1]) * stop[2] / 3

    assert err(scores, labels, mask)[0] == pytest.approx(expected, abs=1e-15)
    assert err(scores, labels, mask, 1)[0] == pytest.approx(1 / 16, abs=1e-15)


def test_ties_keep_input_order() -> None:
    scores, labels, mask = one_query([1, 1, 1], [0, 0, 1])

    assert reciprocal_rank(scores, labels, mask)[0] == pytest.approx(1 / 3)
    assert reciprocal_rank(scores[:, ::-1], labels[:, ::-1], mask)[0] == 1.0


@pytest.mark.parametrize("as_tensor", [False, True])
def test_minus_inf_score_is_not_retrieved_but_counts_as_relevant(as_tensor: bool) -> None:
    # trec_eval on a run listing only the label-0 document: nothing relevant retrieved
    scores, labels, mask = one_query([1.0, -math.inf], [0, 1])
    if as_tensor:
        scores, labels, mask = (torch.as_tensor(x) for x in (scores, labels, mask))
    values = per_query_metrics(scores, labels, mask, ["ndcg", "map", "mrr", "recall@2", "p"])

    assert {name: float(v[0]) for name, v in values.items()} == {
        "ndcg": 0.0,
        "map": 0.0,
        "mrr": 0.0,
        "recall@2": 0.0,
        "p": 0.0,
    }


# ---------------------------------------------------------------------------------------------
# Conventions and edge cases.


@pytest.mark.parametrize("name", sorted(METRICS))
@pytest.mark.parametrize(("policy", "value"), [("zero", 0.0), ("one", 1.0)])
def test_query_without_relevant_document_follows_the_policy(
    name: str, policy: str, value: float
) -> None:
    scores = np.array([[2.0, 1.0], [2.0, 1.0]])
    labels = np.array([[0.0, 0.0], [0.0, 1.0]])
    mask = np.ones((2, 2), bool)

    values = METRICS[name](scores, labels, mask, no_relevant=policy)

    assert values[0] == value
    assert values[1] > 0


@pytest.mark.parametrize("name", sorted(METRICS))
def test_skipped_query_is_nan_and_left_out_of_the_mean(name: str) -> None:
    scores = np.array([[2.0, 1.0], [2.0, 1.0]])
    labels = np.array([[0.0, 0.0], [1.0, 0.0]])
    mask = np.ones((2, 2), bool)

    values = METRICS[name](scores, labels, mask, 1, no_relevant="skip")
    mean = compute_metrics(scores, labels, mask, [f"{name}@1"], no_relevant="skip")[f"{name}@1"]

    assert math.isnan(values[0])
    assert mean == values[1]


def test_mean_of_only_skipped_queries_is_nan_without_a_warning() -> None:
    scores, labels, mask = one_query([2, 1], [0, 0])

    means = compute_metrics(scores, labels, mask, ["ndcg", "map"], no_relevant="skip")

    assert math.isnan(means["ndcg"]) and math.isnan(means["map"])


@pytest.mark.parametrize("name", sorted(METRICS))
def test_no_cutoff_equals_a_cutoff_at_the_list_length(name: str) -> None:
    scores, labels, mask = random_batch(seed=1, queries=5, list_len=7)
    if name == "p":  # P@k divides by k, P without k by each list's length
        mask[:] = True

    np.testing.assert_allclose(
        METRICS[name](scores, labels, mask), METRICS[name](scores, labels, mask, 7), atol=1e-15
    )


@pytest.mark.parametrize("name", sorted(METRICS))
def test_one_document_lists_score_their_only_document(name: str) -> None:
    scores = np.array([[0.3], [0.9]])
    labels = np.array([[2.0], [0.0]])
    mask = np.ones((2, 1), bool)

    values = METRICS[name](scores, labels, mask, 1)

    assert values[1] == 0.0
    if name in {"ndcg", "map", "mrr", "p", "recall"}:
        assert values[0] == 1.0


@pytest.mark.parametrize("name", sorted(METRICS))
@pytest.mark.parametrize("policy", ["zero", "one"])
def test_all_padding_row_is_a_query_without_relevant_documents(name: str, policy: str) -> None:
    scores = np.array([[2.0, 1.0], [5.0, 7.0]])
    labels = np.array([[1.0, 0.0], [3.0, 4.0]])
    mask = np.array([[True, True], [False, False]])

    values = METRICS[name](scores, labels, mask, 2, no_relevant=policy)

    assert values[1] == {"zero": 0.0, "one": 1.0}[policy]


def test_empty_batch_gives_empty_result() -> None:
    values = ndcg(np.zeros((0, 4)), np.zeros((0, 4)), np.zeros((0, 4), bool), 2)

    assert values.shape == (0,)


def test_cutoff_above_every_list_warns() -> None:
    scores, labels, mask = random_batch(seed=2, list_len=4)

    with pytest.warns(CutoffWarning, match=r"k=5 is larger than every list in the batch"):
        ndcg(scores, labels, mask, 5)


def test_cutoff_above_some_lists_does_not_warn() -> None:
    scores, labels, mask = random_batch(seed=3, list_len=6)
    mask[1:, 3:] = False

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ndcg(scores, labels, mask, 6)


def test_metrics_accept_float32_and_integer_inputs() -> None:
    scores, labels, mask = random_batch(seed=4)

    got = ndcg(scores.astype(np.float32), labels.astype(np.int64), mask, 3)

    np.testing.assert_allclose(got, ndcg(scores, labels, mask, 3), atol=1e-12)
    assert got.dtype == np.float64


# ---------------------------------------------------------------------------------------------
# Errors.


def test_mismatched_shapes_raise_shape_error_naming_all_three() -> None:
    message = (
        r"scores, labels and mask must share shape \[queries, list_len\]; "
        r"got \(32, 100\), \(32, 99\), \(32, 100\)"
    )
    with pytest.raises(ShapeError, match=message):
        ndcg(np.zeros((32, 100)), np.zeros((32, 99)), np.ones((32, 100), bool))


def test_one_dimensional_input_gets_a_hint() -> None:
    with pytest.raises(ShapeError, match=r"got \(3,\), \(3,\), \(3,\); for a single query"):
        ndcg(np.zeros(3), np.zeros(3), np.ones(3, bool))


def test_non_bool_mask_raises_shape_error() -> None:
    with pytest.raises(ShapeError, match=r"mask must be bool \(True = real document\); got int64"):
        ndcg(np.zeros((1, 3)), np.zeros((1, 3)), np.ones((1, 3), np.int64))


def test_mixing_numpy_and_torch_raises_shape_error() -> None:
    with pytest.raises(ShapeError, match=r"all NumPy arrays or all torch tensors; got Tensor"):
        ndcg(torch.zeros(1, 3), np.zeros((1, 3)), np.ones((1, 3), bool))


@pytest.mark.parametrize("as_tensor", [False, True])
@pytest.mark.parametrize("name", sorted(METRICS))
def test_nan_score_of_a_real_document_raises_shape_error(name: str, as_tensor: bool) -> None:
    scores, labels, mask = one_query([1.0, math.nan, 2.0, 0.0], [0, 1, 2, 0])
    if as_tensor:
        scores, labels, mask = (torch.as_tensor(x) for x in (scores, labels, mask))
    with pytest.raises(ShapeError, match=r"scores hold NaN at 1 real documents"):
        METRICS[name](scores, labels, mask)


@pytest.mark.parametrize("as_tensor", [False, True])
@pytest.mark.parametrize("name", sorted(METRICS))
def test_negative_label_of_a_real_document_raises_shape_error(name: str, as_tensor: bool) -> None:
    scores, labels, mask = one_query([2.0, 1.0], [-5.0, 1.0])
    if as_tensor:
        scores, labels, mask = (torch.as_tensor(x) for x in (scores, labels, mask))
    with pytest.raises(ShapeError, match=r"labels must be non-negative; .* at 1 real documents"):
        METRICS[name](scores, labels, mask)


@pytest.mark.parametrize("as_tensor", [False, True])
@pytest.mark.parametrize("name", sorted(METRICS))
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_label_of_a_real_document_raises_shape_error(
    name: str, bad: float, as_tensor: bool
) -> None:
    scores, labels, mask = one_query([2.0, 1.0, 0.0], [bad, 1.0, 0.0])
    if as_tensor:
        scores, labels, mask = (torch.as_tensor(x) for x in (scores, labels, mask))
    with pytest.raises(ShapeError, match=r"^labels must be finite; .* at 1 real documents$"):
        METRICS[name](scores, labels, mask)


@pytest.mark.parametrize("as_tensor", [False, True])
@pytest.mark.parametrize("name", ["ndcg", "dcg"])
def test_exp2_gain_overflow_raises_naming_the_largest_label(name: str, as_tensor: bool) -> None:
    # 2^2000 is inf in float64: NDCG came out inf / inf = NaN, read as a skipped query
    scores, labels, mask = one_query([0.5, 0.1], [2000.0, 0.0])
    if as_tensor:
        scores, labels, mask = (torch.as_tensor(x) for x in (scores, labels, mask))
    with pytest.raises(
        ShapeError,
        match=r"exp2 gain 2\^label - 1 overflows float64 at the largest label, 2000; "
        r"use gain='linear'",
    ):
        METRICS[name](scores, labels, mask)


def test_an_overflowing_query_is_not_dropped_from_the_means() -> None:
    scores = np.array([[0.5, 0.1], [0.1, 0.9]])
    labels, mask = np.array([[2000.0, 0.0], [1.0, 0.0]]), np.ones((2, 2), bool)
    with pytest.raises(ShapeError, match=r"overflows"):
        compute_metrics(scores, labels, mask, ["ndcg", "map"])
    linear = compute_metrics(scores, labels, mask, ["ndcg"], gain="linear")
    assert linear["ndcg"] == pytest.approx((1.0 + 1 / LOG2_3) / 2)


def test_gain_overflows_from_label_1024_in_float64_and_128_in_float32() -> None:
    assert not gain_overflows(1023, "exp2") and gain_overflows(1024, "exp2")
    assert not gain_overflows(127, "exp2", "float32") and gain_overflows(128, "exp2", "float32")
    assert not gain_overflows(1e300, "linear")
    with pytest.raises(ConfigError, match=r"^gain must be one of"):
        gain_overflows(1.0, "exp")


def test_an_ideal_dcg_overflowing_below_label_1024_does_not_blame_the_gain() -> None:
    # each 2^1023 - 1 is finite; three of them summed in the ideal DCG are not
    scores, labels, mask = one_query([0.3, 0.2, 0.1], [1023.0, 1023.0, 1023.0])
    with pytest.raises(ShapeError, match=r"^the ideal DCG overflows float64; the largest label"):
        ndcg(scores, labels, mask)


def test_reads_gain_names_the_metrics_that_take_the_gain_convention() -> None:
    assert reads_gain(["map", "dcg@5"]) and reads_gain(["NDCG@10"])
    assert not reads_gain(["map", "mrr", "err@10", "p@5", "recall@10"])


def test_err_takes_labels_whose_exp2_overflows() -> None:
    scores, labels, mask = one_query([0.5, 0.1], [1500.0, 0.0])
    assert err(scores, labels, mask, max_label=1500)[0] == 1.0  # 1 - 2^-1500 rounds to 1


def test_nan_scores_and_negative_labels_in_padding_are_ignored() -> None:
    scores, labels, _ = one_query([2.0, 1.0, math.nan], [0.0, 1.0, -5.0])
    mask = np.array([[True, True, False]])

    assert ndcg(scores, labels, mask)[0] == pytest.approx(1 / LOG2_3)


@pytest.mark.parametrize("as_tensor", [False, True])
def test_plus_and_minus_inf_scores_are_not_nan(as_tensor: bool) -> None:
    # their sum is NaN, which must not read as a NaN score
    scores, labels, mask = one_query([math.inf, -math.inf, 0.0], [1.0, 2.0, 0.0])
    if as_tensor:
        scores, labels, mask = (torch.as_tensor(x) for x in (scores, labels, mask))

    rank_1_gain, ideal = 1.0, 3.0 + 1.0 / LOG2_3  # -inf is not retrieved
    assert float(ndcg(scores, labels, mask)[0]) == pytest.approx(rank_1_gain / ideal)


def test_err_label_above_max_label_raises_shape_error() -> None:
    with pytest.raises(ShapeError, match=r"must not exceed max_label=4; .* at 3 real documents"):
        err(*one_query([4, 3, 2, 1], [5, 5, 5, 0]))


@pytest.mark.parametrize("max_label", [0, -1.0, math.inf, math.nan])
def test_err_max_label_not_finite_and_positive_raises_config_error(max_label: float) -> None:
    with pytest.raises(ConfigError, match=r"max_label must be a finite number > 0; got"):
        err(*one_query([2, 1], [0, 1]), max_label=max_label)


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_bad_cutoff_raises_config_error(k: object) -> None:
    with pytest.raises(ConfigError, match=r"k must be a positive integer or None; got"):
        ndcg(*one_query([1, 2], [0, 1]), k)  # type: ignore[arg-type]


def test_bad_convention_value_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"gain must be one of 'exp2', 'linear'; got 'exp'"):
        ndcg(*one_query([1, 2], [0, 1]), gain="exp")  # type: ignore[arg-type]


def test_unknown_convention_lists_the_valid_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"must be one of ap_denominator, discount, .*; got 'gian'"
    ):
        compute_metrics(*one_query([1, 2], [0, 1]), ["ndcg"], gian="linear")


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(ConfigError, match=r"preset must be one of letor, lightgbm, trec_eval"):
        compute_metrics(*one_query([1, 2], [0, 1]), ["ndcg"], preset="ranx")


@pytest.mark.parametrize("name", ["ndcg@0", "precision@5", "ndcg@", "ndcg@ten", "", "map@-1"])
def test_bad_metric_names_raise_config_error_listing_the_metrics(name: str) -> None:
    with pytest.raises(ConfigError, match=r"one of dcg, err, map, mrr, ndcg, p, recall"):
        parse_metric_name(name)


# ---------------------------------------------------------------------------------------------
# Names, registry, presets.


@pytest.mark.parametrize(
    ("name", "parsed"),
    [("ndcg@10", ("ndcg", 10)), ("map", ("map", None)), ("mrr@10", ("mrr", 10)),
     ("p@5", ("p", 5)), ("err@20", ("err", 20)), (" Recall@3 ", ("recall", 3))],
)  # fmt: skip
def test_parse_metric_name(name: str, parsed: tuple[str, int | None]) -> None:
    assert parse_metric_name(name) == parsed


def test_registry_uses_the_report_names() -> None:
    assert {
        "ndcg": ndcg, "dcg": dcg, "map": average_precision, "mrr": reciprocal_rank,
        "p": precision, "recall": recall, "err": err,
    } == METRICS  # fmt: skip


def test_explicit_conventions_override_the_preset() -> None:
    scores, labels, mask = one_query([2, 1], [0, 0])

    means = compute_metrics(scores, labels, mask, "ndcg", preset="lightgbm", no_relevant="zero")

    assert means == {"ndcg": 0.0}


def test_per_query_metrics_match_the_functions() -> None:
    scores, labels, mask = random_batch(seed=5)

    values = per_query_metrics(scores, labels, mask, ["ndcg@3", "map"], preset="letor")

    np.testing.assert_array_equal(values["ndcg@3"], ndcg(scores, labels, mask, 3, **_ndcg_letor()))
    np.testing.assert_array_equal(values["map"], average_precision(scores, labels, mask))


def _ndcg_letor() -> dict[str, str]:
    return {key: PRESETS["letor"][key] for key in ("gain", "discount", "short_list", "no_relevant")}


def test_import_does_not_import_torch() -> None:
    code = "import sys, ltr.metrics; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ---------------------------------------------------------------------------------------------
# NumPy and torch give the same numbers.


@pytest.mark.parametrize("name", sorted(METRICS))
@pytest.mark.parametrize("ties", [False, True])
def test_torch_float64_matches_numpy(name: str, ties: bool) -> None:
    scores, labels, mask = random_batch(seed=6, queries=20, list_len=9, ties=ties)
    tensors = [torch.from_numpy(x) for x in (scores, labels, mask)]

    for k in (None, 1, 4):
        got = METRICS[name](*tensors, k, no_relevant="skip")
        assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
        np.testing.assert_allclose(
            got.numpy(), METRICS[name](scores, labels, mask, k, no_relevant="skip"), atol=1e-12
        )


def test_torch_float32_inputs_are_close_to_numpy() -> None:
    scores, labels, mask = random_batch(seed=7, queries=20, list_len=9)
    tensors = torch.from_numpy(scores).float(), torch.from_numpy(labels).float()

    got = per_query_metrics(*tensors, torch.from_numpy(mask), list(METRICS))
    want = per_query_metrics(scores.astype(np.float32), labels, mask, list(METRICS))

    for name in METRICS:
        np.testing.assert_allclose(got[name].numpy(), want[name], atol=1e-6)


def test_compute_metrics_accepts_tensors() -> None:
    scores, labels, mask = random_batch(seed=8)
    tensors = [torch.from_numpy(x) for x in (scores, labels, mask)]

    assert compute_metrics(*tensors, ["ndcg@3"]) == pytest.approx(
        compute_metrics(scores, labels, mask, ["ndcg@3"]), abs=1e-12
    )


# ---------------------------------------------------------------------------------------------
# Properties.

SEEDS = st.integers(0, 2**32 - 1)
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)


@PROPERTY_SETTINGS
@given(seed=SEEDS, extra=st.integers(1, 4), k=st.sampled_from([None, 1, 3, 6]))
def test_padding_changes_nothing(seed: int, extra: int, k: int | None) -> None:
    scores, labels, mask = random_batch(seed, ties=seed % 2 == 0)
    rng = np.random.default_rng(seed)
    width = scores.shape[1] + extra
    slots = np.sort(rng.permutation(width)[: scores.shape[1]])  # real columns, order kept
    wild_scores = rng.choice([1e30, -1e30, np.inf, -np.inf, np.nan, 0.0], (scores.shape[0], width))
    wild_labels = rng.choice([0.0, 4.0, 1e6, -5.0], (scores.shape[0], width))
    big_mask = np.zeros((scores.shape[0], width), bool)
    wild_scores[:, slots], wild_labels[:, slots], big_mask[:, slots] = scores, labels, mask

    for name in METRICS:
        for convention in ({}, {"no_relevant": "one"}):
            np.testing.assert_allclose(  # a longer sum may differ in the last bit
                METRICS[name](wild_scores, wild_labels, big_mask, k, **convention),
                METRICS[name](scores, labels, mask, k, **convention),
                rtol=1e-15,
                atol=1e-15,
            )


@PROPERTY_SETTINGS
@given(seed=SEEDS, k=st.sampled_from([None, 1, 3]))
def test_input_order_does_not_matter_without_ties(seed: int, k: int | None) -> None:
    scores, labels, mask = random_batch(seed)
    permutation = np.random.default_rng(seed).permutation(scores.shape[1])

    for name in METRICS:
        np.testing.assert_allclose(
            METRICS[name](scores[:, permutation], labels[:, permutation], mask[:, permutation], k),
            METRICS[name](scores, labels, mask, k),
            atol=1e-15,
        )


@PROPERTY_SETTINGS
@given(seed=SEEDS, k=st.sampled_from([None, 1, 2, 5]))
def test_perfect_ranking_scores_one(seed: int, k: int | None) -> None:
    _, labels, mask = random_batch(seed)
    has_relevant = ((labels >= 1) & mask).any(axis=1)

    values = per_query_metrics(
        labels,
        labels,
        mask,
        ["ndcg", "map", "mrr"] if k is None else [f"ndcg@{k}", f"map@{k}", f"mrr@{k}"],
        ap_denominator="min_relevant_k",  # AP@k reaches 1 only when divided by min(#rel, k)
    )
    for name in values:
        np.testing.assert_allclose(values[name][has_relevant], 1.0, atol=1e-15)
    np.testing.assert_allclose(recall(labels, labels, mask)[has_relevant], 1.0, atol=1e-15)


@PROPERTY_SETTINGS
@given(seed=SEEDS, k=st.sampled_from([None, 1, 3]), gain=st.sampled_from(["exp2", "linear"]))
def test_normalized_metrics_stay_within_zero_and_one(seed: int, k: int | None, gain: str) -> None:
    scores, labels, mask = random_batch(seed, ties=seed % 3 == 0)

    values = per_query_metrics(scores, labels, mask, NORMALIZED, gain=gain, discount="letor")

    for name in NORMALIZED:
        assert ((values[name] >= 0) & (values[name] <= 1 + 1e-15)).all(), name


@PROPERTY_SETTINGS
@given(seed=SEEDS, k=st.sampled_from([None, 1, 2, 4]), gain=st.sampled_from(["exp2", "linear"]))
def test_putting_a_misordered_pair_in_order_never_lowers_ndcg(
    seed: int, k: int | None, gain: str
) -> None:
    scores, labels, mask = random_batch(seed, queries=1, list_len=6)
    real = np.flatnonzero(mask[0])
    i, j = np.random.default_rng(seed).choice(real, 2, replace=False) if real.size > 1 else (0, 0)
    if labels[0, i] < labels[0, j]:
        i, j = j, i  # i has the higher label
    if scores[0, i] > scores[0, j]:
        return  # already in order
    swapped = scores.copy()
    swapped[0, [i, j]] = scores[0, [j, i]]

    assert (
        ndcg(swapped, labels, mask, k, gain=gain)[0]
        >= ndcg(scores, labels, mask, k, gain=gain)[0] - 1e-15
    )
