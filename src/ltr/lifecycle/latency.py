"""Latency of an exported graph next to PyTorch eager and the bare matrix products.

**Latency** (:func:`measure_latency`, :func:`benchmark_latency`): one slate of one query with
``N`` documents, called many times after a warm-up; PyTorch eager, ONNX Runtime and the bare
matrix products are interleaved in rounds so a noisy neighbour hits all three alike, and p50/p99
come from every call of every round. ONNX Runtime runs with ``ORT_ENABLE_ALL``,
``intra_op_num_threads = threads``, one inter-op thread and sequential execution; torch gets
``torch.set_num_threads(threads)``. The **matrix-product floor** is the float32 chain
``x [N, F] @ W1.T @ W2.T @ ... @ w_out.T`` of the scorer's Linear weights in NumPy at the same
thread count (``threadpoolctl``), without biases, activations or normalization: the arithmetic
no runtime can skip. It exists for scorers made of Linear layers only (linear, mlp).

**Noise**: :func:`benchmark_latency` records the 1-minute load average before and after timing
and the cores available; :func:`timing_noise` says when the figures may be inflated (other work
on the cores, or a wide p99/p50 spread), so a busy machine's figures do not pass for real ones.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ltr._extras import require_extra
from ltr.data.letor import LetorData
from ltr.lifecycle.parity import RTOL, TIE_ATOL, ranking_violations
from ltr.lifecycle.runtime import has_mask_input, make_session, run_session, run_torch

with require_extra("export"):
    import onnxruntime as ort

__all__ = [
    "LATENCY_COLUMNS",
    "LatencyReport",
    "LatencyRow",
    "available_cores",
    "benchmark_latency",
    "format_latency_table",
    "latency_cells",
    "latency_line",
    "load_average",
    "measure_latency",
    "timing_noise",
]


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
        """JSON-ready: every field plus ``speedup`` and ``matmul_ratio`` (microseconds)."""
        return {**asdict(self), "speedup": self.speedup, "matmul_ratio": self.matmul_ratio}


@dataclass(frozen=True)
class LatencyReport:
    """:func:`benchmark_latency`'s rows, what was measured, and how busy the machine was.

    ``load_before``/``load_after``: the 1-minute load average as timing began and ended (None
    where the platform has none); ``cores``: the cores this process may run on.
    """

    bundle: Path
    precision: str
    rows: list[LatencyRow]
    cores: int = 1
    load_before: float | None = None
    load_after: float | None = None

    def noise_warnings(self) -> list[str]:
        """:func:`timing_noise` of this report."""
        return timing_noise(self.rows, cores=self.cores, load_before=self.load_before)

    def conditions(self) -> str:
        """``1-minute load average 0.31 -> 1.62 on 2 cores``: for the report's title."""
        if self.load_before is None or self.load_after is None:
            return f"{self.cores} cores"
        return (
            f"1-minute load average {self.load_before:.2f} -> {self.load_after:.2f} "
            f"on {self.cores} cores"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, as ``ltr benchmark-onnx --json`` prints it: the conditions (cores,
        load averages, noise warnings) and one dict per row."""
        return {
            "bundle": str(self.bundle),
            "precision": self.precision,
            "cores": self.cores,
            "load_1min_before": self.load_before,
            "load_1min_after": self.load_after,
            "noise_warnings": self.noise_warnings(),
            "rows": [row.to_dict() for row in self.rows],
        }


# When timings are not to be trusted (the thresholds of timing_noise):
# - other work: the 1-minute load average as timing began plus the threads timed exceeds the
#   cores by more than half a core, so the timed threads waited for a core (a background
#   training made one PyTorch p50 45x too slow, a "219x" speed-up);
# - spread: p99/p50 of an engine above 5 (the quiet 2-thread rows of BENCHMARKS.md reach 3.3;
#   PyTorch's 2-thread p99 on a core shared with other work, 70-100).
_LOAD_SLACK_CORES = 0.5
_SPREAD_LIMIT = 5.0


def timing_noise(rows: Sequence[LatencyRow], *, cores: int, load_before: float | None) -> list[str]:
    """One line per reason the figures of ``rows`` may be inflated (thresholds above); empty
    when the machine looked quiet.

    Args:
        rows: the measured settings.
        cores: the cores the timed process may run on.
        load_before: the 1-minute load average as timing began (None: unknown, not checked).
    """
    warnings = []
    threads = max((row.threads for row in rows), default=1)
    if threads > cores:  # no quieter machine helps: the threads wait for each other
        warnings.append(
            f"{threads} threads timed on {cores} cores: they take turns on the cores, so "
            f"figures above {cores} thread(s) measure that, not the runtime"
        )
    elif load_before is not None and load_before + threads > cores + _LOAD_SLACK_CORES:
        warnings.append(
            f"the 1-minute load average was {load_before:.1f} as timing began: other work and "
            f"the {threads} thread(s) timed need more than the {cores} cores; figures may be "
            "inflated (time on an idle machine)"
        )
    spreads = [
        (p99 / p50, row, engine)
        for row in rows
        for engine, p50, p99 in (
            ("PyTorch", row.torch_p50_us, row.torch_p99_us),
            ("ONNX Runtime", row.onnx_p50_us, row.onnx_p99_us),
        )
        if p50 > 0 and p99 / p50 > _SPREAD_LIMIT
    ]
    if spreads:
        ratio, row, engine = max(spreads, key=lambda spread: spread[0])
        others = len({(r.list_size, r.threads) for _, r, _ in spreads}) - 1
        more = f"; {others} other setting(s) above {_SPREAD_LIMIT:g} too" if others else ""
        warnings.append(
            f"p99/p50 = {ratio:.1f} for {row.list_size} docs, {row.threads} thread(s) "
            f"({engine}{more}): noisy; figures may be inflated"
        )
    return warnings


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def load_average() -> float | None:
    """The 1-minute load average; None where the platform has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows has none
        return None


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
    data: LetorData | None = None,
    on_row: Callable[[LatencyRow], None] | None = None,
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
        seed: of the random slates.
        data: raw documents to draw the slates from (so the max |diff| column speaks of
            realistic inputs, as parity does); None draws N(0, 1) features.
        on_row: called with each row as soon as it is measured (progress for a long run).

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
                features = _slate(rng, size, n_features, data)
                rows.append(
                    _time_one(
                        session, reference, features, n_threads, matmul_weights, seconds, rounds
                    )
                )
                if on_row is not None:
                    on_row(rows[-1])
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
    if has_mask_input(session):
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
    t, o = run_torch(reference, features, mask), run_session(session, features, mask)
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
        rankings_identical=not ranking_violations(t, o, mask, TIE_ATOL, rtol=RTOL).any(),
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
    on_row: Callable[[LatencyRow], None] | None = None,
    on_start: Callable[[], None] | None = None,
) -> LatencyReport:
    """PyTorch eager vs ONNX Runtime on a bundle, per slate size and thread count.

    Args:
        bundle: a bundle folder written by :func:`ltr.lifecycle.export.export_bundle`.
        list_sizes: documents per one-query slate.
        threads: thread counts.
        checkpoint: the PyTorch model to compare with; default: the bundle's source
            checkpoint (``metadata.json`` ``source.checkpoint``), as it was at the export.
        seconds, rounds, on_row: as in :func:`measure_latency`.
        on_start: called once the bundle is verified and the PyTorch model loaded, before the
            first timing (a progress line then never precedes an error about the inputs).

    Raises:
        BundleError: the bundle fails verification.
        DataNotFoundError: the source checkpoint is gone (give ``checkpoint``).
        BundleError: the source checkpoint's sha256 is not the one the export recorded.
    """
    from ltr.lifecycle.bundle import read_bundle
    from ltr.lifecycle.onnx_graph import matmul_chain
    from ltr.lifecycle.source import load_exported_source, load_source

    verified = read_bundle(Path(bundle))
    if checkpoint is None:
        source = load_exported_source(verified.path, verified.metadata)
    else:
        source = load_source(checkpoint)
    if on_start is not None:
        on_start()
    load_before = load_average()
    rows = measure_latency(
        verified.onnx_path,
        source.reference(),
        n_features=verified.n_features,
        list_sizes=list_sizes,
        threads=threads,
        matmul_weights=matmul_chain(source.scorer),
        seconds=seconds,
        rounds=rounds,
        on_row=on_row,
    )
    precision = str(verified.metadata.get("onnx", {}).get("precision", "float32"))
    return LatencyReport(
        verified.path, precision, rows, available_cores(), load_before, load_average()
    )


def latency_line(row: LatencyRow) -> str:
    """``PyTorch p50 152us / ONNX Runtime p50 75us (2.0x faster) / max |diff| 3.1e-07 / ...``."""
    faster = f"{row.speedup:.1f}x faster" if row.speedup >= 1 else f"{1 / row.speedup:.1f}x slower"
    floor = "" if row.matmul_ratio is None else f" / {_ratio_text(row.matmul_ratio)} matmul floor"
    rankings = "rankings identical" if row.rankings_identical else "rankings DIFFER"
    return (
        f"{row.list_size} docs, {row.threads} thread(s): PyTorch p50 {row.torch_p50_us:,.0f}us / "
        f"ONNX Runtime p50 {row.onnx_p50_us:,.0f}us ({faster}){floor} / "
        f"max |diff| {row.max_abs_diff:.1e} / {rankings}"
    )


def _ratio_text(ratio: float) -> str:
    """``1.67x``, ``0.0041x``: two decimals, or two significant digits below 0.1, so a
    floor timed far too slow (a noisy machine) never reads as ``0.00x``."""
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.2g}x"


MATMUL_FLOOR_NOTE = (
    "matmul floor: the scorer's matrix products alone (NumPy, same threads; no bias, activation "
    "or normalization), the least work any runtime must do; 1.50x = ONNX Runtime takes 1.5 "
    "times as long"
)


LATENCY_COLUMNS = (
    "docs",
    "threads",
    "PyTorch p50 / p99 (us)",
    "ONNX Runtime p50 / p99 (us)",
    "speed-up",
    "matmul floor p50 (us)",
    "ORT / floor",
    "max abs diff",
    "rankings",
)


def latency_cells(row: LatencyRow) -> list[str]:
    """One row's cells under :data:`LATENCY_COLUMNS` (microseconds; ratios from one process)."""
    floor = "n/a" if row.matmul_p50_us is None else f"{row.matmul_p50_us:,.0f}"
    ratio = "n/a" if row.matmul_ratio is None else _ratio_text(row.matmul_ratio)
    return [
        f"{row.list_size:,}",
        str(row.threads),
        f"{row.torch_p50_us:,.0f} / {row.torch_p99_us:,.0f}",
        f"{row.onnx_p50_us:,.0f} / {row.onnx_p99_us:,.0f}",
        f"{row.speedup:.2f}x",
        floor,
        ratio,
        f"{row.max_abs_diff:.1e}",
        "identical" if row.rankings_identical else "DIFFER",
    ]


def format_latency_table(rows: Sequence[LatencyRow]) -> str:
    """A markdown table of the rows, for pasting into BENCHMARKS.md or an issue."""
    lines = [
        f"| {' | '.join(LATENCY_COLUMNS)} |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    lines += [f"| {' | '.join(latency_cells(row))} |" for row in rows]
    return "\n".join(lines)


def _slate(
    rng: np.random.Generator, size: int, n_features: int, data: LetorData | None
) -> np.ndarray:
    """``float32 [1, size, F]``: random rows of ``data``, or N(0, 1) features without it."""
    if data is not None and data.n_docs:
        rows = rng.integers(0, data.n_docs, size=(1, size))
        return np.asarray(data.features, dtype=np.float32)[rows]
    return rng.standard_normal((1, size, n_features)).astype(np.float32)
