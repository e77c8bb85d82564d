"""The `ltr` command: parses options, calls the library, prints tables or JSON.

Thin on purpose: every command is a few calls into ``ltr``'s modules. Any :class:`LtrError`
reaches the user as one ``error: ...`` line on stderr and exit status 1 (``--debug`` shows the
traceback); bad usage exits 2.
"""

from __future__ import annotations

import json
import math
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from ltr import __version__
from ltr.errors import ConfigError, LtrError

app = typer.Typer(
    name="ltr",
    help="Learning to rank: data, training, evaluation, export and serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Create and inspect LETOR data files.", no_args_is_help=True)
app.add_typer(data_app, name="data")

stdout = Console()
_state = {"debug": False}

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
    str, typer.Option("--metrics", help="Comma-separated metric names, e.g. ndcg@10,map,mrr@10.")
]
GainOpt = Annotated[
    Gain | None, typer.Option("--gain", help="NDCG gain: exp2 (2^rel-1) or linear (rel).")
]
NoRelevantOpt = Annotated[
    NoRelevant | None,
    typer.Option(
        "--no-relevant", help="Value of a query without relevant document: zero|one|skip."
    ),
]
PresetOpt = Annotated[
    Preset | None,
    typer.Option("--preset", help="A named convention set; letor reproduces Eval-Score-4.0.pl."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    _state["debug"] = debug
    if version:
        stdout.print(f"ltr {__version__}")
        raise typer.Exit()


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option("--out", help="Folder for train.txt, vali.txt, test.txt.")],
    queries: Annotated[
        int, typer.Option("--queries", min=3, help="Queries over all splits.")
    ] = 600,
    features: Annotated[int, typer.Option("--features", min=7, help="Features per document.")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Seed; same seed, same files.")] = 0,
) -> None:
    """Write synthetic LETOR data with a known, learnable relevance function."""
    from ltr.data.synthetic import write_synthetic

    paths = write_synthetic(out, n_queries=queries, n_features=features, seed=seed)
    for split, path in paths.items():
        stdout.print(f"{split:>6}: {path}")


@data_app.command("inspect")
def data_inspect(
    file: Annotated[Path, typer.Argument(help="A LETOR/SVMlight file (plain or .gz).")],
    as_json: JsonOpt = False,
) -> None:
    """Queries, documents, labels, list lengths, empty queries and constant features of a file."""
    from ltr.data.letor import load_letor
    from ltr.data.summary import summarize

    summary = summarize(load_letor(file))
    if as_json:
        _print_json(summary.to_dict())
        return
    table = Table(title=str(file), show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("queries", f"{summary.n_queries:,}")
    table.add_row("documents", f"{summary.n_docs:,}")
    table.add_row("features", f"{summary.n_features:,}")
    table.add_row("labels", _counts_text(summary.label_counts, summary.n_docs))
    lengths = summary.list_length
    table.add_row("docs per query", ", ".join(f"{k} {v:.4g}" for k, v in lengths.items()))
    table.add_row(
        "length histogram", _counts_text(summary.list_length_histogram, summary.n_queries)
    )
    table.add_row(
        "no relevant doc", f"{summary.queries_without_relevant:,} queries (label >= 1 is relevant)"
    )
    table.add_row("shorter than 10", f"{summary.queries_shorter_than_10:,} queries")
    constant = ", ".join(map(str, summary.constant_features)) or "none"
    table.add_row("constant features", constant)
    table.add_row("doc ids", "yes" if summary.has_doc_ids else "no")
    stdout.print(table)


@app.command("evaluate")
def evaluate(
    data: Annotated[Path, typer.Option("--data", help="The judged LETOR file.")],
    scores: Annotated[
        Path | None, typer.Option("--scores", help="One score per data line (LightGBM/RankLib).")
    ] = None,
    run: Annotated[
        Path | None, typer.Option("--run", help="A TREC run file, matched by docid.")
    ] = None,
    metrics: MetricsOpt = DEFAULT_METRICS,
    gain: GainOpt = None,
    no_relevant: NoRelevantOpt = None,
    preset: PresetOpt = None,
    per_query: Annotated[
        Path | None, typer.Option("--per-query", help="Write per-query values to this TSV.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a ranking (scores or a TREC run) against a judged data file."""
    from ltr.data.letor import load_letor
    from ltr.data.runs import read_scores, read_trec_run
    from ltr.evaluation import evaluate_scores

    if (scores is None) == (run is None):
        raise ConfigError("give exactly one of --scores FILE or --run FILE")
    judged = load_letor(data)
    if scores is not None:
        values = read_scores(scores, expected=judged.n_docs)
    else:
        assert run is not None
        values, missing = read_trec_run(run, judged)
        if missing:
            _warn(f"{missing} judged documents are not in {run}; they rank last")
    names = _metric_names(metrics)
    conventions = _conventions(gain, no_relevant, preset)
    result = evaluate_scores(judged, values, names, **conventions)
    if per_query is not None:
        _write_per_query(per_query, result.query_ids, result.per_query)
    if as_json:
        _print_json(result.means)
        return
    table = Table(
        title=f"{data.name}: {judged.n_queries:,} queries",
        caption=_conventions_caption(conventions),
        title_justify="left",
    )
    for name in names:
        table.add_column(name, justify="right")
    table.add_row(*(_fmt(result.means[name]) for name in names))
    stdout.print(table)


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"
    auto = "auto"


class OutputFormat(str, Enum):
    scores = "scores"
    trec = "trec"


@app.command("train")
def train(
    config: Annotated[
        Path | None, typer.Option("--config", help="Experiment YAML (e.g. configs/default.yaml).")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Scorer: linear|mlp|transformer.")
    ] = None,
    loss: Annotated[str | None, typer.Option("--loss", help="Loss name, e.g. lambdarank.")] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a field: --set training.learning_rate=3e-4."),
    ] = None,
    device: Annotated[Device | None, typer.Option("--device", help="cpu|cuda|auto.")] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue this run from its last.pt.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No per-epoch lines.")] = False,
) -> None:
    """Train a scorer; writes a run directory with checkpoints, history and test metrics."""
    from ltr.config import load_config
    from ltr.training import load_run_config, run_experiment

    shortcuts = {"model.name": model, "loss.name": loss, "training.device": device}
    sets = [
        *(overrides or []),
        *(f"{k}={_value(v)}" for k, v in shortcuts.items() if v is not None),
    ]
    if resume is not None:
        if config is not None:
            raise ConfigError("--resume continues a run with its own config.yaml; drop --config")
        experiment = load_run_config(resume, sets)
    elif config is None:
        raise ConfigError("give --config FILE (e.g. configs/default.yaml) or --resume RUN_DIR")
    else:
        experiment = load_config(config, sets)
    run_experiment(experiment, resume=resume, quiet=quiet)  # prints the run dir and test metrics


@app.command("predict")
def predict(
    model: Annotated[Path, typer.Option("--model", help="A run directory or a checkpoint .pt.")],
    data: Annotated[Path, typer.Option("--data", help="The LETOR file to score.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the scores or run.")],
    fmt: Annotated[
        OutputFormat, typer.Option("--format", help="scores: one per line; trec: a TREC run.")
    ] = OutputFormat.scores,
) -> None:
    """Score a data file with a trained model; `ltr evaluate` reads the output."""
    from ltr.inference import predict_file

    path = predict_file(model, data, out, fmt.value)
    stdout.print(f"wrote {path}")


@app.command("baselines")
def baselines(
    train: Annotated[Path, typer.Option("--train", help="Picks the best single feature.")],
    test: Annotated[Path, typer.Option("--test", help="The file the baselines are scored on.")],
    metrics: MetricsOpt = DEFAULT_METRICS,
    gain: GainOpt = None,
    no_relevant: NoRelevantOpt = None,
    preset: PresetOpt = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random ranking.")] = 0,
    models: Annotated[
        list[Path] | None,
        typer.Option("--model", help="Also score this trained run or checkpoint (repeatable)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Random, best-single-feature (chosen on train) and ideal rankings of a test file,
    beside any trained models given with --model."""
    from ltr.baselines import evaluate_baselines
    from ltr.data.letor import load_letor
    from ltr.evaluation import evaluate_scores

    names = _metric_names(metrics)
    conventions = _conventions(gain, no_relevant, preset)
    test_data = load_letor(test)
    rows = evaluate_baselines(load_letor(train), test_data, names, seed=seed, **conventions)
    if models:
        from ltr.inference import Predictor

        ideal = rows.popitem()  # the ceiling stays the last row
        for path in models:
            scores = Predictor.load(path).score(test_data)
            rows[f"model: {path.name}"] = evaluate_scores(test_data, scores, names, **conventions)
        rows.update([ideal])
    if as_json:
        _print_json({label: evaluation.means for label, evaluation in rows.items()})
        return
    table = Table(
        title=f"baselines on {test.name}",
        caption=_conventions_caption(conventions),
        title_justify="left",
    )
    table.add_column("ranking")
    for name in names:
        table.add_column(name, justify="right")
    for label, evaluation in rows.items():
        table.add_row(label, *(_fmt(evaluation.means[name]) for name in names))
    stdout.print(table)


def _value(option: str | Enum) -> str:
    return option.value if isinstance(option, Enum) else option


def _metric_names(text: str) -> list[str]:
    from ltr.metrics import parse_metric_name

    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ConfigError("--metrics: name at least one metric, e.g. ndcg@10,map")
    for name in names:
        parse_metric_name(name)  # fails early, with the list of valid names
    return names


def _conventions(
    gain: Gain | None, no_relevant: NoRelevant | None, preset: Preset | None
) -> dict[str, Any]:
    """Only what the user set: a preset fills the rest, explicit options override it."""
    chosen = {"gain": gain, "no_relevant": no_relevant, "preset": preset}
    return {key: value.value for key, value in chosen.items() if value is not None}


def _conventions_caption(conventions: dict[str, Any]) -> str:
    """The conventions in force, so a number is never read without them."""
    from ltr.metrics import PRESETS

    preset = conventions.get("preset")
    resolved = {"gain": "exp2", "no_relevant": "zero", **PRESETS.get(preset or "", {})}
    resolved.update({k: v for k, v in conventions.items() if k != "preset"})
    shown = ", ".join(f"{key}={resolved[key]}" for key in ("gain", "no_relevant"))
    return f"preset={preset}: {shown}" if preset else shown


def _write_per_query(path: Path, query_ids: np.ndarray, per_query: dict[str, np.ndarray]) -> None:
    from ltr._fs import atomic_open

    with atomic_open(path) as handle:
        handle.write("\t".join(["qid", *per_query]) + "\n")
        for q, qid in enumerate(query_ids):
            handle.write("\t".join([str(qid), *(repr(float(v[q])) for v in per_query.values())]))
            handle.write("\n")


def _counts_text(counts: dict[str, int], total: int) -> str:
    return ", ".join(f"{key}: {n:,} ({n / total:.1%})" for key, n in counts.items())


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def _print_json(obj: Any) -> None:
    """Exactly one JSON object on stdout; NaN (skipped queries only) becomes null."""
    sys.stdout.write(json.dumps(_nan_to_none(obj), sort_keys=False) + "\n")


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {key: _nan_to_none(value) for key, value in obj.items()}
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def _warn(message: str) -> None:
    Console(stderr=True).print(f"[yellow]warning:[/] {message}", highlight=False)


def main() -> None:
    """Entry point: run the app, turning :class:`LtrError` into one line on stderr."""
    try:
        app()
    except LtrError as error:
        if _state["debug"]:
            raise
        sys.stderr.write(f"error: {error}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
