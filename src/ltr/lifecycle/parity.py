"""Parity of an exported graph with the PyTorch model it came from.

**Parity** (:func:`validate_parity`) runs ONNX Runtime and PyTorch eager (normalizer + scorer,
eval mode, float32) on the same padded slates: the whole test file, and random slates of 1, 7,
100 and 1,000 documents (3 queries each; where the graph has a ``mask`` input the last query is
partly padding). Rules, checked on real documents only:

- **scores**: ``max |onnx - torch| <= atol`` (default 1e-5);
- **rankings**: identical apart from near-ties. For every query and every pair of documents
  ``(i, j)`` with ``torch_i - torch_j > tie_tolerance`` (default 1e-6), ONNX Runtime must put
  ``i`` above ``j`` in the stable descending order of its own scores (ties keep input order, as
  ltr's metrics do). Pairs that torch scores within ``tie_tolerance`` of each other may come in
  either order; every other pair is ordered exactly as torch orders it;
- **metrics** (test file only): :func:`ltr.evaluation.evaluate_scores` of both score vectors,
  under the run's conventions, agree within 1e-9 per metric mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from torch import nn

from ltr._extras import require_extra
from ltr.data.dataset import pad_slates
from ltr.data.letor import LetorData
from ltr.evaluation import evaluate_scores
from ltr.lifecycle.runtime import run_session, run_torch

with require_extra("export"):
    import onnxruntime as ort

__all__ = [
    "METRIC_TOLERANCE",
    "PARITY_LIST_SIZES",
    "PARITY_METRICS",
    "ParityCase",
    "ParityReport",
    "ranking_violations",
    "validate_parity",
]

PARITY_LIST_SIZES = (1, 7, 100, 1000)
PARITY_METRICS = ("ndcg@1", "ndcg@5", "ndcg@10", "map", "mrr")
METRIC_TOLERANCE = 1e-9
_RANDOM_QUERIES = 3


def ranking_violations(
    torch_scores: np.ndarray, onnx_scores: np.ndarray, mask: np.ndarray, tie_tolerance: float
) -> np.ndarray:
    """``int [queries]``: pairs torch separates by more than ``tie_tolerance`` that ONNX
    Runtime orders the other way (the ranking rule of the module docstring).

    Args:
        torch_scores, onnx_scores: ``[queries, list_len]``.
        mask: ``bool [queries, list_len]``, True for real documents.
        tie_tolerance: torch score gap at or below which two documents count as tied.
    """
    filled = np.where(mask, onnx_scores.astype(np.float64), -np.inf)
    order = np.argsort(-filled, axis=1, kind="stable")
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(order.shape[1])[None, :], axis=1)
    reference = torch_scores.astype(np.float64)
    violations = np.zeros(reference.shape[0], dtype=np.int64)
    for q in range(reference.shape[0]):  # one [L, L] matrix at a time keeps memory at O(L^2)
        real = mask[q]
        t, p = reference[q, real], position[q, real]
        above = (t[:, None] - t[None, :]) > tie_tolerance  # torch ranks i above j
        violations[q] = int((above & (p[:, None] > p[None, :])).sum())
    return violations


@dataclass(frozen=True)
class ParityCase:
    """One comparison: ``queries`` slates holding ``documents`` real documents in all."""

    name: str
    queries: int
    documents: int
    max_abs_diff: float
    reordered_queries: int


@dataclass
class ParityReport:
    """What :func:`validate_parity` found; ``passed`` is False when any rule fails.

    Attributes:
        atol: the score tolerance.
        tie_tolerance: torch gaps at or below this may swap order.
        cases: the test file first (if any), then the random slates.
        metrics_torch, metrics_onnx: metric means on the test file (empty without one).
        problems: one sentence per failed rule.
    """

    atol: float
    tie_tolerance: float
    cases: list[ParityCase] = field(default_factory=list)
    metrics_torch: dict[str, float] = field(default_factory=dict)
    metrics_onnx: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def max_abs_diff(self) -> float:
        return max((case.max_abs_diff for case in self.cases), default=0.0)

    @property
    def metrics_max_diff(self) -> float:
        diffs = [
            abs(self.metrics_torch[k] - self.metrics_onnx[k])
            for k in self.metrics_torch
            if not (np.isnan(self.metrics_torch[k]) and np.isnan(self.metrics_onnx[k]))
        ]
        return max(diffs, default=0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures (for ``metadata.json``)."""
        return {
            "passed": self.passed,
            "atol": self.atol,
            "tie_tolerance": self.tie_tolerance,
            "metric_tolerance": METRIC_TOLERANCE,
            "max_abs_diff": self.max_abs_diff,
            "rankings_identical": all(case.reordered_queries == 0 for case in self.cases),
            "metrics_max_diff": self.metrics_max_diff,
            "metrics_torch": self.metrics_torch,
            "metrics_onnx": self.metrics_onnx,
            "cases": [asdict(case) for case in self.cases],
            "problems": list(self.problems),
        }


def validate_parity(
    session: ort.InferenceSession,
    reference: nn.Module,
    *,
    n_features: int,
    data: LetorData | None = None,
    list_sizes: Sequence[int] = PARITY_LIST_SIZES,
    atol: float = 1e-5,
    tie_tolerance: float = 1e-6,
    metrics: Sequence[str] = PARITY_METRICS,
    conventions: Mapping[str, Any] | None = None,
    batch_size: int = 64,
    seed: int = 0,
) -> ParityReport:
    """Compare ONNX Runtime with PyTorch eager under the rules of the module docstring.

    Args:
        session: the exported graph (:func:`make_session`).
        reference: ``(features [B, L, F], mask [B, L]) -> scores [B, L]`` on raw features
            (normalizer + scorer), in eval mode.
        n_features: feature count of the graph.
        data: raw (unnormalized) test data; None checks the random slates only.
        list_sizes: documents per random slate.
        atol: largest allowed ``|onnx - torch|``.
        tie_tolerance: torch score gaps at or below this may come in either order.
        metrics, conventions: what :func:`evaluate_scores` computes on ``data``.
        batch_size: queries per slate on ``data``.
        seed: of the random slates.

    Returns:
        The report; the caller decides what a failure means (export refuses to write).
    """
    report = ParityReport(atol=atol, tie_tolerance=tie_tolerance)
    if data is not None:
        torch_scores, onnx_scores, case = _compare_data(
            session, reference, data, batch_size, tie_tolerance
        )
        report.cases.append(case)
        conv = dict(conventions or {})
        report.metrics_torch = evaluate_scores(data, torch_scores, metrics, **conv).means
        report.metrics_onnx = evaluate_scores(data, onnx_scores, metrics, **conv).means
    rng = np.random.default_rng(seed)
    for size in list_sizes:
        features, mask = _random_slate(rng, size, n_features, data)
        torch_scores, onnx_scores = (
            run_torch(reference, features, mask),
            run_session(session, features, mask),
        )
        report.cases.append(
            _case(f"random slates of {size} documents", torch_scores, onnx_scores, mask, report)
        )
    _judge(report)
    return report


def _compare_data(
    session: ort.InferenceSession,
    reference: nn.Module,
    data: LetorData,
    batch_size: int,
    tie_tolerance: float,
) -> tuple[np.ndarray, np.ndarray, ParityCase]:
    """Both engines over the whole file, in slates of queries of similar length."""
    torch_scores = np.zeros(data.n_docs, dtype=np.float64)
    onnx_scores = np.zeros(data.n_docs, dtype=np.float64)
    order = np.argsort(data.list_lengths, kind="stable")
    reordered, max_diff = 0, 0.0
    for start in range(0, order.size, batch_size):
        slates = pad_slates(data, order[start : start + batch_size])
        mask = slates.mask
        t = run_torch(reference, slates.features, mask)
        o = run_session(session, slates.features, mask)
        rows = data.query_offsets[slates.query_index][:, None] + np.arange(mask.shape[1])
        torch_scores[rows[mask]], onnx_scores[rows[mask]] = t[mask], o[mask]
        if mask.any():
            max_diff = max(max_diff, float(np.abs(t - o)[mask].max()))
        reordered += int((ranking_violations(t, o, mask, tie_tolerance) > 0).sum())
    case = ParityCase("test file", data.n_queries, data.n_docs, max_diff, reordered)
    return torch_scores, onnx_scores, case


def _random_slate(
    rng: np.random.Generator, size: int, n_features: int, data: LetorData | None
) -> tuple[np.ndarray, np.ndarray]:
    """``[3, size, F]`` features (rows of ``data`` when given, else N(0, 1)) and a mask whose
    last query has its final third as padding (at least one real document)."""
    shape = (_RANDOM_QUERIES, size)
    if data is not None and data.n_docs:
        rows = rng.integers(0, data.n_docs, size=shape)
        features = np.asarray(data.features, dtype=np.float32)[rows]
    else:
        features = rng.standard_normal((*shape, n_features)).astype(np.float32)
    mask = np.ones(shape, dtype=bool)
    mask[-1, max(1, size - size // 3) :] = False
    return features, mask


def _case(
    name: str, t: np.ndarray, o: np.ndarray, mask: np.ndarray, report: ParityReport
) -> ParityCase:
    diff = float(np.abs(t.astype(np.float64) - o)[mask].max()) if mask.any() else 0.0
    reordered = int((ranking_violations(t, o, mask, report.tie_tolerance) > 0).sum())
    return ParityCase(name, int(mask.shape[0]), int(mask.sum()), diff, reordered)


def _judge(report: ParityReport) -> None:
    for case in report.cases:
        if not case.max_abs_diff <= report.atol:  # also catches NaN
            report.problems.append(
                f"{case.name}: max |onnx - torch| must be <= {report.atol:g}; "
                f"got {case.max_abs_diff:.3g}"
            )
        if case.reordered_queries:
            report.problems.append(
                f"{case.name}: rankings must match torch apart from ties within "
                f"{report.tie_tolerance:g}; {case.reordered_queries} of {case.queries} "
                "queries are ordered differently"
            )
    for name, expected in report.metrics_torch.items():
        got = report.metrics_onnx[name]
        same_nan = np.isnan(expected) and np.isnan(got)
        if not same_nan and not abs(expected - got) <= METRIC_TOLERANCE:
            report.problems.append(
                f"test file: {name} must match torch within {METRIC_TOLERANCE:g}; "
                f"got {got!r} vs torch {expected!r}"
            )
