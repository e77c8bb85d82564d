"""`ltr data synth` and `ltr data inspect`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ltr.cli._common import JsonOpt, counts_text, print_json, print_table, stdout

# ltr.data.synthetic.MIN_QUERIES, not imported here: it pulls in torch (a test keeps them equal)
MIN_QUERIES = 4


def synth(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Folder for train.txt, vali.txt, test.txt, info.json and README.md.",
        ),
    ],
    queries: Annotated[
        int, typer.Option("--queries", min=MIN_QUERIES, help="Queries over all splits.")
    ] = 600,
    features: Annotated[int, typer.Option("--features", min=7, help="Features per document.")] = 20,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed; same seed, same files.")] = 0,
) -> None:
    """Write synthetic LETOR data with a known, learnable relevance function."""
    from ltr.data.synthetic import write_synthetic

    paths = write_synthetic(out, n_queries=queries, n_features=features, seed=seed)
    for split, path in paths.items():
        stdout.print(f"{split:>6}: {path}")


def inspect(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="A LETOR/SVMlight file (plain or .gz).")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Queries, documents, labels, list lengths, empty queries and constant features of a file."""
    from ltr.data.letor import load_letor
    from ltr.data.summary import summarize

    summary = summarize(load_letor(file))
    if as_json:
        print_json(summary.to_dict())
        return
    table = Table(title=str(file), show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("queries", f"{summary.n_queries:,}")
    table.add_row("documents", f"{summary.n_docs:,}")
    table.add_row("features", f"{summary.n_features:,}")
    table.add_row("labels", counts_text(summary.label_counts, summary.n_docs))
    lengths = summary.list_length
    table.add_row("docs per query", ", ".join(f"{k} {v:.4g}" for k, v in lengths.items()))
    table.add_row("length histogram", counts_text(summary.list_length_histogram, summary.n_queries))
    table.add_row(
        "no relevant doc", f"{summary.queries_without_relevant:,} queries (label >= 1 is relevant)"
    )
    table.add_row("shorter than 10", f"{summary.queries_shorter_than_10:,} queries")
    constant = ", ".join(map(str, summary.constant_features)) or "none"
    table.add_row("constant features", constant)
    table.add_row("doc ids", "yes" if summary.has_doc_ids else "no")
    print_table(table)
