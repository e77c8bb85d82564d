"""Checks of an exported graph against the PyTorch model it came from: parity and latency.

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

**Latency** (:func:`measure_latency`, :func:`benchmark_latency`): one slate of one query with
``N`` documents, called many times after a warm-up; PyTorch eager, ONNX Runtime and the bare
matrix products are interleaved in rounds so a noisy neighbour hits all three alike, and p50/p99
come from every call of every round. ONNX Runtime runs with ``ORT_ENABLE_ALL``,
``intra_op_num_threads = threads``, one inter-op thread and sequential execution; torch gets
``torch.set_num_threads(threads)``. The **matrix-product floor** is the float32 chain
``x [N, F] @ W1.T @ W2.T @ ... @ w_out.T`` of the scorer's Linear weights in NumPy at the same
thread count (``threadpoolctl``), without biases, activations or normalization: the arithmetic
no runtime can skip. It exists for scorers made of Linear layers only (linear, mlp).
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from ltr.data.dataset import pad_slates
from ltr.data.letor import LetorData
from ltr.evaluation import evaluate_scores

__all__ = [
    "PARITY_LIST_SIZES",
    "PARITY_METRICS",
    "LatencyReport",
    "LatencyRow",
    "ParityCase",
    "ParityReport",
    "benchmark_latency",
    "format_latency_table",
    "latency_line",
    "make_session",
    "measure_latency",
    "ranking_violations",
    "run_session",
    "score_with_onnx",
    "validate_parity",
]

PARITY_LIST_SIZES = (1, 7, 100, 1000)
PARITY_METRICS = ("ndcg@1", "ndcg@5", "ndcg@10", "map", "mrr")
METRIC_TOLERANCE = 1e-9
_RANDOM_QUERIES = 3


def make_session(model: bytes | Path, *, threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime CPU session with the options every ltr measurement uses.

    ``ORT_ENABLE_ALL`` graph optimizations (MatMul+Add -> Gemm, constant folding), ``threads``
    intra-op threads, one inter-op thread, sequential execution, memory arena on.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_cpu_mem_arena = True
    options.log_severity_level = 3  # errors only: no banner about saved optimized models
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run_session(
    session: ort.InferenceSession, features: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """``float32 [B, L]`` scores of ``features [B, L, F]``; ``mask`` is fed if the graph has it."""
    feeds: dict[str, np.ndarray] = {"features": np.ascontiguousarray(features, dtype=np.float32)}
    if any(node.name == "mask" for node in session.get_inputs()):
        if mask is None:
            mask = np.ones(features.shape[:2], dtype=bool)
        feeds["mask"] = np.ascontiguousarray(mask, dtype=bool)
    scores: np.ndarray = session.run(["scores"], feeds)[0]
    return scores


def _run_torch(reference: nn.Module, features: np.ndarray, mask: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        scores = reference(torch.from_numpy(features), torch.from_numpy(mask))
    out: np.ndarray = scores.float().numpy()
    return out


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
            _run_torch(reference, features, mask),
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
        t = _run_torch(reference, slates.features, mask)
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


# -- latency ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencyRow:
    """Per-call latency of one slate (1 query x ``list_size`` documents), in microseconds."""

    list_size: int
    threads: int
    torch_p50_us: float
    torch_p99_us: float
    onnx_p50_us: float
    onnx_p99_us: float
    matmul_p50_us: float | None
    max_abs_diff: float
    rankings_identical: bool
    calls: int

    @property
    def speedup(self) -> float:
        """PyTorch p50 / ONNX Runtime p50 (above 1: ONNX Runtime is faster)."""
        return self.torch_p50_us / self.onnx_p50_us

    @property
    def matmul_ratio(self) -> float | None:
        """ONNX Runtime p50 / bare matrix products p50 (1.0 = at the floor)."""
        return None if self.matmul_p50_us is None else self.onnx_p50_us / self.matmul_p50_us

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "speedup": self.speedup, "matmul_ratio": self.matmul_ratio}


@dataclass(frozen=True)
class LatencyReport:
    """:func:`benchmark_latency`'s rows and what was measured."""

    bundle: Path
    precision: str
    rows: list[LatencyRow]


def measure_latency(
    model: bytes | Path,
    reference: nn.Module,
    *,
    n_features: int,
    list_sizes: Sequence[int] = (10, 100, 1000),
    threads: Sequence[int] = (1,),
    matmul_weights: Sequence[np.ndarray] | None = None,
    seconds: float = 1.0,
    rounds: int = 5,
    seed: int = 0,
) -> list[LatencyRow]:
    """Time PyTorch eager, ONNX Runtime and the matrix-product floor (module docstring).

    Args:
        model: the ONNX graph.
        reference: PyTorch eager normalizer + scorer, eval mode.
        n_features: feature count.
        list_sizes: documents of the one-query slate.
        threads: thread counts to measure, each with its own session.
        matmul_weights: float32 ``[in, out]`` matrices chained by the floor; None skips it.
        seconds: rough time budget per engine, list size and thread count (warm-up included).
        rounds: interleaved rounds; p50/p99 pool every call of every round.
        seed: of the random features (N(0, 1)).

    Returns:
        One row per (thread count, list size).
    """
    rng = np.random.default_rng(seed)
    rows: list[LatencyRow] = []
    previous_threads = torch.get_num_threads()
    try:
        for n_threads in threads:
            torch.set_num_threads(n_threads)
            session = make_session(model, threads=n_threads)
            for size in list_sizes:
                features = rng.standard_normal((1, size, n_features)).astype(np.float32)
                rows.append(
                    _time_one(
                        session, reference, features, n_threads, matmul_weights, seconds, rounds
                    )
                )
    finally:
        torch.set_num_threads(previous_threads)
    return rows


def _time_one(
    session: ort.InferenceSession,
    reference: nn.Module,
    features: np.ndarray,
    n_threads: int,
    matmul_weights: Sequence[np.ndarray] | None,
    seconds: float,
    rounds: int,
) -> LatencyRow:
    mask = np.ones(features.shape[:2], dtype=bool)
    x, m = torch.from_numpy(features), torch.from_numpy(mask)
    feeds = {"features": features}
    if any(node.name == "mask" for node in session.get_inputs()):
        feeds["mask"] = mask
    flat = features.reshape(-1, features.shape[-1])

    def eager() -> None:
        with torch.inference_mode():
            reference(x, m)

    def onnx() -> None:
        session.run(["scores"], feeds)

    calls: dict[str, Callable[[], object]] = {"torch": eager, "onnx": onnx}
    if matmul_weights is not None:
        calls["matmul"] = lambda: _chain(flat, matmul_weights)
    with _blas_threads(n_threads):
        times = _interleaved(calls, seconds, rounds)
    t, o = _run_torch(reference, features, mask), run_session(session, features, mask)
    p50 = {name: float(np.percentile(values, 50)) for name, values in times.items()}
    p99 = {name: float(np.percentile(values, 99)) for name, values in times.items()}
    return LatencyRow(
        list_size=int(features.shape[1]),
        threads=n_threads,
        torch_p50_us=p50["torch"],
        torch_p99_us=p99["torch"],
        onnx_p50_us=p50["onnx"],
        onnx_p99_us=p99["onnx"],
        matmul_p50_us=p50.get("matmul"),
        max_abs_diff=float(np.abs(t.astype(np.float64) - o).max()),
        rankings_identical=not ranking_violations(t, o, mask, 1e-6).any(),
        calls=len(times["onnx"]),
    )


def _chain(x: np.ndarray, weights: Sequence[np.ndarray]) -> np.ndarray:
    for weight in weights:
        x = x @ weight
    return x


def _interleaved(
    calls: Mapping[str, Callable[[], object]], seconds: float, rounds: int
) -> dict[str, np.ndarray]:
    """Per-call microseconds of each callable, timed in alternating blocks."""
    per_block: dict[str, int] = {}
    for name, call in calls.items():  # warm-up, which also sizes the blocks
        start = time.perf_counter()
        done = 0
        while done < 5 or time.perf_counter() - start < 0.1 * seconds:
            call()
            done += 1
        each = (time.perf_counter() - start) / done
        per_block[name] = max(5, int(0.9 * seconds / rounds / each))
    samples: dict[str, list[int]] = {name: [] for name in calls}
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection in the middle of one engine's block would bias it
    try:
        for _ in range(rounds):
            for name, call in calls.items():
                out = samples[name]
                for _ in range(per_block[name]):
                    start_ns = time.perf_counter_ns()
                    call()
                    out.append(time.perf_counter_ns() - start_ns)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: np.asarray(values, dtype=np.float64) / 1e3 for name, values in samples.items()}


@contextlib.contextmanager
def _blas_threads(n_threads: int) -> Iterator[None]:
    """NumPy's BLAS at ``n_threads`` (threadpoolctl), so the floor uses the same cores."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the floor then runs at BLAS's default thread count
        yield
        return
    with threadpool_limits(limits=n_threads, user_api="blas"):
        yield


def benchmark_latency(
    bundle: str | Path,
    *,
    list_sizes: Sequence[int] = (10, 100, 1000),
    threads: Sequence[int] = (1, 2),
    checkpoint: str | Path | None = None,
    seconds: float = 2.0,
    rounds: int = 7,
) -> LatencyReport:
    """PyTorch eager vs ONNX Runtime on a bundle, per slate size and thread count.

    Args:
        bundle: a bundle folder written by :func:`ltr.lifecycle.export.export_bundle`.
        list_sizes: documents per one-query slate.
        threads: thread counts.
        checkpoint: the PyTorch model to compare with; default: the bundle's source
            checkpoint (``metadata.json`` ``source.checkpoint``).
        seconds, rounds: as in :func:`measure_latency`.

    Raises:
        BundleError: the bundle fails verification.
        DataNotFoundError: the source checkpoint is gone (give ``checkpoint``).
    """
    from ltr.lifecycle.bundle import read_bundle
    from ltr.lifecycle.export import load_source, matmul_chain

    verified = read_bundle(Path(bundle))
    source = load_source(checkpoint or verified.metadata["source"]["checkpoint"])
    rows = measure_latency(
        verified.onnx_path,
        source.reference(),
        n_features=verified.n_features,
        list_sizes=list_sizes,
        threads=threads,
        matmul_weights=matmul_chain(source.scorer),
        seconds=seconds,
        rounds=rounds,
    )
    precision = str(verified.metadata.get("onnx", {}).get("precision", "float32"))
    return LatencyReport(bundle=verified.path, precision=precision, rows=rows)


def latency_line(row: LatencyRow) -> str:
    """``PyTorch p50 152us / ONNX Runtime p50 75us (2.0x faster) / max |diff| 3e-07 / ...``."""
    faster = f"{row.speedup:.1f}x faster" if row.speedup >= 1 else f"{1 / row.speedup:.1f}x slower"
    floor = "" if row.matmul_ratio is None else f" / {row.matmul_ratio:.2f}x matmul floor"
    rankings = "rankings identical" if row.rankings_identical else "rankings DIFFER"
    return (
        f"{row.list_size} docs, {row.threads} thread(s): PyTorch p50 {row.torch_p50_us:,.0f}us / "
        f"ONNX Runtime p50 {row.onnx_p50_us:,.0f}us ({faster}){floor} / "
        f"max |diff| {row.max_abs_diff:.0e} / {rankings}"
    )


def format_latency_table(rows: Sequence[LatencyRow]) -> str:
    """A markdown table of the rows (microseconds; ratios measured in one process)."""
    lines = [
        "| docs | threads | PyTorch p50 / p99 (us) | ONNX Runtime p50 / p99 (us) | speed-up "
        "| matmul floor p50 (us) | ORT / floor | max abs diff | rankings |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        floor = "n/a" if row.matmul_p50_us is None else f"{row.matmul_p50_us:,.0f}"
        ratio = "n/a" if row.matmul_ratio is None else f"{row.matmul_ratio:.2f}x"
        lines.append(
            f"| {row.list_size:,} | {row.threads} | {row.torch_p50_us:,.0f} / "
            f"{row.torch_p99_us:,.0f} | {row.onnx_p50_us:,.0f} / {row.onnx_p99_us:,.0f} | "
            f"{row.speedup:.2f}x | {floor} | {ratio} | {row.max_abs_diff:.1e} | "
            f"{'identical' if row.rankings_identical else 'DIFFER'} |"
        )
    return "\n".join(lines)


def score_with_onnx(
    session: ort.InferenceSession, data: LetorData, *, batch_size: int = 64
) -> np.ndarray:
    """``float64 [n_docs]`` ONNX Runtime scores of raw ``data``, aligned with its rows."""
    scores = np.zeros(data.n_docs, dtype=np.float64)
    order = np.argsort(data.list_lengths, kind="stable")
    for start in range(0, order.size, batch_size):
        slates = pad_slates(data, order[start : start + batch_size])
        out = run_session(session, slates.features, slates.mask)
        rows = data.query_offsets[slates.query_index][:, None] + np.arange(slates.mask.shape[1])
        scores[rows[slates.mask]] = out[slates.mask]
    return scores
