"""`ltr export` and `ltr benchmark-onnx`: ONNX bundles and how fast they run."""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ltr.cli._common import (
    FormatOpt,
    OutputFormat,
    check_version_option,
    print_json,
    print_table,
    progress,
    stdout,
    warn,
)
from ltr.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from ltr.lifecycle.latency import LatencyReport  # imports onnxruntime: benchmark-onnx only
    from ltr.lifecycle.parity import ParityReport


class Quantize(str, Enum):
    int8 = "int8"


def export(
    model: Annotated[
        Path,
        typer.Option("--model", metavar="RUN_DIR", help="A run directory or a checkpoint .pt."),
    ],
    output: Annotated[
        Path, typer.Option("--output", metavar="DIR", help="The bundle folder to create.")
    ],
    version: Annotated[
        str, typer.Option("--version", metavar="X.Y.Z", help="Bundle version X.Y.Z.")
    ] = "1.0.0",
    opset: Annotated[
        int | None,
        typer.Option("--opset", help="ONNX opset, 18 or later (default: the exporter's)."),
    ] = None,
    quantize: Annotated[
        Quantize | None,
        typer.Option("--quantize", help="int8: ship dynamic int8 if NDCG@10 moves <= 0.002."),
    ] = None,
    test_data: Annotated[
        Path | None,
        typer.Option(
            "--test-data",
            metavar="FILE",
            help="LETOR file for the parity check (default: run's test).",
        ),
    ] = None,
) -> None:
    """Export a trained model to an ONNX bundle; checks parity with PyTorch or writes nothing."""
    from ltr.lifecycle.export import export_bundle
    from ltr.lifecycle.latency import MATMUL_FLOOR_NOTE, latency_line
    from ltr.lifecycle.onnx_graph import check_opset

    # bad option values are bad usage (exit 2), told before anything loads
    check_version_option(version)
    try:
        check_opset(opset)
    except ConfigError as error:  # "--opset: must be between ..."
        raise UsageError(str(error)) from None
    report = export_bundle(
        model,
        output,
        version=version,
        opset=opset,
        quantize=None if quantize is None else quantize.value,
        test_data=test_data,
    )
    parity = report.parity
    inputs = "; ".join(
        f"{spec['name']} {spec['dtype']} [{', '.join(map(str, spec['shape']))}]"
        for spec in report.inputs
    )
    lines = [
        f"wrote {report.output} (version {report.version}, {report.precision}, "
        f"opset {report.opset})",
        f"inputs: {inputs}",
        f"parity: max |diff| {parity.max_abs_diff:.1e} (relative {parity.max_relative_diff:.1e}; "
        f"limit {parity.atol:g} + {parity.rtol:g} * max |score|), {_rankings(parity)}, "
        f"metrics identical (max diff {parity.metrics_max_diff:.1e})",
    ]
    if report.quantization is not None:
        q = report.quantization
        lines.append(
            f"int8: test {q.metric} {q.float32:.4f} -> {q.int8:.4f} ({q.move:+.4f}); "
            f"{q.queries_same_order}/{q.queries} queries in the same order, mean Kendall tau "
            f"{q.kendall_tau:.4f}"
        )
    lines += [latency_line(row) for row in report.latency]
    if any(row.matmul_ratio is not None for row in report.latency):
        lines.append(MATMUL_FLOOR_NOTE)  # "1.67x matmul floor" means nothing unexplained
    for line in lines:  # markup=False: rich would take "[batch, list_len, 46]" for a style tag
        stdout.print(line, markup=False, highlight=False, soft_wrap=True)
    for line in report.latency_noise:  # the model card says so too
        warn(f"latency at export: {line}")


def _int_list(text: str, option: str, example: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{option}: expected comma-separated integers; got {text!r}") from None
    if not values or any(value < 1 for value in values):
        raise UsageError(f"{option}: expected positive integers, e.g. {example}; got {text!r}")
    return values


def benchmark_onnx(
    model: Annotated[
        Path,
        typer.Option("--model", metavar="BUNDLE_DIR", help="A bundle folder written by export."),
    ],
    list_sizes: Annotated[
        str, typer.Option("--list-sizes", metavar="N,N,...", help="Documents per one-query slate.")
    ] = "10,100,1000",
    threads: Annotated[
        str, typer.Option("--threads", metavar="N,N,...", help="Thread counts.")
    ] = "1,2",
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            metavar="FILE",
            help="PyTorch model to compare (default: bundle's source).",
        ),
    ] = None,
    seconds: Annotated[
        float, typer.Option("--seconds", help="Time budget per engine and setting.")
    ] = 2.0,
    fmt: FormatOpt = OutputFormat.table,
    as_json: Annotated[bool, typer.Option("--json", help="The same as --format json.")] = False,
) -> None:
    """PyTorch eager vs ONNX Runtime latency (p50/p99) per slate size and thread count."""
    from ltr.lifecycle.latency import LatencyRow, benchmark_latency, format_latency_table

    if not 0 < seconds < math.inf:  # NaN fails both comparisons; inf would never stop
        raise UsageError(f"--seconds: must be a finite number > 0; got {seconds}")
    if as_json and fmt is OutputFormat.markdown:
        raise UsageError("--json and --format markdown: give one of them")
    fmt = OutputFormat.json if as_json else fmt
    sizes = _int_list(list_sizes, "--list-sizes", example="10,100")
    thread_counts = _int_list(threads, "--threads", example="1,2")
    settings = len(sizes) * len(thread_counts)
    done = iter(range(1, settings + 1))

    def report_start() -> None:  # three engines per setting, each for about --seconds
        progress(f"timing {settings} settings, about {3 * seconds * settings:.0f} s")

    def report_row(row: LatencyRow) -> None:
        progress(
            f"[{next(done)}/{settings}] {row.list_size} docs, {row.threads} thread(s): "
            f"ONNX Runtime p50 {row.onnx_p50_us:,.0f}us"
        )

    report = benchmark_latency(
        model,
        list_sizes=sizes,
        threads=thread_counts,
        checkpoint=checkpoint,
        seconds=seconds,
        on_row=report_row,
        on_start=report_start,
    )
    if fmt is OutputFormat.json:
        print_json(report.to_dict())
    elif fmt is OutputFormat.markdown:
        stdout.print(_title(report), markup=False, highlight=False)
        stdout.print(format_latency_table(report.rows), markup=False, highlight=False)
    else:  # the table only: the same figures again as lines would double the output
        print_table(_latency_table(report))
    for line in report.noise_warnings():  # last, where a reader's eye ends up
        warn(line)


def _title(report: LatencyReport) -> str:
    """``bundle (float32; 1-minute load average 0.31 -> 1.62 on 2 cores)``."""
    return f"{report.bundle} ({report.precision}; {report.conditions()})"


def _latency_table(report: LatencyReport) -> Table:
    from ltr.lifecycle.latency import LATENCY_COLUMNS, MATMUL_FLOOR_NOTE, latency_cells

    floors = any(row.matmul_ratio is not None for row in report.rows)
    table = Table(
        title=_title(report),
        caption=MATMUL_FLOOR_NOTE if floors else None,  # "ORT / floor" means nothing unexplained
        title_justify="left",
        caption_justify="left",
    )
    for column in LATENCY_COLUMNS:
        table.add_column(column, justify="left" if column == "rankings" else "right")
    for row in report.rows:
        table.add_row(*latency_cells(row))
    return table


def _rankings(parity: ParityReport) -> str:
    if parity.near_tie_swaps == 0:
        return "rankings identical"
    return (
        f"rankings identical apart from {parity.near_tie_swaps} near-tied pairs (within "
        f"{parity.tie_tolerance:g} + {parity.rtol:g} * max |score|)"
    )
