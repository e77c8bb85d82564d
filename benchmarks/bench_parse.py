"""Parse speed and memory of ``ltr.data.letor`` against scikit-learn's ``load_svmlight_file``.

Cases: MQ2008 Fold1 train (gzip; both readers decompress) and a generated 200,000-line x
136-feature dense LETOR file with 6-decimal values (like MSLR-WEB), plain text. Both readers get
the same path, in the same process, one thread; each figure is the median of ``--repeat`` runs.
Peak memory is ``tracemalloc``'s peak traced bytes during one ``read_letor`` call (numpy
allocations are traced; the interpreter's own baseline is excluded), divided by the bytes of the
resulting float32 feature array (the issue's limit: 3x), and also by the bytes of all result
arrays (features + labels + query offsets + doc ids). The cache reload includes its CRC check.

    .venv/bin/python benchmarks/bench_parse.py [--data-dir ../shared/data] [--repeat 5]
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"  # before numpy loads its BLAS

import argparse  # noqa: E402 (the thread limits above must come first)
import shlex  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.datasets import load_svmlight_file  # noqa: E402

from _shared_data import default_data_dir  # noqa: E402
from ltr.data.letor import load_letor, read_letor  # noqa: E402

MIB = 2.0**20


def median_seconds(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_bytes(run: Callable[[], object]) -> tuple[int, object]:
    tracemalloc.start()
    try:
        result = run()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def make_synthetic(path: Path, n_rows: int = 200_000, n_features: int = 136) -> None:
    """Dense LETOR lines, 100 documents a query, values with 6 decimals."""
    rng = np.random.default_rng(0)
    row_format = "%d qid:%d " + " ".join(f"{j}:%.6f" for j in range(1, n_features + 1)) + "\n"
    with open(path, "w") as handle:
        for start in range(0, n_rows, 10_000):
            values = rng.random((10_000, n_features))
            labels = rng.integers(0, 5, 10_000)
            handle.writelines(
                row_format % (labels[i], (start + i) // 100, *values[i]) for i in range(10_000)
            )


def measure(name: str, path: Path, repeat: int, cache_dir: Path) -> dict[str, float | str]:
    sklearn_s = median_seconds(lambda: load_svmlight_file(str(path), query_id=True), repeat)
    ltr_s = median_seconds(lambda: read_letor(path), repeat)
    peak, data = peak_bytes(lambda: read_letor(path))
    array_bytes = data.features.nbytes  # type: ignore[attr-defined]
    result_bytes = sum(
        0 if array is None else array.nbytes
        for array in (data.features, data.labels, data.query_offsets, data.doc_ids)  # type: ignore[attr-defined]
    )
    load_letor(path, cache_dir=cache_dir)  # fills the cache
    reload_s = median_seconds(lambda: load_letor(path, cache_dir=cache_dir), repeat)
    return {
        "case": name,
        "sklearn_s": sklearn_s,
        "ltr_s": ltr_s,
        "speedup": sklearn_s / ltr_s,
        "peak_mib": peak / MIB,
        "array_mib": array_bytes / MIB,
        "peak_ratio": peak / array_bytes,
        "result_mib": result_bytes / MIB,
        "peak_result_ratio": peak / result_bytes,
        "reload_s": reload_s,
        "reload_speedup": ltr_s / reload_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="the shared data folder, MQ2008 skipped if missing (default: $LTR_SHARED_DATA, "
        "else ../shared/data beside the repository)",
    )
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = Path(scratch)
        mq2008 = args.data_dir / "mq2008" / "Fold1" / "train.txt.gz"
        if mq2008.is_file():
            rows.append(
                measure(
                    "MQ2008 Fold1 train (.gz, 9630 x 46)", mq2008, args.repeat, scratch_dir / "c1"
                )
            )
        else:
            print(f"skipping MQ2008: {mq2008} not found", file=sys.stderr)
        synthetic = scratch_dir / "synthetic.txt"
        make_synthetic(synthetic)
        size_mib = synthetic.stat().st_size / MIB
        rows.append(
            measure(
                f"synthetic dense (200000 x 136, {size_mib:.0f} MiB text)",
                synthetic,
                args.repeat,
                scratch_dir / "c2",
            )
        )
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    print(f"command: {command}  (1 thread, medians of {args.repeat})")
    print(
        "peak = tracemalloc peak traced bytes during one read_letor call; peak/features = peak /"
        " bytes of the float32 feature array (limit 3x); peak/result = peak / bytes of features"
        " + labels + query offsets + doc ids. Cache reload includes the CRC-32 check.\n"
    )
    print(
        "| case | sklearn s | ltr s | sklearn/ltr | ltr peak MiB | features MiB | peak/features"
        " | result MiB | peak/result | cache reload s | parse/reload |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['sklearn_s']:.3f} | {r['ltr_s']:.3f} | {r['speedup']:.1f}x"
            f" | {r['peak_mib']:.1f} | {r['array_mib']:.1f} | {r['peak_ratio']:.2f}"
            f" | {r['result_mib']:.1f} | {r['peak_result_ratio']:.2f}"
            f" | {r['reload_s']:.4f} | {r['reload_speedup']:.0f}x |"
        )


if __name__ == "__main__":
    main()
