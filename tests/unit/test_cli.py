"""The `ltr` command as a user meets it: real files in, one table / JSON object / error line out."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ltr.cli import app
from ltr.data.letor import LetorData, read_letor, write_letor
from ltr.data.runs import write_scores, write_trec_run
from ltr.data.synthetic import make_synthetic
from ltr.errors import UsageError
from ltr.evaluation import evaluate_scores
from ltr.metrics import conventions_in_force


def run_ltr(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the installed entry point in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "ltr.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small LETOR file: 3 queries (the 1-document one has no relevant doc), doc ids."""
    rng = np.random.default_rng(7)
    lengths = np.array([4, 1, 6])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    data = LetorData(
        features=rng.random((int(offsets[-1]), 5)).astype(np.float32),
        labels=np.array([2, 0, 1, 0, 0, 0, 0, 3, 1, 0, 2], dtype=np.float32),
        query_ids=np.array(["q1", "q2", "q3"]),
        query_offsets=offsets,
        doc_ids=np.array([f"d{i}" for i in range(int(offsets[-1]))]),
    )
    path = tmp_path_factory.mktemp("cli") / "judged.txt"
    write_letor(path, data)
    return path


@pytest.fixture(scope="module")
def judged_train(judged: Path) -> Path:
    """Another LETOR file of the same 5 features: the --train of ltr baselines beside judged."""
    data = read_letor(judged)
    path = judged.with_name("judged_train.txt")
    write_letor(path, replace(data, features=data.features[::-1].copy()))
    return path


def test_evaluate_json_prints_one_object_matching_the_library(judged: Path, tmp_path: Path) -> None:
    data = read_letor(judged)
    scores = np.random.default_rng(0).random(data.n_docs)
    write_scores(tmp_path / "scores.txt", scores)
    result = run_ltr(
        "evaluate",
        "--data",
        judged,
        "--scores",
        tmp_path / "scores.txt",
        "--metrics",
        "ndcg@3,map,mrr",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert list(printed) == ["metrics", "queries", "averaged_queries", "conventions"]
    expected = evaluate_scores(data, scores, ["ndcg@3", "map", "mrr"]).means
    assert printed["metrics"] == pytest.approx(expected, abs=1e-12)
    assert list(printed["metrics"]) == ["ndcg@3", "map", "mrr"]


def test_evaluate_max_label_sets_err_and_refuses_a_label_above_it(
    judged: Path, tmp_path: Path
) -> None:
    data = read_letor(judged)  # labels up to 3
    scores = np.random.default_rng(2).random(data.n_docs)
    write_scores(tmp_path / "scores.txt", scores)
    args = ("evaluate", "--data", judged, "--scores", tmp_path / "scores.txt", "--metrics", "err")

    three = run_ltr(*args, "--max-label", "3", "--json")
    two = run_ltr(*args, "--max-label", "2")

    assert three.returncode == 0, three.stderr
    printed = json.loads(three.stdout)
    expected = evaluate_scores(data, scores, ["err"], max_label=3).means["err"]
    assert printed["metrics"]["err"] == pytest.approx(expected, abs=1e-12)
    assert printed["conventions"]["max_label"] == 3
    assert expected != evaluate_scores(data, scores, ["err"]).means["err"]  # 4 differs
    assert (two.returncode, two.stderr.strip()) == (
        1,
        f"error: {judged.name}: labels must not exceed max_label=2; "
        "labels exceed it at 1 real documents",
    )


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_evaluate_refuses_a_max_label_that_is_not_finite_and_positive(
    judged: Path, tmp_path: Path, value: str
) -> None:
    write_scores(tmp_path / "scores.txt", np.zeros(11))
    args = ("--data", judged, "--scores", tmp_path / "scores.txt", "--max-label", value)
    result = CliRunner().invoke(app, ["evaluate", *map(str, args)])
    assert isinstance(result.exception, UsageError)
    assert str(result.exception) == f"--max-label: must be a finite number > 0; got {float(value)}"


def test_evaluate_run_file_gives_same_numbers_as_score_file(judged: Path, tmp_path: Path) -> None:
    data = read_letor(judged)
    scores = np.random.default_rng(1).random(data.n_docs)
    write_scores(tmp_path / "scores.txt", scores)
    write_trec_run(tmp_path / "run.txt", data, scores)
    by_scores = run_ltr("evaluate", "--data", judged, "--scores", tmp_path / "scores.txt", "--json")
    by_run = run_ltr("evaluate", "--data", judged, "--run", tmp_path / "run.txt", "--json")
    assert by_scores.returncode == 0 and by_run.returncode == 0, by_run.stderr
    assert json.loads(by_run.stdout) == json.loads(by_scores.stdout)


def test_evaluate_run_counts_missing_judged_documents_as_not_retrieved(
    judged: Path, tmp_path: Path
) -> None:
    # q1: d3 (label 0) and an unjudged doc; q2 absent; q3: d7 (label 3) of 3 relevant
    (tmp_path / "run.txt").write_text("q1 Q0 d3 1 5.0 t\nq1 Q0 new 2 4.0 t\nq3 Q0 d7 1 1.0 t\n")
    result = run_ltr(
        "evaluate",
        "--data",
        judged,
        "--run",
        tmp_path / "run.txt",
        "--metrics",
        "mrr,map",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["conventions"] == conventions_in_force()
    assert printed["metrics"] == pytest.approx({"mrr": 1 / 3, "map": 1 / 9})
    assert result.stderr.splitlines() == [
        f"warning: 1 document of {tmp_path / 'run.txt'} is not judged in {judged}; non-relevant",
        # q1's 3 and q3's 5; q2's document is said by the line on q2
        f"warning: 8 judged documents are not in {tmp_path / 'run.txt'}; not retrieved",
        f"warning: 1 query of {judged} is not in {tmp_path / 'run.txt'}; it scores 0",
    ]


def test_evaluate_warns_in_plurals_where_counts_are_many(judged: Path, tmp_path: Path) -> None:
    # q1: 2 unjudged docs, d0..d3 all listed; q2, q3 absent; q8, q9 not in the data file
    lines = [f"q1 Q0 d{i} {i + 1} {9.0 - i} t" for i in range(4)]
    lines += ["q1 Q0 x 5 1.0 t", "q1 Q0 y 6 0.5 t", "q8 Q0 z 1 1.0 t", "q9 Q0 z 1 1.0 t"]
    (tmp_path / "run.txt").write_text("\n".join(lines) + "\n")
    run = tmp_path / "run.txt"
    result = run_ltr("evaluate", "--data", judged, "--run", run, "--metrics", "mrr", "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"warning: 2 documents of {run} are not judged in {judged}; non-relevant",
        f"warning: 2 queries of {judged} are not in {run}; they score 0",
        f"warning: 2 queries of {run} are not in {judged}; left out",
    ]


def test_evaluate_refuses_an_empty_run_file(judged: Path, tmp_path: Path) -> None:
    run = tmp_path / "run.txt"
    run.write_text("\n")
    result = run_ltr("evaluate", "--data", judged, "--run", run)
    assert result.returncode == 1
    assert result.stderr == (
        f"error: {run}: the run file is empty; expected lines 'qid Q0 docid rank score tag'\n"
    )


def test_evaluate_refuses_run_that_matches_no_judged_document(judged: Path, tmp_path: Path) -> None:
    run = tmp_path / "run.txt"
    run.write_text("q7 Q0 d0 1 5.0 t\n")  # d0 is judged for q1, not q7
    result = run_ltr("evaluate", "--data", judged, "--run", run)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: {run}: no (qid, docid) of the run is judged in {judged}; "
        "check that both files use the same query and document ids"
    )


def test_evaluate_reads_gzipped_score_file(judged: Path, tmp_path: Path) -> None:
    write_scores(tmp_path / "scores.txt", np.arange(11, dtype=float))
    zipped = tmp_path / "scores.txt.gz"
    zipped.write_bytes(gzip.compress((tmp_path / "scores.txt").read_bytes()))
    plain = run_ltr("evaluate", "--data", judged, "--scores", tmp_path / "scores.txt", "--json")
    result = run_ltr("evaluate", "--data", judged, "--scores", zipped, "--json")
    assert result.returncode == 0, result.stderr
    assert result.stdout == plain.stdout


def test_evaluate_shows_cutoff_warning_as_one_line(judged: Path, tmp_path: Path) -> None:
    write_scores(tmp_path / "scores.txt", np.arange(11, dtype=float))
    result = run_ltr(
        "evaluate", "--data", judged, "--scores", tmp_path / "scores.txt", "--metrics", "p@50"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "warning: k=50 is larger than every list in judged.txt (the longest has 6 documents); "
        "check the cutoff"
    ]


def test_evaluate_of_a_trec_run_names_the_judged_file_in_the_cutoff_warning(
    judged: Path, tmp_path: Path
) -> None:
    data = read_letor(judged)
    write_trec_run(tmp_path / "run.trec", data, np.arange(11, dtype=float))
    result = run_ltr("evaluate", "--data", judged, "--run", tmp_path / "run.trec", "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "warning: k=10 is larger than every list in judged.txt (the longest has 6 documents); "
        "check the cutoff"
    ]


def test_evaluate_caption_names_every_convention_of_a_preset(judged: Path, tmp_path: Path) -> None:
    write_scores(tmp_path / "scores.txt", np.arange(11, dtype=float))
    result = run_ltr(
        "evaluate", "--data", judged, "--scores", tmp_path / "scores.txt", "--preset", "letor"
    )
    assert result.returncode == 0, result.stderr
    caption = " ".join(result.stdout.split("┘", 1)[1].split())
    assert caption == (
        "preset=letor: gain=exp2, no_relevant=zero, discount=letor, short_list=zero, "
        "relevance_threshold=1, ap_denominator=relevant"
    )


def test_evaluate_refuses_a_per_query_directory_before_reading_anything(tmp_path: Path) -> None:
    result = run_ltr(
        *("evaluate", "--data", tmp_path / "absent.txt", "--scores", tmp_path / "absent.scores"),
        *("--per-query", tmp_path),
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip() == f"error: {tmp_path} is a directory; the output must be a file path"
    )


def test_evaluate_writes_per_query_tsv(judged: Path, tmp_path: Path) -> None:
    scores = tmp_path / "scores.txt"
    write_scores(scores, np.arange(11, dtype=float))
    out = tmp_path / "per_query.tsv"
    result = run_ltr(
        "evaluate",
        "--data",
        judged,
        "--scores",
        scores,
        "--metrics",
        "ndcg@10,map",
        "--per-query",
        out,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert rows[0] == ["qid", "ndcg@10", "map"]
    assert [row[0] for row in rows[1:]] == ["q1", "q2", "q3"]


def test_evaluate_reports_bad_score_line_without_traceback(judged: Path, tmp_path: Path) -> None:
    scores = tmp_path / "scores.txt"
    scores.write_text("0.5\n0.1\nabc\n")
    result = run_ltr("evaluate", "--data", judged, "--scores", scores)
    assert result.returncode == 1
    assert (
        result.stderr.strip() == f"error: {scores}:3: a score line must hold one number; got 'abc'"
    )


def test_evaluate_refuses_score_count_mismatch(judged: Path, tmp_path: Path) -> None:
    scores = tmp_path / "scores.txt"
    write_scores(scores, np.zeros(10))
    result = run_ltr("evaluate", "--data", judged, "--scores", scores)
    assert result.returncode == 1
    assert "got 10 scores for 11 documents" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("metrics", ["ndcg@10,ndgc@10", " , "])
def test_evaluate_rejects_a_bad_metrics_value_as_bad_usage_naming_the_option(
    judged: Path, metrics: str
) -> None:
    args = ["evaluate", "--data", str(judged), "--scores", "s.txt", "--metrics", metrics]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, UsageError)
    assert str(result.exception).startswith("--metrics: ")


def test_evaluate_needs_exactly_one_ranking_source(judged: Path) -> None:
    result = run_ltr("evaluate", "--data", judged)
    assert result.returncode == 1
    assert "exactly one of --scores FILE or --run FILE" in result.stderr


def test_data_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "train.txt"
    bad.write_text("1 qid:1 1:0.5\n0 qid:1 0:0.25\n")
    result = run_ltr("data", "inspect", bad)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {bad}:2: ")
    assert "Traceback" not in result.stderr


def test_data_inspect_json_counts(judged: Path) -> None:
    result = run_ltr("data", "inspect", judged, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["n_queries"], summary["n_docs"], summary["n_features"]) == (3, 11, 5)
    assert summary["label_counts"] == {"0": 6, "1": 2, "2": 2, "3": 1}
    assert summary["queries_without_relevant"] == 1
    lengths = summary["list_length"]
    assert (lengths["min"], lengths["max"]) == (1, 6)
    assert isinstance(lengths["min"], int) and isinstance(lengths["max"], int)


def test_baselines_ideal_row_is_the_ceiling(judged: Path, judged_train: Path) -> None:
    result = run_ltr(
        "baselines", "--train", judged_train, "--test", judged, "--metrics", "ndcg@10", "--json"
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["rankings"]
    ideal = rows.pop("ideal (labels as scores)")["ndcg@10"]
    assert ideal == pytest.approx(2 / 3)  # one of three queries has no relevant document
    assert all(row["ndcg@10"] <= ideal for row in rows.values())


def test_evaluate_and_baselines_refuse_a_label_overflowing_exp2_naming_file_and_option(
    judged: Path, tmp_path: Path
) -> None:
    big = tmp_path / "big.txt"
    lines = judged.read_text(encoding="utf-8").splitlines()
    lines[7] = "1024" + lines[7][1:]  # label 3 of query q3 becomes 1024
    big.write_text("\n".join(lines) + "\n", encoding="utf-8")
    scores = tmp_path / "scores.txt"
    write_scores(scores, np.zeros(11))
    expected = (
        f"error: {big}: label 1024 of query q3: the exp2 gain 2^label - 1 overflows float64; "
        "use the linear gain: --gain linear"
    )

    evaluated = run_ltr("evaluate", "--data", big, "--scores", scores)
    baselines = run_ltr("baselines", "--train", judged, "--test", big)

    assert (evaluated.returncode, evaluated.stderr.strip()) == (1, expected)
    assert (baselines.returncode, baselines.stderr.strip()) == (1, expected)
    linear = run_ltr("evaluate", "--data", big, "--scores", scores, "--gain", "linear", "--json")
    assert linear.returncode == 0, linear.stderr


def test_baselines_refuses_one_file_as_train_and_test_naming_both_options(
    judged: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy.txt"
    copy.write_bytes(judged.read_bytes())

    same_path = run_ltr("baselines", "--train", judged, "--test", judged)
    same_bytes = run_ltr("baselines", "--train", copy, "--test", judged)

    expected = (
        "error: --train and --test must be different files: the best single feature is picked "
        f"on --train and scored on --test; got {{}} and {judged}, {{}}"
    )
    assert (same_path.returncode, same_path.stderr.strip()) == (
        1,
        expected.format(judged, "the same file"),
    )
    digest = hashlib.sha256(judged.read_bytes()).hexdigest()[:12]
    assert (same_bytes.returncode, same_bytes.stderr.strip()) == (
        1,
        expected.format(copy, f"the same bytes (sha256 {digest})"),
    )


def test_baselines_refuses_test_file_with_more_features(judged: Path, tmp_path: Path) -> None:
    wide = tmp_path / "wide.txt"
    write_letor(wide, make_synthetic(n_queries=3, n_features=12, seed=0))
    result = run_ltr("baselines", "--train", judged, "--test", wide)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: --train and --test must share the feature set; {judged} has 5 features, "
        f"{wide} has 12"
    )


def test_baselines_rejects_a_model_given_twice(
    judged: Path, judged_train: Path, tmp_path: Path
) -> None:
    model = tmp_path / "run"
    result = run_ltr(
        "baselines", "--train", judged_train, "--test", judged, "--model", model, "--model", model
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip() == f"error: --model: each model may be given once; got {model} twice"
    )


def test_baselines_labels_checkpoints_by_their_runs_and_repeated_names_by_path(
    tmp_path: Path,
) -> None:
    import shutil

    from support.tiny_runs import tiny_run, write_tiny_data

    data = write_tiny_data(tmp_path / "data")
    first, second = (
        tiny_run(data, tmp_path / name, f"experiment.name={name}", training={"seed": seed})
        for name, seed in (("one", 0), ("two", 1))
    )
    twin = Path(shutil.copytree(first, tmp_path / "elsewhere" / first.name))  # same run name
    train, test = str(data / "train.txt"), str(data / "test.txt")

    def model_rows(*models: Path) -> dict[str, dict[str, float]]:
        given = [arg for model in models for arg in ("--model", str(model))]
        result = CliRunner().invoke(
            app, ["baselines", "--train", train, "--test", test, *given, "--json"]
        )
        rankings = json.loads(result.stdout)["rankings"]
        return {label: row for label, row in rankings.items() if label.startswith("model: ")}

    best = [run / "checkpoints" / "best.pt" for run in (first, second)]
    rows = model_rows(*best)
    assert list(rows) == [f"model: {first.name}/best.pt", f"model: {second.name}/best.pt"]
    assert rows[f"model: {first.name}/best.pt"] != rows[f"model: {second.name}/best.pt"]
    assert list(model_rows(first, twin)) == [f"model: {first}", f"model: {twin}"]


def test_version_prints_the_version_and_exits_0() -> None:
    from ltr import __version__

    result = run_ltr("--version")
    assert (result.returncode, result.stdout) == (0, f"ltr {__version__}\n")


def test_paths_print_whole_on_one_line_brackets_included(tmp_path: Path) -> None:
    out = tmp_path / ("[fold 1] " + "a-long-folder-name-" * 5)  # wider than 80 columns
    result = run_ltr("data", "synth", "--out", out, "--queries", "40")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:3] == [
        f"{split:>6}: {out / name}"
        for split, name in [("train", "train.txt"), ("vali", "vali.txt"), ("test", "test.txt")]
    ]


def test_a_table_reaches_a_pipe_whole_whatever_columns_says(
    judged: Path, judged_train: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ltr.cli", "baselines", "--train", judged_train, "--test", judged],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "40"},  # narrower than the table
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    box = [line for line in lines if line[:1] in "┏┃┡│└"]
    assert len({len(line) for line in box}) == 1 and len(box[0]) > 40  # no wrapped cell
    assert any("(best single feature on train)" in line for line in box)
    assert all(line == line.rstrip() for line in lines)  # no padding after the title


def test_a_warning_prints_brackets_as_they_are(capsys: pytest.CaptureFixture[str]) -> None:
    from ltr.cli._common import warn

    warn("skipped runs/[old] (no metrics.json)")
    assert capsys.readouterr().err == "warning: skipped runs/[old] (no metrics.json)\n"


def test_synth_into_an_existing_file_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    result = run_ltr("data", "synth", "--out", tmp_path / "afile")
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {tmp_path / 'afile'} exists and is not a folder;")


def test_synth_over_other_data_is_refused_and_over_the_same_data_is_a_no_op(
    tmp_path: Path,
) -> None:
    out = tmp_path / "data"
    assert run_ltr("data", "synth", "--out", out, "--queries", "40").returncode == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}

    again = run_ltr("data", "synth", "--out", out, "--queries", "40")
    other = run_ltr("data", "synth", "--out", out, "--queries", "50", "--seed", "1")

    assert again.returncode == 0, again.stderr
    assert other.returncode == 1
    assert other.stderr == (
        f"error: {out} already holds data (info.json: 40 queries, 20 features, seed 0); writing "
        "other data there would invalidate the runs trained on it: give another --out, or "
        "delete the folder first\n"
    )
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_synth_refuses_a_folder_holding_letor_files_of_another_origin(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("0 qid:1 1:0.5\n")
    result = run_ltr("data", "synth", "--out", tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"error: {tmp_path} already holds data (train.txt, not from ltr data synth);"
    )


def test_output_below_a_file_is_one_error_line_naming_the_output(
    tmp_path: Path, judged: Path
) -> None:
    (tmp_path / "taken").write_text("")
    out = tmp_path / "taken" / "per_query.tsv"
    write_scores(tmp_path / "scores.txt", np.zeros(read_letor(judged).n_docs))
    result = run_ltr(
        *("evaluate", "--data", judged, "--scores", tmp_path / "scores.txt"),
        *("--per-query", out),
    )
    assert result.returncode == 1
    assert (
        result.stderr
        == f"error: cannot write {out}: {tmp_path / 'taken'} is a file, not a folder\n"
    )


def test_synth_refuses_a_negative_seed_as_usage_error(tmp_path: Path) -> None:
    result = run_ltr("data", "synth", "--out", tmp_path / "d", "--seed", "-5")
    assert result.returncode == 2
    assert "--seed" in result.stderr


def test_synth_minimum_query_count_is_the_one_the_split_allows(tmp_path: Path) -> None:
    from ltr.cli.data import MIN_QUERIES as CLI_MIN
    from ltr.data.synthetic import MIN_QUERIES

    too_few = run_ltr("data", "synth", "--out", tmp_path / "a", "--queries", MIN_QUERIES - 1)
    enough = run_ltr("data", "synth", "--out", tmp_path / "b", "--queries", MIN_QUERIES)
    assert CLI_MIN == MIN_QUERIES
    assert too_few.returncode == 2 and "--queries" in too_few.stderr
    assert enough.returncode == 0, enough.stderr


@pytest.mark.parametrize(
    ("args", "message", "status"),
    [
        (["--resume", "some/run", "--loss", "listnet"], "own config.yaml; drop --loss", 1),
        (["--resume", "some/run", "--model", "linear"], "own config.yaml; drop --model", 1),
        # not a scorer train can train: a choice outside the choices, bad usage
        (["--config", "c.yaml", "--model", "ensemble"], "from trained runs with ltr ensemble", 2),
    ],
)
def test_train_refuses_options_that_do_not_apply_in_one_line(
    args: list[str], message: str, status: int
) -> None:
    result = run_ltr("train", *args)
    assert result.returncode == status
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr


def _help_in_process(*command: str, columns: int = 200) -> str:
    from typer.testing import CliRunner

    from ltr.cli import app

    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


def test_train_help_names_the_scorers_it_trains_and_what_quiet_hides() -> None:
    text = _help_in_process("train")
    assert "Scorer: linear, mlp, transformer (ensembles: ltr ensemble)" in text
    assert (
        "Print only the run directory (stdout, as soon as it exists, so also for a run that "
        "fails or is stopped), warnings and errors: no epoch or test"
    ) in (" ".join(text.replace("│", " ").split()))


def test_train_help_lists_the_registered_losses_and_how_to_write_a_set() -> None:
    from ltr.losses import LOSSES

    text = " ".join(_help_in_process("train").split())  # rich wraps; compare the words

    assert f"Loss: {', '.join(LOSSES)}." in text
    assert "--set KEY=VALUE Override a config field" in text
    assert "repeatable. A list in YAML brackets: --set 'model.hidden_dims=[64,32]'" in text
    assert "auto: cuda when a GPU is visible, else cpu" in text


@pytest.mark.parametrize(
    "command",
    [
        ("train",),
        ("cv",),
        ("tune",),
        ("evaluate",),
        ("baselines",),
        ("compare",),
        ("ensemble",),
        ("promote",),
        ("export",),
        ("data", "synth"),
        ("models", "show"),
    ],
)
def test_help_shows_no_python_type_names_and_no_flag_value(command: tuple[str, ...]) -> None:
    text = _help_in_process(*command)

    assert "<bool>" not in text and "list[" not in text and "<path>" not in text
    assert "{" not in text  # neither {run} in the usage line nor an unfilled {losses}
    assert re.search(r"--help +Show this message", text)


@pytest.mark.parametrize("command", ["evaluate", "baselines"])
def test_help_at_80_columns_keeps_defaults_and_choices_whole(command: str) -> None:
    text = _help_in_process(command, columns=80)
    words = " ".join(text.replace("│", " ").split())

    assert "…" not in text
    assert "(default: ndcg@1, ndcg@5, ndcg@10, map, mrr)" in words
    assert "letor (reproduces Eval-Score-4.0.pl), lightgbm or trec_eval" in words
    assert "default: the preset's, else exp2" in words
    assert "default: the preset's, else zero" in words


def test_ensemble_and_promote_usage_name_their_arguments() -> None:
    assert "ensemble [OPTIONS] RUN_DIR..." in _help_in_process("ensemble")
    promote = " ".join(_help_in_process("promote").split())
    assert "promote [OPTIONS] RUN_DIR" in promote
    assert "--version X.Y.Z With --to validated: the version to register" in promote


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--device", "gpu"], "--device: 'gpu' is not one of cpu, cuda, cuda:N, auto"),
        (
            ["--device", "cuda:x"],
            "--device: 'cuda:x' is not one of cpu, cuda, cuda:N, auto; did you mean cuda:N?",
        ),
        (  # checked by ltr, not click: the same kind of mistake, the same status
            ["--config", "c.yaml", "--model", "mpl"],
            "--model: 'mpl' is not one of linear, mlp, transformer; did you mean mlp?",
        ),
    ],
)
def test_a_usage_error_is_one_line_naming_the_option_with_exit_status_2(
    args: list[str], line: str
) -> None:
    result = run_ltr("train", *args)  # the real main(), as `ltr` runs it
    assert result.returncode == 2
    assert result.stderr == f"error: {line}\n"
    assert result.stdout == ""


def test_device_takes_a_numbered_cuda_as_training_device_does() -> None:
    # no usage error: the name goes on to training.device, which checks it against the GPUs
    config = Path(__file__).parents[2] / "configs" / "default.yaml"
    result = run_ltr("train", "--config", config, "--device", "cuda:1", "--quiet")
    assert result.returncode == 1
    assert result.stderr.startswith("error: training.device: ")  # no GPU, or no second one


def _usage_error(*args: str) -> str:
    from ltr.cli import app
    from ltr.cli._usage import ClickException, usage_line

    with pytest.raises(ClickException) as caught:
        app([*args], standalone_mode=False, prog_name="ltr")  # how main() runs the app
    return usage_line(caught.value)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["train", "--quite"], "--quite: no such option of ltr train; did you mean --quiet?"),
        (["train", "--epochs", "5"], "--epochs: no such option of ltr train"),
        (
            ["promote", "r", "--to", "staging"],
            "--to: 'staging' is not one of validated, production",
        ),
        (
            ["evaluate", "--gain", "lin"],
            "--gain: 'lin' is not one of exp2, linear; did you mean linear?",
        ),
        (["tune", "--config", "c.yaml"], "--trials: required"),
        (["promote", "--to", "validated"], "RUN_DIR: required"),
        (["train", "--set"], "--set: needs a value"),
        (["data", "synth", "--seed", "-5"], "--seed: must be greater than or equal to 0"),
        (["nosuch"], "ltr: no such command 'nosuch'; see ltr --help"),
        (["trian"], "ltr: no such command 'trian'; did you mean train?"),
        (["models", "shwo"], "ltr models: no such command 'shwo'; did you mean show?"),
    ],
)
def test_usage_errors_read_as_one_line_naming_the_option(args: list[str], line: str) -> None:
    assert _usage_error(*args) == line


def test_train_refuses_an_unknown_scorer_listing_the_ones_it_trains(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ltr.cli import app

    result = CliRunner().invoke(app, ["train", "--config", "c.yaml", "--model", "mpl"])

    assert isinstance(result.exception, UsageError)
    assert str(result.exception) == (
        "--model: 'mpl' is not one of linear, mlp, transformer; did you mean mlp?"
    )


def _help(*command: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ltr.cli", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", "TERM": "dumb"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_root_help_promises_serving_only_with_a_serve_command() -> None:
    text = _help()
    assert ("serving" in text) == (" serve " in text)


def test_compare_help_says_baseline_overrides_the_first_run() -> None:
    assert "the first is the baseline unless --baseline" in _help("compare")


def test_cv_table_of_one_fold_says_fold_not_folds(tmp_path: Path) -> None:
    from rich.console import Console

    from ltr.cli.training import cv_table
    from ltr.config import load_config
    from ltr.training.crossval import CvResult, Fold, FoldResult, summarize_folds

    test = {"ndcg@10": 0.5, "map": 0.4}
    result = CvResult(
        tmp_path / "one-cv",
        load_config(base={"data": {"root": str(tmp_path)}}),
        [FoldResult(Fold("Fold1", tmp_path), tmp_path / "run", test)],
        summarize_folds([test]),
    )
    console = Console(width=200, record=True)
    console.print(cv_table(result))

    assert "test metrics of 1 fold;" in console.export_text()


def test_evaluate_json_states_every_convention_in_force(judged: Path, tmp_path: Path) -> None:
    write_scores(tmp_path / "scores.txt", np.arange(11, dtype=float))
    args = ["evaluate", "--data", str(judged), "--scores", str(tmp_path / "scores.txt")]
    result = CliRunner().invoke(app, [*args, "--metrics", "ndcg@3", "--preset", "letor", "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["metrics"].keys() == {"ndcg@3"}
    assert printed["conventions"] == {
        "gain": "exp2",
        "discount": "letor",
        "short_list": "zero",
        "no_relevant": "zero",
        "relevance_threshold": 1,
        "ap_denominator": "relevant",
        "max_label": 4,
    }


# the best single feature is picked by ndcg@10, above every list of the tiny file
@pytest.mark.filterwarnings("ignore::ltr.metrics.CutoffWarning")
def test_baselines_json_states_the_conventions_beside_the_rankings(
    judged: Path, judged_train: Path
) -> None:
    args = ["baselines", "--train", str(judged_train), "--test", str(judged), "--metrics", "map"]
    result = CliRunner().invoke(app, [*args, "--gain", "linear", "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert list(printed) == ["rankings", "conventions"]  # every key of "rankings" is a ranking
    names = list(printed["rankings"])
    assert (names[0], names[-1]) == ("random (seed 0)", "ideal (labels as scores)")
    assert len(names) == 3 and names[1].endswith("(best single feature on train)")
    assert all(ranking.keys() == {"map"} for ranking in printed["rankings"].values())
    conventions = printed["conventions"]
    assert (conventions["gain"], conventions["no_relevant"]) == ("linear", "zero")
    assert conventions["ap_denominator"] == "relevant"


def test_evaluate_titles_the_table_with_the_path_as_given(judged: Path, tmp_path: Path) -> None:
    write_scores(tmp_path / "scores.txt", np.arange(11, dtype=float))
    args = ["evaluate", "--data", str(judged), "--scores", str(tmp_path / "scores.txt")]
    result = CliRunner().invoke(app, [*args, "--metrics", "map"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"{judged}: 3 queries"


@pytest.mark.filterwarnings("ignore::ltr.metrics.CutoffWarning")  # as above
def test_baselines_titles_the_table_with_the_path_as_given(
    judged: Path, judged_train: Path
) -> None:
    args = ["baselines", "--train", str(judged_train), "--test", str(judged), "--metrics", "map"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"baselines on {judged}"  # not judged.txt alone


def test_evaluate_says_how_many_queries_the_means_are_over_when_some_are_skipped(
    judged: Path, tmp_path: Path
) -> None:
    write_scores(tmp_path / "scores.txt", np.arange(11, dtype=float))
    args = ["evaluate", "--data", str(judged), "--scores", str(tmp_path / "scores.txt")]
    args += ["--metrics", "map,ndcg@3", "--no-relevant", "skip"]

    table = CliRunner().invoke(app, args)
    printed = CliRunner().invoke(app, [*args, "--json"])

    assert table.stdout.splitlines()[0] == (
        f"{judged}: 3 queries, means over 2 (1 skipped: no relevant document)"
    )
    data = json.loads(printed.stdout)
    assert (data["queries"], data["averaged_queries"]) == (3, {"map": 2, "ndcg@3": 2})


def test_evaluate_prints_a_long_caption_whole_on_one_line(judged: Path, tmp_path: Path) -> None:
    write_scores(tmp_path / "scores.txt", np.arange(11, dtype=float))
    args = ["evaluate", "--data", str(judged), "--scores", str(tmp_path / "scores.txt")]
    result = CliRunner().invoke(app, [*args, "--metrics", "map", "--preset", "trec_eval"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        "preset=trec_eval: gain=linear, no_relevant=zero, discount=standard, "
        "short_list=truncate, relevance_threshold=1, ap_denominator=relevant"
    )


@pytest.mark.parametrize(("rank", "printed"), [("0", True), ("1", False)])
def test_a_config_error_under_torchrun_is_printed_by_rank_0_only(
    ltr_main, monkeypatch: pytest.MonkeyPatch, rank: str, printed: bool
) -> None:
    for name, value in {"RANK": rank, "LOCAL_RANK": rank, "WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)  # as torchrun sets them; fails before any group is made
    config = Path(__file__).parents[2] / "configs" / "default.yaml"

    status, out, err = ltr_main("train", "--config", config, "--set", "training.learning_rat=1")

    assert status == 1 and out == ""
    line = (
        "error: --set training.learning_rat=1: unknown field; did you mean training.learning_rate?"
    )
    assert err == (f"{line}\n" if printed else "")
