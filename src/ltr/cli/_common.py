"""What every `ltr` command shares: the console, option types, output helpers."""

from __future__ import annotations

import json
import math
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from ltr.errors import ConfigError, UsageError

# soft_wrap: a long line (a path) reaches a pipe whole; no markup: [brackets] in text print as is
stdout = Console(soft_wrap=True, markup=False)


def print_table(table: RenderableType) -> None:
    """A rich table: fitted to a terminal's width; whole, as wide as its cells need, in a pipe
    or file (rich would wrap its cells at ``COLUMNS``, 80 by default). A title or caption wider
    than the table is printed as a line of its own (rich would wrap it at the table's width)."""
    natural = stdout.measure(table, options=stdout.options.update_width(10_000)).maximum
    title, caption = _texts_wider_than(table, natural)
    if title is not None:
        stdout.print(Text(title), highlight=False)
    if stdout.is_terminal:
        stdout.print(table, soft_wrap=False)  # soft wrap would leave captions uncentred
    else:
        sys.stdout.write(_table_text(table, natural))
    if caption is not None:
        stdout.print(Text(caption), highlight=False)


def log_table(table: RenderableType) -> None:
    """``table`` as :func:`print_table` prints it into a file, but into the command's own log
    alone (``cv.log``): a quiet command keeps there what it does not show."""
    from ltr._console_log import log_command_lines

    natural = stdout.measure(table, options=stdout.options.update_width(10_000)).maximum
    title, caption = _texts_wider_than(table, natural)
    text = _table_text(table, natural).rstrip("\n")
    log_command_lines("\n".join(filter(None, [title, text, caption])))


def _table_text(table: RenderableType, natural: int) -> str:
    """``table`` as plain lines, as wide as its cells need (at least the console's width)."""
    console = stdout
    if natural > console.width:
        console = Console(width=natural, markup=False)
    with console.capture() as captured:
        console.print(table, soft_wrap=False)
    # rich pads the title and caption to the table's width: no trailing blanks in a file
    return "".join(line.rstrip() + "\n" for line in captured.get().splitlines())


def _texts_wider_than(table: RenderableType, width: int) -> tuple[str | None, str | None]:
    """The table's plain-string title and caption that do not fit ``width``, taken out of it."""
    if not isinstance(table, Table):
        return None, None
    title, caption = None, None
    if isinstance(table.title, str) and len(table.title) > width:
        title, table.title = table.title, None
    if isinstance(table.caption, str) and len(table.caption) > width:
        caption, table.caption = table.caption, None
    return title, caption


def print_path(path: Path) -> None:
    """A command's result that is a path, alone on its line: ``x=$(ltr ... --quiet)`` takes it."""
    sys.stdout.write(f"{path}\n")
    sys.stdout.flush()


DEFAULT_METRICS = "ndcg@1,ndcg@5,ndcg@10,map,mrr"


class Gain(str, Enum):
    exp2 = "exp2"
    linear = "linear"


class NoRelevant(str, Enum):
    zero = "zero"
    one = "one"
    skip = "skip"


class Preset(str, Enum):
    letor = "letor"
    lightgbm = "lightgbm"
    trec_eval = "trec_eval"


MetricsOpt = Annotated[
    str,
    typer.Option(
        "--metrics",
        metavar="NAMES",
        # the default in words: one 30-character token would be cut in an 80-column help
        show_default=False,
        help="Comma-separated metric names, e.g. ndcg@10,map,mrr@10 "
        f"(default: {DEFAULT_METRICS.replace(',', ', ')}).",
    ),
]
GainOpt = Annotated[
    Gain | None,
    typer.Option(
        "--gain",
        help="NDCG gain: exp2 (2^rel-1) or linear (rel); default: the preset's, else exp2.",
    ),
]
NoRelevantOpt = Annotated[
    NoRelevant | None,
    typer.Option(
        "--no-relevant",
        help="Value of a query without a relevant document: zero, one or skip (left out); "
        "default: the preset's, else zero.",
    ),
]
MaxLabelOpt = Annotated[
    float | None,
    typer.Option(
        "--max-label",
        metavar="N",
        help="ERR's highest grade: its stop chance is 1 - 2^-N, a larger label is refused; "
        "default 4.",
    ),
]
PresetOpt = Annotated[
    Preset | None,
    typer.Option(
        "--preset",
        metavar="NAME",
        help="A named convention set: letor (reproduces Eval-Score-4.0.pl), lightgbm or trec_eval.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]


class OutputFormat(str, Enum):
    table = "table"
    markdown = "markdown"  # for pasting into BENCHMARKS.md or an issue
    json = "json"


FormatOpt = Annotated[
    OutputFormat, typer.Option("--format", help="table | markdown | json (one object).")
]


def metric_names(text: str) -> list[str]:
    """The names of ``--metrics``, each checked; a bad one is bad usage, named as the option."""
    from ltr.metrics import parse_metric_name

    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UsageError("--metrics: name at least one metric, e.g. ndcg@10,map")
    for name in names:
        try:
            parse_metric_name(name)  # fails early, with the list of valid names
        except ConfigError as error:
            raise UsageError(f"--metrics: {error}") from None
    return names


def conventions_from(
    gain: Gain | None,
    no_relevant: NoRelevant | None,
    preset: Preset | None,
    max_label: float | None = None,
) -> dict[str, Any]:
    """Only what the user set: a preset fills the rest, explicit options override it.

    Raises:
        UsageError: ``--max-label`` is not a finite number > 0.
    """
    chosen = {"gain": gain, "no_relevant": no_relevant, "preset": preset}
    conventions: dict[str, Any] = {
        key: value.value for key, value in chosen.items() if value is not None
    }
    if max_label is not None:
        if not 0 < max_label < math.inf:  # NaN fails both comparisons
            raise UsageError(f"--max-label: must be a finite number > 0; got {max_label}")
        # 5, not 5.0, in the caption and the JSON, as the default 4
        conventions["max_label"] = int(max_label) if max_label.is_integer() else max_label
    return conventions


def conventions_caption(conventions: dict[str, Any]) -> str:
    """The conventions in force, so a number is never read without them."""
    from ltr.metrics import PRESETS, conventions_in_force

    preset = conventions.get("preset")
    resolved = conventions_in_force(**conventions)
    # gain and no_relevant always; a preset names every convention it sets
    keys = dict.fromkeys(["gain", "no_relevant", *PRESETS.get(preset or "", {}), *conventions])
    keys.pop("preset", None)
    shown = ", ".join(f"{key}={resolved[key]}" for key in keys)
    return f"preset={preset}: {shown}" if preset else shown


def write_per_query(path: Path, query_ids: np.ndarray, per_query: dict[str, np.ndarray]) -> None:
    from ltr._fs import atomic_open

    with atomic_open(path) as handle:
        handle.write("\t".join(["qid", *per_query]) + "\n")
        for q, qid in enumerate(query_ids):
            handle.write("\t".join([str(qid), *(repr(float(v[q])) for v in per_query.values())]))
            handle.write("\n")


def counts_text(counts: dict[str, int], total: int) -> str:
    return ", ".join(f"{key}: {n:,} ({n / total:.1%})" for key, n in counts.items())


def fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def print_json(obj: Any) -> None:
    """Exactly one JSON object on stdout; NaN (skipped queries only) becomes null."""
    sys.stdout.write(json.dumps(_nan_to_none(obj), sort_keys=False) + "\n")


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {key: _nan_to_none(value) for key, value in obj.items()}
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def check_version_option(version: str | None) -> None:
    """``--version`` of ``ltr export`` and ``ltr promote``: ``X.Y.Z`` or not given; else bad
    usage (exit 2) naming the option, told before anything loads."""
    from ltr.lifecycle.bundle import version_problem

    problem = None if version is None else version_problem(version)
    if problem is not None:
        raise UsageError(f"--version: {problem}")


def secondary_torchrun_process() -> bool:
    """A torchrun process other than rank 0: it keeps quiet about what rank 0 says for all."""
    return os.environ.get("RANK", "0") != "0"


def warn(message: str) -> None:
    line = Text.assemble(("warning:", "yellow"), f" {message}")
    Console(stderr=True).print(line, highlight=False, soft_wrap=True)


def progress(message: str) -> None:
    """A line on stderr while a long command works, so stdout keeps only its result."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
