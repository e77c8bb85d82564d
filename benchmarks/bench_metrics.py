"""Mean NDCG@10 over 10,000 queries x 100 documents: ltr (NumPy, torch) against ranx.

Single thread everywhere (NUMBA/OMP/MKL/OpenBLAS threads = 1, ``torch.set_num_threads(1)``,
ranx ``threads=1``), all implementations timed round-robin in one process, median of the
repeats. ranx is timed after a warm-up call (its numba kernels compile on first use), with its
``Qrels``/``Run`` built outside the timed region; ltr's inputs are likewise ready-made arrays.
``evaluate`` converts Qrels/Run to numba typed lists on every call, so a second ranx row times
its NDCG kernel alone on lists converted beforehand (the fastest ranx can be).

    .venv/bin/python benchmarks/bench_metrics.py [--queries 10000] [--docs 100] [--repeats 11]
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy / numba / torch start their thread pools

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from ranx import Qrels, Run, evaluate  # noqa: E402
from ranx.metrics import ndcg as ranx_ndcg  # noqa: E402
from ranx.metrics import ndcg_burges as ranx_ndcg_burges  # noqa: E402

from ltr.metrics import ndcg  # noqa: E402

CUTOFF = 10


def make_batch(queries: int, docs: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, (queries, docs)).astype(np.float64)  # graded 0-4
    return rng.random((queries, docs)), labels, np.ones((queries, docs), dtype=bool)


def ranx_inputs(scores: np.ndarray, labels: np.ndarray) -> tuple[Qrels, Run]:
    ids = [f"q{q:06d}" for q in range(scores.shape[0])]
    docs = [f"d{d}" for d in range(scores.shape[1])]
    qrels = {
        qid: dict(zip(docs, map(int, row), strict=True))
        for qid, row in zip(ids, labels, strict=True)
    }
    run = {
        qid: dict(zip(docs, map(float, row), strict=True))
        for qid, row in zip(ids, scores, strict=True)
    }
    return Qrels(qrels), Run(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # ranx's numba kernels warn about an int cast when compiling

    scores, labels, mask = make_batch(args.queries, args.docs, args.seed)
    tensors = [torch.from_numpy(x) for x in (scores, labels, mask)]
    qrels, run = ranx_inputs(scores, labels)
    contenders: dict[str, tuple[str, Callable[[], float]]] = {}
    for gain, ranx_name in (("linear", f"ndcg@{CUTOFF}"), ("exp2", f"ndcg_burges@{CUTOFF}")):
        contenders[f"ranx `evaluate(qrels, run, '{ranx_name}')`"] = (
            gain,
            _ranx(qrels, run, ranx_name),
        )
        kernel = ranx_ndcg if gain == "linear" else ranx_ndcg_burges
        contenders[f"ranx kernel only, `{kernel.__name__}` on prebuilt typed lists"] = (
            gain,
            _ranx_kernel(kernel, qrels.to_typed_list(), run.to_typed_list()),
        )
        contenders[f"ltr NumPy, gain={gain}"] = (gain, _ltr(scores, labels, mask, gain))
        contenders[f"ltr torch, gain={gain}"] = (gain, _ltr(*tensors, gain))

    values = {name: fn() for name, (_, fn) in contenders.items()}  # warm-up (ranx JIT)
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.repeats):
        for name, (_, fn) in contenders.items():  # round-robin: drift hits everyone alike
            start = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - start)

    median = {name: statistics.median(times) for name, times in seconds.items()}
    print(f"`{' '.join([os.path.basename(sys.executable), *sys.argv])}`\n")
    print(
        f"Mean NDCG@{CUTOFF}, {args.queries:,} queries x {args.docs} documents, 1 thread, "
        f"median of {args.repeats} (ratio = ranx time / this time, same gain)\n"
    )
    print(
        "| implementation | median ms | min ms | speed-up vs ranx | mean NDCG@10 | diff vs ranx |"
    )
    print("|---|---|---|---|---|---|")
    for name, (gain, _) in contenders.items():
        reference = next(n for n, (g, _) in contenders.items() if g == gain and "evaluate" in n)
        print(
            f"| {name} | {median[name] * 1e3:.1f} | {min(seconds[name]) * 1e3:.1f} "
            f"| {median[reference] / median[name]:.2f}x | {values[name]:.12f} "
            f"| {abs(values[name] - values[reference]):.1e} |"
        )


def _ranx(qrels: Qrels, run: Run, metric: str) -> Callable[[], float]:
    return lambda: float(evaluate(qrels, run, metric, threads=1, save_results_in_run=False))


def _ranx_kernel(
    kernel: Callable[..., np.ndarray], qrels: object, run: object
) -> Callable[[], float]:
    return lambda: float(kernel(qrels, run, CUTOFF).mean())


def _ltr(scores: object, labels: object, mask: object, gain: str) -> Callable[[], float]:
    return lambda: float(ndcg(scores, labels, mask, CUTOFF, gain=gain).mean())  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
