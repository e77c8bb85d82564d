"""Parity of an exported graph with the PyTorch model it came from.

**Parity** (:func:`validate_parity`) runs ONNX Runtime and PyTorch eager (normalizer + scorer,
eval mode, float32) on the same padded slates: the whole test file, and random slates of 1, 7,
100 and 1,000 documents (3 queries each; where the graph has a ``mask`` input the last query is
partly padding). Rules, checked on real documents only, with tolerances that grow with the
case's **score scale** ``s = max |torch score|`` over all real documents of the case (the
whole test file, or the three lists of one random size). float32 rounding is relative: one ulp
of a score near 5e4 is 0.004, so a fixed bound refuses correct graphs. And it is relative to
the terms summed, not to the result: with raw features times 3000 in a linear model, a lone
document scored 10 came out 6.6e-5 apart in the two engines, because its score is the sum of
terms near 1e5; a bound scaled by that query's own largest score (1e-5 + 1e-6 * 10) refused
the correct graph. The largest score of the case is a lower bound of the size of those terms
that one query of small scores cannot hide:

- **scores**: every real document has ``|onnx - torch| <= atol + rtol * s`` (defaults 1e-5 and
  1e-6; 1e-6 is about 8 float32 ulps of the largest score);
- **rankings**: for every query and every pair of documents ``(i, j)`` with
  ``torch_i - torch_j > tie_tolerance + rtol * s`` (default 1e-6 + 1e-6 ``s``), ONNX Runtime
  puts ``i`` above ``j`` in the stable descending order of its own scores (ties keep input
  order, as ltr's metrics do). That is all the rule guarantees: pairs that torch separates by
  at most that gap may come in either order, whatever their order in torch (a query whose scores
  all lie within the gap may come out reversed). Such swaps are not hidden: each case counts
  them (``near_tie_swaps``), and ``rankings_identical`` in :meth:`ParityReport.to_dict` is True
  only when no pair at all is ordered differently;
- **metrics** (test file only): :func:`ltr.evaluation.evaluate_scores` of both score vectors,
  under the run's conventions, agree within 1e-9 per metric mean; a near-tie swap that moves a
  metric is caught here.

An optional third engine, the **float64 path** (``training_scores``: the scores ``ltr predict``
writes, features normalized in float64 by :meth:`ltr.data.preprocessing.Normalizer.transform`
and scored in eager PyTorch), is compared with ONNX Runtime on the test file under the same
score and ranking rules, as case ``"test file, float64 normalization"``. It catches a graph
whose float32 normalization departs from the one training used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from torch import nn

from ltr._extras import require_extra
from ltr.data.dataset import pad_slates
from ltr.data.letor import LetorData
from ltr.errors import ShapeError
from ltr.evaluation import evaluate_scores, pad_per_query, padding_mask
from ltr.lifecycle.runtime import run_session, run_torch

with require_extra("export"):
    import onnxruntime as ort

__all__ = [
    "METRIC_TOLERANCE",
    "PARITY_LIST_SIZES",
    "PARITY_METRICS",
    "RTOL",
    "SCORE_ATOL",
    "TIE_ATOL",
    "ParityCase",
    "ParityReport",
    "ranking_violations",
    "score_scale",
    "validate_parity",
]

PARITY_LIST_SIZES = (1, 7, 100, 1000)
PARITY_METRICS = ("ndcg@1", "ndcg@5", "ndcg@10", "map", "mrr")
METRIC_TOLERANCE = 1e-9
SCORE_ATOL = 1e-5  # absolute part of the score rule
TIE_ATOL = 1e-6  # absolute part of the tie gap of the ranking rule
RTOL = 1e-6  # relative part of both, times the query's score scale
_RANDOM_QUERIES = 3


def score_scale(torch_scores: np.ndarray, mask: np.ndarray) -> float:
    """``max |torch score|`` over all real documents given (0 if none): the ``s`` of the rules."""
    magnitude = np.abs(torch_scores.astype(np.float64))
    # NaN stays NaN (np.max propagates it), so a NaN score fails every rule that uses the scale
    return float(np.where(mask, magnitude, 0.0).max(initial=0.0))


def ranking_violations(
    torch_scores: np.ndarray,
    onnx_scores: np.ndarray,
    mask: np.ndarray,
    tie_tolerance: float,
    *,
    rtol: float = 0.0,
) -> np.ndarray:
    """``int [queries]``: pairs torch separates by more than ``tie_tolerance + rtol * s``
    that ONNX Runtime orders the other way (the ranking rule of the module docstring), with
    ``s`` the :func:`score_scale` of all the queries given.

    Args:
        torch_scores, onnx_scores: ``[queries, list_len]``.
        mask: ``bool [queries, list_len]``, True for real documents.
        tie_tolerance: absolute torch score gap at or below which two documents count as tied.
        rtol: relative part of the gap, times :func:`score_scale`.
    """
    return _pair_counts(torch_scores, onnx_scores, mask, tie_tolerance, rtol)[0]


def _pair_counts(
    torch_scores: np.ndarray, onnx_scores: np.ndarray, mask: np.ndarray, tie: float, rtol: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per query: (pairs reordered beyond the tie gap, pairs torch orders strictly that ONNX
    Runtime orders the other way, near ties included)."""
    filled = np.where(mask, onnx_scores.astype(np.float64), -np.inf)
    order = np.argsort(-filled, axis=1, kind="stable")
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(order.shape[1])[None, :], axis=1)
    reference = torch_scores.astype(np.float64)
    gap_allowed = tie + rtol * score_scale(reference, mask)
    violations = np.zeros(reference.shape[0], dtype=np.int64)
    swaps = np.zeros(reference.shape[0], dtype=np.int64)
    for q in range(reference.shape[0]):  # one [L, L] matrix at a time keeps memory at O(L^2)
        real = mask[q]
        t, p = reference[q, real], position[q, real]
        gap = t[:, None] - t[None, :]  # torch ranks i above j by this much
        flipped = p[:, None] > p[None, :]  # ONNX Runtime puts j above i
        # NaN gaps compare False; a NaN score fails the score rule instead
        violations[q] = int(((gap > gap_allowed) & flipped).sum())
        swaps[q] = int(((gap > 0) & flipped).sum())
    return violations, swaps


def _score_violations(
    t: np.ndarray, o: np.ndarray, mask: np.ndarray, atol: float, rtol: float
) -> tuple[int, float, float]:
    """(queries with a real document beyond ``atol + rtol * s``, max |diff|, max relative
    diff ``|diff| / s``) over real documents."""
    if not mask.any():
        return 0, 0.0, 0.0
    diff = np.abs(t.astype(np.float64) - o.astype(np.float64))
    scale = score_scale(t, mask)
    within = diff <= atol + rtol * scale  # NaN compares False: a NaN score fails
    beyond = int((mask & ~within).any(axis=1).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(diff == 0, 0.0, diff / scale)
    return beyond, float(diff[mask].max()), float(relative[mask].max())


@dataclass(frozen=True)
class ParityCase:
    """One comparison: ``queries`` slates holding ``documents`` real documents in all.

    Attributes:
        max_abs_diff: largest ``|onnx - torch|``.
        max_relative_diff: largest ``|onnx - torch| / s`` (``s``: the case's score scale).
        score_violations: queries with a document beyond the score rule.
        reordered_queries: queries with a pair ordered against the ranking rule.
        near_tie_swaps: pairs ordered differently within the tie gap (allowed, reported).
        reference: what ONNX Runtime is compared with (``torch`` or ``float64 path``).
    """

    name: str
    queries: int
    documents: int
    max_abs_diff: float
    max_relative_diff: float
    score_violations: int
    reordered_queries: int
    near_tie_swaps: int
    reference: str = "torch"


@dataclass
class ParityReport:
    """What :func:`validate_parity` found; ``passed`` is False when any rule fails.

    Attributes:
        atol: absolute part of the score tolerance.
        tie_tolerance: absolute part of the tie gap (torch gaps within the gap may swap).
        rtol: relative part of both, times each case's score scale.
        cases: the test file first (if any), then the random slates.
        metrics_torch, metrics_onnx: metric means on the test file (empty without one).
        metrics_float64: metric means of ``training_scores`` (empty without them); recorded,
            not judged (a near-tie swap may move them).
        problems: one sentence per failed rule.
    """

    atol: float
    tie_tolerance: float
    rtol: float = RTOL
    cases: list[ParityCase] = field(default_factory=list)
    metrics_torch: dict[str, float] = field(default_factory=dict)
    metrics_onnx: dict[str, float] = field(default_factory=dict)
    metrics_float64: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def max_abs_diff(self) -> float:
        return max((case.max_abs_diff for case in self.cases), default=0.0)

    @property
    def max_relative_diff(self) -> float:
        return max((case.max_relative_diff for case in self.cases), default=0.0)

    @property
    def near_tie_swaps(self) -> int:
        """Pairs ordered differently within the tie gap, over all cases (0: identical rankings)."""
        return sum(case.near_tie_swaps for case in self.cases)

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
            "rtol": self.rtol,
            "metric_tolerance": METRIC_TOLERANCE,
            "max_abs_diff": self.max_abs_diff,
            "max_relative_diff": self.max_relative_diff,
            # identical means identical: a swap of near-tied documents makes this False
            "rankings_identical": self.near_tie_swaps == 0,
            "near_tie_swaps": self.near_tie_swaps,
            "metrics_max_diff": self.metrics_max_diff,
            "metrics_torch": self.metrics_torch,
            "metrics_onnx": self.metrics_onnx,
            "metrics_float64": self.metrics_float64,
            "cases": [asdict(case) for case in self.cases],
            "problems": list(self.problems),
        }


def validate_parity(
    session: ort.InferenceSession,
    reference: nn.Module,
    *,
    n_features: int,
    data: LetorData | None = None,
    training_scores: np.ndarray | None = None,
    list_sizes: Sequence[int] = PARITY_LIST_SIZES,
    atol: float = SCORE_ATOL,
    tie_tolerance: float = TIE_ATOL,
    rtol: float = RTOL,
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
        training_scores: ``float64 [n_docs]`` scores of ``data`` on the float64 path
            (``ltr predict``'s); compared with ONNX Runtime as case
            ``"test file, float64 normalization"``. Needs ``data``.
        list_sizes: documents per random slate.
        atol: absolute part of the allowed ``|onnx - torch|``.
        tie_tolerance: absolute part of the torch gap within which a pair may swap.
        rtol: relative part of both, times the case's ``max |torch score|``.
        metrics, conventions: what :func:`evaluate_scores` computes on ``data``.
        batch_size: queries per slate on ``data``.
        seed: of the random slates.

    Returns:
        The report; the caller decides what a failure means (export refuses to write).
    """
    report = ParityReport(atol=atol, tie_tolerance=tie_tolerance, rtol=rtol)
    if data is not None:
        torch_scores, onnx_scores, case = _compare_data(
            session, reference, data, batch_size, report
        )
        report.cases.append(case)
        conv = dict(conventions or {})
        report.metrics_torch = evaluate_scores(data, torch_scores, metrics, **conv).means
        report.metrics_onnx = evaluate_scores(data, onnx_scores, metrics, **conv).means
        if training_scores is not None:
            training_scores = np.asarray(training_scores, dtype=np.float64)
            if training_scores.shape != (data.n_docs,):
                raise ShapeError(
                    f"training_scores must be [n_docs] = [{data.n_docs}]; "
                    f"got {training_scores.shape}"
                )
            case = _flat_case(
                "test file, float64 normalization", data, training_scores, onnx_scores, report
            )
            report.cases.append(replace(case, reference="float64 path"))
            report.metrics_float64 = evaluate_scores(data, training_scores, metrics, **conv).means
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
    report: ParityReport,
) -> tuple[np.ndarray, np.ndarray, ParityCase]:
    """Both engines over the whole file, in slates of queries of similar length."""
    torch_scores = np.zeros(data.n_docs, dtype=np.float64)
    onnx_scores = np.zeros(data.n_docs, dtype=np.float64)
    order = np.argsort(data.list_lengths, kind="stable")
    for start in range(0, order.size, batch_size):
        slates = pad_slates(data, order[start : start + batch_size])
        mask = slates.mask
        t = run_torch(reference, slates.features, mask)
        o = run_session(session, slates.features, mask)
        rows = data.query_offsets[slates.query_index][:, None] + np.arange(mask.shape[1])
        torch_scores[rows[mask]], onnx_scores[rows[mask]] = t[mask], o[mask]
    # judged once over the whole file: the score scale is the file's
    case = _flat_case("test file", data, torch_scores, onnx_scores, report)
    return torch_scores, onnx_scores, case


def _flat_case(
    name: str, data: LetorData, t: np.ndarray, o: np.ndarray, report: ParityReport
) -> ParityCase:
    """A case from scores in file order: each query one row of a padded ``[Q, L]`` array."""
    offsets = data.query_offsets
    return _case(
        name, pad_per_query(t, offsets), pad_per_query(o, offsets), padding_mask(offsets), report
    )


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
    beyond, max_diff, max_relative = _score_violations(t, o, mask, report.atol, report.rtol)
    violations, swaps = _pair_counts(t, o, mask, report.tie_tolerance, report.rtol)
    return ParityCase(
        name,
        int(mask.shape[0]),
        int(mask.sum()),
        max_diff,
        max_relative,
        beyond,
        int((violations > 0).sum()),
        int(swaps.sum()),
    )


def _judge(report: ParityReport) -> None:
    for case in report.cases:
        if case.score_violations or np.isnan(case.max_abs_diff):
            report.problems.append(
                f"{case.name}: |onnx - {case.reference}| must be <= {report.atol:g} + "
                f"{report.rtol:g} * max |{case.reference} score| of the case; "
                f"{case.score_violations} of {case.queries} queries exceed it "
                f"(max |diff| {case.max_abs_diff:.3g}, relative {case.max_relative_diff:.3g})"
            )
        if case.reordered_queries:
            report.problems.append(
                f"{case.name}: rankings must match {case.reference} apart from pairs within "
                f"{report.tie_tolerance:g} + {report.rtol:g} * max |{case.reference} score| of the "
                f"case; {case.reordered_queries} of {case.queries} queries are ordered differently"
            )
    for name, expected in report.metrics_torch.items():
        got = report.metrics_onnx[name]
        same_nan = np.isnan(expected) and np.isnan(got)
        if not same_nan and not abs(expected - got) <= METRIC_TOLERANCE:
            report.problems.append(
                f"test file: {name} must match torch within {METRIC_TOLERANCE:g}; "
                f"got {got!r} vs torch {expected!r}"
            )
