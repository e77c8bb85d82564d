"""Parity and latency checks of ONNX graphs, on hand-built graphs (no torch export needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from ltr.data.letor import LetorData
from ltr.data.synthetic import make_synthetic
from ltr.lifecycle.latency import format_latency_table, latency_line, measure_latency
from ltr.lifecycle.parity import ranking_violations, validate_parity
from ltr.lifecycle.runtime import make_session
from support.onnx_models import linear_onnx

N_FEATURES = 7


class Reference(nn.Module):
    def __init__(self, weight: np.ndarray, bias: float) -> None:
        super().__init__()
        self.weight = torch.tensor(weight, dtype=torch.float32)
        self.bias = bias

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        return features @ self.weight + self.bias


@pytest.fixture(scope="module")
def weight() -> np.ndarray:
    return np.random.default_rng(0).standard_normal(N_FEATURES).astype(np.float32)


def test_same_function_passes_parity_on_file_and_random_slates(weight: np.ndarray) -> None:
    data = make_synthetic(n_queries=20, n_features=N_FEATURES, seed=1, max_docs=12)
    session = make_session(linear_onnx(weight.tolist(), 0.5))

    report = validate_parity(
        session, Reference(weight, 0.5), n_features=N_FEATURES, data=data, list_sizes=(1, 7, 100)
    )

    assert report.passed, report.problems
    assert [case.name for case in report.cases] == [
        "test file",
        "random slates of 1 documents",
        "random slates of 7 documents",
        "random slates of 100 documents",
    ]
    assert report.cases[0].documents == data.n_docs
    assert report.max_abs_diff <= 1e-5
    assert report.metrics_torch == report.metrics_onnx
    assert report.to_dict()["rankings_identical"] is True


def test_offset_graph_fails_parity_naming_the_rule(weight: np.ndarray) -> None:
    session = make_session(linear_onnx(weight.tolist(), 0.5 + 1e-3))

    report = validate_parity(session, Reference(weight, 0.5), n_features=N_FEATURES)

    assert not report.passed
    assert report.problems[0].startswith(
        "random slates of 1 documents: |onnx - torch| must be <= 1e-05 + 1e-06 * max |torch "
        "score| of the case; 3 of 3 queries exceed it (max |diff| 0.001"
    )


def test_one_ulp_at_large_scores_passes_parity(weight: np.ndarray) -> None:
    # scores near 5e4, where one float32 ulp is 2**-8 = 0.0039: the torch bias is one ulp higher
    ulp = float(np.spacing(np.float32(5e4)))
    session = make_session(linear_onnx(weight.tolist(), 5e4))

    report = validate_parity(session, Reference(weight, 5e4 + ulp), n_features=N_FEATURES)

    assert report.passed, report.problems
    assert 1e-5 < report.max_abs_diff <= 2 * ulp  # beyond the old fixed bound; rounding ties
    assert report.max_relative_diff <= 2 * ulp / 4e4
    assert report.to_dict()["rankings_identical"] is True


def test_small_score_summed_from_large_terms_gets_the_file_scale(weight: np.ndarray) -> None:
    # one query's only document scores about 10, as a sum of terms near 5e4 (a linear model on
    # raw features): its rounding is that of the terms, 0.004 here, far above 1e-5 + 1e-6 * 10
    rng = np.random.default_rng(4)
    features = rng.standard_normal((12, N_FEATURES)).astype(np.float32)
    features[-1] = -(5e4 - 10) * weight / float(weight @ weight)
    data = LetorData(
        features, np.zeros(12, np.float32), np.array(["a", "b"]), np.array([0, 11, 12])
    )
    ulp = float(np.spacing(np.float32(5e4)))
    session = make_session(linear_onnx(weight.tolist(), 5e4))

    report = validate_parity(
        session, Reference(weight, 5e4 + ulp), n_features=N_FEATURES, data=data, list_sizes=()
    )

    assert abs(report.metrics_torch["ndcg@10"] - report.metrics_onnx["ndcg@10"]) <= 1e-9
    assert report.cases[0].max_abs_diff > 1e-5 + 1e-6 * 20  # beyond a bound of query b alone
    assert report.passed, report.problems


def test_offset_beyond_relative_tolerance_fails_at_large_scores(weight: np.ndarray) -> None:
    session = make_session(linear_onnx(weight.tolist(), 5e4))

    report = validate_parity(session, Reference(weight, 5e4 + 0.5), n_features=N_FEATURES)

    assert not report.passed
    assert "queries exceed it (max |diff| 0.5" in report.problems[0]


def test_reversed_near_ties_pass_but_are_reported(weight: np.ndarray) -> None:
    # every score within 1e-7 of 0: all pairs lie inside the tie gap, so the reversed order is
    # allowed by the rule, and the report must say the rankings are not identical
    tiny = weight * 1e-8
    session = make_session(linear_onnx((-tiny).tolist()))

    report = validate_parity(session, Reference(tiny, 0.0), n_features=N_FEATURES)

    assert report.passed, report.problems
    assert report.near_tie_swaps > 0
    assert report.to_dict()["rankings_identical"] is False


def test_float64_path_that_departs_from_the_graph_fails_naming_its_case(
    weight: np.ndarray,
) -> None:
    # torch eager and ONNX Runtime agree; the float64 path (`ltr predict`) scores 1e-3 higher
    data = make_synthetic(n_queries=20, n_features=N_FEATURES, seed=1, max_docs=12)
    session = make_session(linear_onnx(weight.tolist(), 0.5))
    float64 = data.features.astype(np.float64) @ weight + 0.5 + 1e-3

    report = validate_parity(
        session, Reference(weight, 0.5), n_features=N_FEATURES, data=data, training_scores=float64
    )

    assert len(report.problems) == 1
    assert report.problems[0].startswith(
        "test file, float64 normalization: |onnx - float64 path| must be <= 1e-05 + 1e-06 * "
        "max |float64 path score| of the case; 20 of 20 queries exceed it (max |diff| 0.001"
    )
    assert report.cases[1].name == "test file, float64 normalization"
    assert set(report.metrics_float64) == set(report.metrics_onnx)


def test_reversed_graph_fails_rankings_and_metrics(weight: np.ndarray) -> None:
    data = make_synthetic(n_queries=20, n_features=N_FEATURES, seed=1, max_docs=12)
    session = make_session(linear_onnx((-weight).tolist()))

    report = validate_parity(session, Reference(weight, 0.0), n_features=N_FEATURES, data=data)

    assert any("queries are ordered differently" in p for p in report.problems)
    assert any(p.startswith("test file: ndcg@10 must match torch") for p in report.problems)


def test_ranking_rule_lets_near_ties_swap_but_not_separated_pairs() -> None:
    torch_scores = np.array([[1.0, 1.0 + 5e-7, 0.0], [1.0, 0.5, 0.0]])
    onnx_scores = np.array([[1.0, 1.0 - 1e-7, 0.0], [0.4, 0.5, 0.0]])  # q0 tie swap, q1 real swap
    mask = np.ones((2, 3), dtype=bool)

    violations = ranking_violations(torch_scores, onnx_scores, mask, tie_tolerance=1e-6)

    assert violations.tolist() == [0, 1]


def test_ranking_rule_tie_gap_grows_with_the_score_scale() -> None:
    # scale 5e4: the gap is 1e-6 + 1e-6 * 5e4 = 0.05; q0 swaps a pair 0.01 apart, q1 0.1 apart
    torch_scores = np.array([[5e4, 5e4 - 0.01, 0.0], [5e4, 5e4 - 0.1, 0.0]])
    onnx_scores = np.array([[5e4 - 0.01, 5e4, 0.0], [5e4 - 0.1, 5e4, 0.0]])
    mask = np.ones((2, 3), dtype=bool)

    assert ranking_violations(torch_scores, onnx_scores, mask, 1e-6).tolist() == [1, 1]
    assert ranking_violations(torch_scores, onnx_scores, mask, 1e-6, rtol=1e-6).tolist() == [0, 1]


def test_ranking_rule_ignores_padding() -> None:
    torch_scores = np.array([[2.0, 1.0, 9.0]])
    onnx_scores = np.array([[2.0, 1.0, -9.0]])
    mask = np.array([[True, True, False]])

    assert ranking_violations(torch_scores, onnx_scores, mask, 1e-6).tolist() == [0]


def test_latency_rows_cover_every_size_and_thread_count(weight: np.ndarray) -> None:
    rows = measure_latency(
        linear_onnx(weight.tolist()),
        Reference(weight, 0.0),
        n_features=N_FEATURES,
        list_sizes=(1, 10),
        threads=(1, 2),
        matmul_weights=[weight[:, None]],
        seconds=0.05,
        rounds=2,
    )

    assert [(row.list_size, row.threads) for row in rows] == [(1, 1), (10, 1), (1, 2), (10, 2)]
    assert all(row.onnx_p50_us > 0 and row.matmul_p50_us is not None for row in rows)
    assert all(row.rankings_identical and row.max_abs_diff <= 1e-5 for row in rows)
    assert "ONNX Runtime p50" in latency_line(rows[0]) and "rankings identical" in latency_line(
        rows[0]
    )
    assert format_latency_table(rows).count("\n") == len(rows) + 1
