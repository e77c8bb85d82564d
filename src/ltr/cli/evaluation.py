"""`ltr evaluate` and `ltr baselines`: numbers for rankings, under stated conventions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ltr._fs import check_writable, refuse_directory, same_bytes
from ltr.cli._common import (
    DEFAULT_METRICS,
    GainOpt,
    JsonOpt,
    MaxLabelOpt,
    MetricsOpt,
    NoRelevantOpt,
    PresetOpt,
    conventions_caption,
    conventions_from,
    fmt,
    metric_names,
    print_json,
    print_table,
    warn,
    write_per_query,
)
from ltr.errors import ConfigError, ShapeError
from ltr.metrics import conventions_in_force

if TYPE_CHECKING:
    from ltr.data.runs import MatchedRun

GAIN_FIX = "use the linear gain: --gain linear"  # the end of a label the exp2 gain overflows


def evaluate(
    data: Annotated[Path, typer.Option("--data", metavar="FILE", help="The judged LETOR file.")],
    scores: Annotated[
        Path | None,
        typer.Option(
            "--scores", metavar="FILE", help="One score per data line (LightGBM/RankLib)."
        ),
    ] = None,
    run: Annotated[
        Path | None,
        typer.Option("--run", metavar="FILE", help="A TREC run file, matched by docid."),
    ] = None,
    metrics: MetricsOpt = DEFAULT_METRICS,
    gain: GainOpt = None,
    no_relevant: NoRelevantOpt = None,
    max_label: MaxLabelOpt = None,
    preset: PresetOpt = None,
    per_query: Annotated[
        Path | None,
        typer.Option("--per-query", metavar="FILE", help="Write per-query values to this TSV."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a ranking (scores or a TREC run) against a judged data file."""
    from ltr.data.letor import load_letor
    from ltr.data.runs import read_scores, read_trec_run
    from ltr.evaluation import (
        evaluate_run,
        evaluate_scores,
        refuse_gain_overflow,
        skipped_queries_note,
    )

    if (scores is None) == (run is None):
        raise ConfigError("give exactly one of --scores FILE or --run FILE")
    names = metric_names(metrics)
    conventions = conventions_from(gain, no_relevant, preset, max_label)
    if per_query is not None:
        refuse_directory(per_query)
        check_writable(per_query)
    judged = load_letor(data)
    refuse_gain_overflow(judged, names, GAIN_FIX, where=data, **conventions)
    if scores is not None:
        values = read_scores(scores, expected=judged.n_docs)
        result = evaluate_scores(judged, values, names, **conventions)
    else:
        assert run is not None
        matched = read_trec_run(run, judged, data_path=data)
        _warn_about_run(run, data, matched)
        result = evaluate_run(matched, names, **conventions)
    if per_query is not None:
        write_per_query(per_query, result.query_ids, result.per_query)
    if as_json:  # nested, as baselines' rankings: every key of "metrics" is a metric
        print_json(
            {
                "metrics": result.means,
                "queries": len(result.query_ids),
                "averaged_queries": result.averaged,
                "conventions": conventions_in_force(**conventions),
            }
        )
        return
    skipped = skipped_queries_note(len(result.query_ids), list(result.averaged.values()))
    table = Table(
        # the path as given: two test.txt differ
        title=f"{data}: {len(result.query_ids):,} queries" + (f", {skipped}" if skipped else ""),
        caption=conventions_caption(conventions),
        title_justify="left",
    )
    for name in names:
        table.add_column(name, justify="right")
    table.add_row(*(fmt(result.means[name]) for name in names))
    print_table(table)


def _warn_about_run(run: Path, data: Path, matched: MatchedRun) -> None:
    """What trec_eval does silently, said once: the rules are in ltr.data.runs."""
    if n := matched.n_unjudged:
        warn(f"{_number_of(n, 'document')} of {run} {_be(n)} not judged in {data}; non-relevant")
    if n := matched.n_missing:
        warn(f"{_number_of(n, 'judged document')} {_be(n)} not in {run}; not retrieved")
    if n := matched.n_queries_absent:
        score = "it scores" if n == 1 else "they score"
        warn(f"{_number_of(n, 'query', 'queries')} of {data} {_be(n)} not in {run}; {score} 0")
    if n := matched.n_queries_unjudged:
        warn(f"{_number_of(n, 'query', 'queries')} of {run} {_be(n)} not in {data}; left out")


def _number_of(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {plural or noun + 's'}"


def _be(n: int) -> str:
    return "is" if n == 1 else "are"


def _model_label(path: Path) -> str:
    """A run's name for its directory or its ``checkpoints/*.pt`` (``RUN/best.pt``), else the
    file's name."""
    if path.suffix == ".pt" and path.parent.name == "checkpoints":
        return f"{path.parent.parent.name}/{path.name}"
    return path.name


def _refuse_same_file(train: Path, test: Path) -> None:
    """The best single feature picked on the test file would be scored on what picked it."""
    same = "the same file" if train.resolve() == test.resolve() else None
    if same is None and train.is_file() and test.is_file():
        digest = same_bytes(train, test)
        same = None if digest is None else f"the same bytes (sha256 {digest[:12]})"
    if same is not None:
        raise ConfigError(
            f"--train and --test must be different files: the best single feature is picked on "
            f"--train and scored on --test; got {train} and {test}, {same}"
        )


def baselines(
    train: Annotated[
        Path, typer.Option("--train", metavar="FILE", help="Picks the best single feature.")
    ],
    test: Annotated[
        Path, typer.Option("--test", metavar="FILE", help="The file the baselines are scored on.")
    ],
    metrics: MetricsOpt = DEFAULT_METRICS,
    gain: GainOpt = None,
    no_relevant: NoRelevantOpt = None,
    max_label: MaxLabelOpt = None,
    preset: PresetOpt = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random ranking.")] = 0,
    models: Annotated[
        list[Path] | None,
        typer.Option(
            "--model",
            metavar="RUN_DIR",
            help="Also score this trained run or checkpoint (repeatable).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Score no-training baselines (random, best single feature, ideal) beside trained models."""
    from ltr.baselines import evaluate_baselines
    from ltr.data.letor import load_letor, warn_if_narrower
    from ltr.evaluation import evaluate_scores, refuse_gain_overflow

    names = metric_names(metrics)
    conventions = conventions_from(gain, no_relevant, preset, max_label)
    resolved = [path.resolve() for path in models or []]  # ./run and run are one model
    if len(set(resolved)) < len(resolved):
        twice = next(path for path in models or [] if resolved.count(path.resolve()) > 1)
        raise ConfigError(f"--model: each model may be given once; got {twice} twice")
    _refuse_same_file(train, test)
    train_data = load_letor(train)
    test_data = load_letor(test)
    # A sparse test file may name fewer features than train; more means another feature set.
    if test_data.n_features > train_data.n_features:
        raise ShapeError(
            f"--train and --test must share the feature set; {train} has "
            f"{train_data.n_features} features, {test} has {test_data.n_features}"
        )
    if test_data.n_features < train_data.n_features:
        test_data = load_letor(test, n_features=train_data.n_features)
        warn_if_narrower(test_data, f"the training file {train}")
    # the best single feature is picked by ndcg@10 on train (evaluate_baselines)
    refuse_gain_overflow(train_data, ["ndcg@10"], GAIN_FIX, where=train, **conventions)
    refuse_gain_overflow(test_data, names, GAIN_FIX, where=test, **conventions)
    rows = evaluate_baselines(train_data, test_data, names, seed=seed, **conventions)
    if models:
        from ltr.inference import Predictor

        ideal = rows.popitem()  # the ceiling stays the last row
        short = [_model_label(path) for path in models]  # the paths as given where they repeat
        labels = short if len(set(short)) == len(short) else [str(path) for path in models]
        for path, label in zip(models, labels, strict=True):
            scores = Predictor.load(path).score(test_data, source=str(test))
            rows[f"model: {label}"] = evaluate_scores(test_data, scores, names, **conventions)
        rows.update([ideal])
    if as_json:
        rankings = {label: evaluation.means for label, evaluation in rows.items()}
        print_json({"rankings": rankings, "conventions": conventions_in_force(**conventions)})
        return
    table = Table(
        title=f"baselines on {test}",  # as given, as evaluate does: two test.txt differ
        caption=conventions_caption(conventions),
        title_justify="left",
    )
    table.add_column("ranking")
    for name in names:
        table.add_column(name, justify="right")
    for label, evaluation in rows.items():
        table.add_row(label, *(fmt(evaluation.means[name]) for name in names))
    print_table(table)
