"""`ltr compare`: finished runs side by side, with paired significance tests.

``ltr compare RUN_A RUN_B ...``, ``ltr compare CV_A CV_B ...`` (cv directories of ``ltr cv``:
the test queries of all folds pooled) or ``ltr compare --all [--dir experiments]``. The baseline
is ``--baseline RUN`` (a run folder, or a run's name under ``--dir``), else the first run named,
else (``--all``) the oldest run. stdout carries only the comparison (a rich table, a GitHub
markdown table, or exactly one JSON object); notes and "wrote FILE" lines go to stderr.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table
from rich.text import Text

from ltr.cli._common import FormatOpt, OutputFormat, print_json, print_table, warn
from ltr.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from ltr.experiments.compare import Comparison, RunRecord

HOLM = "p Holm"
STAR = "★"
Cell = TypeVar("Cell")  # a best value's cell: rich Text in the table, markdown text in --markdown


def compare(
    runs: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="RUN_DIR",
            help="Run directories (experiments/<id>), or cv directories of `ltr cv` (all of "
            "one kind: a cv pools its folds' test queries); the first is the baseline unless "
            "--baseline.",
        ),
    ] = None,
    all_runs: Annotated[
        bool, typer.Option("--all", help="Compare every finished run under --dir.")
    ] = False,
    directory: Annotated[
        Path, typer.Option("--dir", metavar="DIR", help="Where --all looks for runs.")
    ] = Path("experiments"),
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric",
            metavar="NAME",
            help="Metric of the paired tests and the curves (default: ndcg@10).",
        ),
    ] = None,
    metrics: Annotated[
        str, typer.Option("--metrics", metavar="NAMES", help="Comma-separated metrics to show.")
    ] = "ndcg@1,ndcg@5,ndcg@10,map,mrr",
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            help="Run the others are tested against: a run folder or its name under --dir "
            "(default: the first run given; with --all the oldest).",
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot", metavar="FILE", help="Write FILE.png (test metrics) and FILE-curves.png."
        ),
    ] = None,
    fmt: FormatOpt = OutputFormat.table,
    as_json: Annotated[bool, typer.Option("--json", help="The same as --format json.")] = False,
    resamples: Annotated[
        int, typer.Option("--resamples", min=1, help="Sign flips of the randomization test.")
    ] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the randomization test.")] = 0,
) -> None:
    """Compare runs: test metrics (best marked), paired tests against a baseline, plots."""
    from ltr.experiments.compare import compare_runs, scan_runs
    from ltr.experiments.cv_record import load_run_or_cv

    if all_runs == bool(runs):
        raise ConfigError("give run directories, or --all to compare every run under --dir")
    if as_json and fmt is OutputFormat.markdown:
        raise UsageError("--json and --format markdown: give one of them")
    fmt = OutputFormat.json if as_json else fmt
    notes: list[str] = []
    if all_runs:
        records, notes = scan_runs(directory)
    else:
        records = [load_run_or_cv(path) for path in runs or []]
    records, base = _with_baseline(records, baseline, directory)
    names = [name.strip().lower() for name in metrics.split(",") if name.strip()]
    comparison = compare_runs(
        records,
        metric=None if metric is None else metric.strip().lower(),
        metrics=names,
        baseline=base,
        n_resamples=resamples,
        seed=seed,
    )
    for note in [*notes, *comparison.notes]:
        warn(note)
    plots = _write_plots(comparison, plot) if plot is not None else []
    if fmt is OutputFormat.json:
        print_json({**comparison.to_dict(), "plots": [str(path) for path in plots]})
    elif fmt is OutputFormat.markdown:
        sys.stdout.write(markdown_table(comparison) + "\n")
    else:
        print_table(rich_table(comparison))
    for path in plots:
        sys.stderr.write(f"wrote {path}\n")


def rich_table(comparison: Comparison) -> Table:
    """The comparison as a rich table: the best value per metric bold with a star."""
    table = Table(
        title=_title(comparison),
        caption=_caption(comparison),
        title_justify="left",
        caption_justify="left",
    )
    headers = _headers(comparison)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i < 3 else "right", no_wrap=i == 0)
    for row in _rows(comparison, best=lambda text: Text(f"{text} {STAR}", style="bold")):
        table.add_row(*row)
    return table


def markdown_table(comparison: Comparison) -> str:
    """The comparison as a GitHub markdown table and a caption paragraph."""
    headers = _headers(comparison)
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(":---" if i < 3 else "---:" for i in range(len(headers))) + "|",
    ]
    for row in _rows(comparison, best=lambda text: f"**{text}** {STAR}"):
        lines.append("| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |")
    caption = _caption(comparison)
    return "\n".join([*lines, "", caption] if caption else lines)


def _headers(comparison: Comparison) -> list[str]:
    significance = [f"Δ {comparison.metric.upper()}", "p t-test", "p rand", HOLM, "W/T/L"]
    if not comparison.tests:  # one run: no test, and no column for one
        significance = []
    return ["Exp ID", "Model", "Loss", *(m.upper() for m in comparison.metrics), *significance]


def _rows(comparison: Comparison, *, best: Callable[[str], Cell]) -> list[list[str | Cell]]:
    """The table's cells; a best value goes through ``best`` (bold, starred)."""
    rows = []
    for run in comparison.runs:
        cells: list[str | Cell] = [run.run_id, run.model, run.loss]
        for name in comparison.metrics:
            text = _number(run.mean(name))
            starred = len(comparison.runs) > 1 and run.run_id in comparison.best[name]
            cells.append(best(text) if starred else text)
        test = comparison.tests.get(run.run_id)
        if test is None and comparison.tests:
            cells += ["baseline", "", "", "", ""]
        elif test is not None:
            wtl = test.win_tie_loss
            cells += [
                "n/a" if math.isnan(test.mean_diff) else f"{test.mean_diff:+.4f}",
                _p(test.t_test.p_value),
                _p(test.randomization.p_value),
                _p(test.p_randomization_holm),
                "n/a" if wtl is None else f"{wtl.wins}/{wtl.ties}/{wtl.losses}",
            ]
        rows.append(cells)
    return rows


def _title(comparison: Comparison) -> str:
    folds = comparison.baseline.folds
    kind = "cv" if folds else "run"
    title = f"{_count(len(comparison.runs), kind)} on {comparison.n_queries:,} test queries"
    return f"{title} of {_count(len(folds), 'fold')}" if folds else title


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _caption(comparison: Comparison) -> str:
    tests = next(iter(comparison.tests.values()), None)
    pairs = f" over {tests.n:,} paired queries" if tests is not None else ""
    pooled = (
        "Cvs: means and tests over the test queries of all folds pooled (cv.json's mean of "
        "fold means weights each fold alike instead). "
        if comparison.baseline.folds
        else ""
    )
    if not comparison.tests:  # one run: its note (stderr) says there is nothing to test
        return pooled.rstrip()
    if all(math.isnan(test.t_test.p_value) for test in comparison.tests.values()):
        return (
            f"{STAR} best per metric. {pooled}Baseline: {comparison.baseline.run_id}. "
            f"Δ = run - baseline on {comparison.metric}; paired tests n/a (see the note)."
        )
    return (
        f"{STAR} best per metric. {pooled}Baseline: {comparison.baseline.run_id}. "
        f"Δ = run - baseline on {comparison.metric}{pairs}; two-sided paired t-test and "
        f"randomization test ({comparison.n_resamples:,} sign flips, seed {comparison.seed}); "
        f"{HOLM}: randomization p adjusted with Holm-Bonferroni over "
        f"{len(comparison.tests)} comparison(s); W/T/L: queries where the run beats, ties, "
        "loses to the baseline."
    )


def _with_baseline(
    records: list[RunRecord], baseline: str | None, directory: Path
) -> tuple[list[RunRecord], int]:
    """The runs and the baseline's index; a baseline not among them is loaded and put first."""
    from ltr.experiments.cv_record import load_run_or_cv

    if baseline is None:
        return records, 0
    given = Path(baseline)
    for i, run in enumerate(records):
        if run.run_id == baseline or (given.is_dir() and run.path.resolve() == given.resolve()):
            return records, i
    path = given if given.is_dir() or not (directory / baseline).is_dir() else directory / baseline
    return [load_run_or_cv(path), *records], 0


def _write_plots(comparison: Comparison, path: Path) -> list[Path]:
    from ltr.experiments.plots import curves_path, plot_test_metrics, plot_training_curves

    if not path.suffix:  # --plot cmp means cmp.png, as the help says FILE.png
        path = path.with_name(f"{path.name}.png")
    return [
        plot_test_metrics(comparison.runs, path, metrics=comparison.metrics),
        plot_training_curves(comparison.runs, curves_path(path), metric=comparison.metric),
    ]


def _number(value: float) -> str:
    from ltr.experiments.compare import SHOWN_DECIMALS

    return "n/a" if math.isnan(value) else f"{value:.{SHOWN_DECIMALS}f}"


def _p(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"
