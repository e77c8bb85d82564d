"""ONNX Runtime vs PyTorch eager latency of exported MLP bundles, and the int8 variant's gate.

    python benchmarks/bench_onnx.py [--features 46,136] [--threads 1,2] [--seconds 2]

For each feature count: synthetic LETOR data (300 queries), an MLP [512, 256, 128] trained for
3 epochs (briefly: the weights only need to be real enough for the int8 NDCG@10 gate; latency
does not depend on them), ``ltr export`` as float32 and as int8, then ``ltr benchmark-onnx``
(one query of 10 / 100 / 1,000 documents; PyTorch eager, ONNX Runtime and the bare float32
matrix products x @ W1.T @ W2.T @ W3.T @ w_out.T in NumPy, biases and ReLUs skipped), all timed
interleaved in one process. Targets: float32 >= 2x eager at 10 documents and <= 1.2x the matrix
products at 100 and 1,000; int8 >= 2x eager at 100 documents, shipped only if NDCG@10 moves by
<= 0.002.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from ltr.config import load_config
from ltr.data.synthetic import write_synthetic
from ltr.errors import ExportError
from ltr.lifecycle.export import export_bundle
from ltr.lifecycle.latency import LatencyRow, benchmark_latency, latency_line
from ltr.lifecycle.quantize import QuantizationReport
from ltr.training import run_experiment


def train(root: Path, n_features: int) -> Path:
    write_synthetic(root / "data", n_queries=300, n_features=n_features, seed=0, max_docs=40)
    config = {
        "experiment": {"name": f"bench-onnx-{n_features}"},
        "data": {"root": str(root / "data"), "normalization": "standard"},
        "model": {"name": "mlp", "hidden_dims": [512, 256, 128], "dropout": 0.1},
        "loss": {"name": "lambdarank"},
        "training": {"num_epochs": 3, "batch_size": 32, "device": "cpu", "seed": 0},
        "tracking": {"output_dir": str(root / "runs"), "tensorboard": False, "mlflow": False},
    }
    (root / "config.yaml").write_text(json.dumps(config), encoding="utf-8")
    return run_experiment(load_config(root / "config.yaml", []), quiet=True)


def table_rows(label: str, rows: list[LatencyRow]) -> list[str]:
    out = []
    for row in rows:
        floor = "n/a" if row.matmul_p50_us is None else f"{row.matmul_p50_us:,.0f}"
        ratio = "n/a" if row.matmul_ratio is None else f"{row.matmul_ratio:.2f}x"
        out.append(
            f"| {label} | {row.list_size:,} | {row.threads} | {row.torch_p50_us:,.0f} | "
            f"{row.onnx_p50_us:,.0f} | {row.onnx_p99_us:,.0f} | {row.speedup:.2f}x | {floor} | "
            f"{ratio} | {row.max_abs_diff:.1e} |"
        )
    return out


def gate_row(n_features: int, q: QuantizationReport, rows: list[LatencyRow]) -> str:
    at_100 = {row.threads: row for row in rows if row.list_size == 100}
    speed = ", ".join(
        f"{t} thr {row.torch_p50_us:,.0f} -> {row.onnx_p50_us:,.0f} us ({row.speedup:.2f}x)"
        for t, row in sorted(at_100.items())
    )
    verdict = "shipped" if q.passed else "refused"
    return (
        f"| {n_features} | {q.float32:.4f} | {q.int8:.4f} | {q.move:+.4f} | {verdict} | "
        f"{q.queries_same_order}/{q.queries} ({q.queries_same_order / q.queries:.0%}) | "
        f"{q.kendall_tau:.4f} | {q.max_abs_diff:.1e} | {speed or 'n/a'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", default="46,136")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    lines = [
        "| bundle | docs | threads | PyTorch p50 (us) | ORT p50 (us) | ORT p99 (us) | speed-up "
        "| matmul floor p50 (us) | ORT / floor | max abs diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    gates = [
        "| features | NDCG@10 float32 | NDCG@10 int8 | move (limit 0.002) | gate | queries in "
        "float32's order | mean Kendall tau | max abs diff | 100 docs: eager -> int8 p50 |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    refused = []
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        os.environ.setdefault("LTR_CACHE_DIR", str(Path(tmp) / "cache"))
        for n_features in (int(f) for f in args.features.split(",")):
            root = Path(tmp) / str(n_features)
            run_dir = train(root, n_features)
            variants = {"float32": None, "int8": "int8"}
            for precision, quantize in variants.items():
                out = root / f"bundle-{precision}"
                try:
                    report = export_bundle(run_dir, out, quantize=quantize)  # type: ignore[arg-type]
                except ExportError as error:
                    refused.append(f"- {n_features} features, {precision}: refused: {error}")
                    continue
                latency = benchmark_latency(out, threads=threads, seconds=args.seconds)
                label = f"MLP {n_features}f {precision}"
                lines += table_rows(label, latency.rows)
                if report.quantization is not None:
                    gates.append(gate_row(n_features, report.quantization, latency.rows))
                for row in latency.rows:
                    print(f"{label}: {latency_line(row)}", file=sys.stderr)
                for warning in latency.noise_warnings():  # such figures must not reach the page
                    print(f"{label}: warning: {warning}", file=sys.stderr)
    print(f"`python benchmarks/bench_onnx.py --features {args.features} --threads "
          f"{args.threads} --seconds {args.seconds}`\n")  # fmt: skip
    print("\n".join(lines))
    print("\nint8 gate (ltr export --quantize int8; test file of the synthetic run):\n")
    print("\n".join(gates + refused))


if __name__ == "__main__":
    main()
