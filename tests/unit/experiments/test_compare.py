"""Loading real runs, comparing them against a baseline, and plotting them."""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from ltr.errors import ConfigError, DataNotFoundError
from ltr.experiments.compare import RunRecord, compare_runs, load_run, scan_runs
from ltr.experiments.plots import (
    curves_path,
    drawn_interval,
    metrics_plot_title,
    plot_test_metrics,
    plot_training_curves,
)
from support.tiny_runs import forget_data_files, relabel_in_place, tiny_run, write_tiny_data

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three tiny real runs on one synthetic data set: different losses and seeds."""
    root = tmp_path_factory.mktemp("compare")
    data = write_tiny_data(root / "data", seed=4)
    for loss, seed, epochs in [("lambdarank", 0, 3), ("listnet", 1, 2), ("mse", 2, 3)]:
        tiny_run(
            data,
            root / "runs",
            f"experiment.name={loss}",
            f"loss.name={loss}",
            training={"seed": seed, "num_epochs": epochs},
        )
    return root / "runs"


@pytest.fixture(scope="session")
def runs(runs_dir: Path) -> list[RunRecord]:
    return scan_runs(runs_dir)[0]


def copy_run(run: RunRecord, destination: Path) -> Path:
    return Path(shutil.copytree(run.path, destination / run.run_id))


def skip_policy_copy(run: RunRecord, destination: Path) -> Path:
    """A copy of ``run`` whose metrics.json says it was evaluated with ``no_relevant=skip``."""
    copy = copy_run(run, destination)
    report = json.loads((copy / "metrics.json").read_text(encoding="utf-8"))
    report["conventions"]["no_relevant"] = "skip"
    (copy / "metrics.json").write_text(json.dumps(report), encoding="utf-8")
    return copy


def rewrite_per_query(run_dir: Path, keep_rows: slice | np.ndarray) -> None:
    path = run_dir / "test_per_query.tsv"
    header, *rows = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([header, *np.array(rows)[keep_rows]]) + "\n", encoding="utf-8")


def test_load_run_reads_ids_config_and_per_query_values(runs: list[RunRecord]) -> None:
    run = load_run(runs[0].path)
    assert run.run_id.endswith("-lambdarank") and (run.model, run.loss) == ("mlp", "lambdarank")
    assert len(run.query_ids) == run.report["test_queries"] == len(run.per_query["ndcg@10"])
    assert np.nanmean(run.per_query["ndcg@10"]) == pytest.approx(run.test["ndcg@10"])
    assert [record["epoch"] for record in run.history] == [1, 2, 3]


def test_load_run_names_the_missing_file(runs: list[RunRecord], tmp_path: Path) -> None:
    broken = copy_run(runs[0], tmp_path)
    (broken / "metrics.json").unlink()
    with pytest.raises(DataNotFoundError, match=r"is not a finished run: it has no metrics\.json"):
        load_run(broken)


def test_load_run_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="no such folder"):
        load_run(tmp_path / "nope")


def test_scan_runs_lists_oldest_first_and_notes_unfinished_runs(
    runs: list[RunRecord], tmp_path: Path
) -> None:
    for run in runs:
        copy_run(run, tmp_path)
    (tmp_path / "99999999-000000-running").mkdir()
    (tmp_path / "99999999-000000-running" / "config.yaml").write_text("experiment: {}\n")
    (tmp_path / "not-a-run").mkdir()
    found, notes = scan_runs(tmp_path)
    assert [run.run_id for run in found] == sorted(run.run_id for run in runs)
    assert len(notes) == 1 and "skipped 99999999-000000-running" in notes[0]


def test_compare_marks_the_best_and_tests_every_run_against_the_baseline(
    runs: list[RunRecord],
) -> None:
    comparison = compare_runs(runs, metric="ndcg@10", n_resamples=2_000)
    for name in comparison.metrics:
        top = max(run.mean(name) for run in runs)
        assert comparison.best[name] == [run.run_id for run in runs if run.mean(name) == top]
    assert comparison.baseline is runs[0] and set(comparison.tests) == {
        runs[1].run_id,
        runs[2].run_id,
    }
    test = comparison.tests[runs[2].run_id]
    diff = runs[2].per_query["ndcg@10"] - runs[0].per_query["ndcg@10"]
    assert test.mean_diff == pytest.approx(np.nanmean(diff))
    assert sum(test.win_tie_loss) == test.n == len(runs[0].query_ids)
    assert test.p_randomization_holm >= test.randomization.p_value


def blank_all_but_one_query(run_dir: Path, metric: str) -> None:
    """``metric`` NaN (skipped) for every test query but the first, as under skip."""
    path = run_dir / "test_per_query.tsv"
    header, *rows = path.read_text(encoding="utf-8").splitlines()
    column = header.split("\t").index(metric)
    cells = [row.split("\t") for row in rows]
    for row in cells[1:]:
        row[column] = "nan"
    path.write_text("\n".join([header, *map("\t".join, cells)]) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("one query", "the test set has 1 query"),
        (
            "one not skipped",
            "1 of {n} test queries have a value of ndcg@10 in both runs (the "
            "other {skipped} are NaN: skipped, with no relevant document)",
        ),
    ],
)
def test_compare_shows_tests_as_na_when_fewer_than_two_queries_pair(
    runs: list[RunRecord], tmp_path: Path, case: str, why: str
) -> None:
    copies = [copy_run(run, tmp_path) for run in runs[:2]]
    for copy in copies:
        if case == "one query":
            rewrite_per_query(copy, slice(0, 1))
        else:
            blank_all_but_one_query(copy, "ndcg@10")
    a, b = map(load_run, copies)

    comparison = compare_runs([a, b], n_resamples=500)

    test = comparison.tests[b.run_id]
    assert np.isnan(test.t_test.p_value) and np.isnan(test.p_randomization_holm)
    assert test.n == 1 and sum(test.win_tie_loss or ()) == 1
    assert test.mean_diff == pytest.approx(b.per_query["ndcg@10"][0] - a.per_query["ndcg@10"][0])
    n = len(a.query_ids)
    assert comparison.notes == [
        f"no paired test of {b.run_id} against {a.run_id} (n/a): a paired test needs at least 2 "
        f"queries with a value in both runs, and {why.format(n=n, skipped=n - 1)}"
    ]


@pytest.mark.parametrize(("other", "both_best"), [(0.50004, True), (0.50006, False)])
def test_compare_marks_as_best_every_mean_that_reads_as_the_best(
    runs: list[RunRecord], tmp_path: Path, other: float, both_best: bool
) -> None:
    copies = [copy_run(run, tmp_path) for run in runs[:2]]
    for copy, mean in zip(copies, [0.5, other], strict=True):
        report = json.loads((copy / "metrics.json").read_text(encoding="utf-8"))
        report["test"]["map"] = mean  # 0.5000 and 0.5000 shown: one value to the reader
        (copy / "metrics.json").write_text(json.dumps(report), encoding="utf-8")
    a, b = map(load_run, copies)

    comparison = compare_runs([a, b], metrics=["map"], n_resamples=100)

    assert comparison.best["map"] == ([a.run_id, b.run_id] if both_best else [b.run_id])


def test_compare_uses_the_chosen_baseline(runs: list[RunRecord]) -> None:
    comparison = compare_runs(runs, baseline=2, n_resamples=500)
    assert comparison.baseline is runs[2] and runs[2].run_id not in comparison.tests


def test_compare_matches_queries_by_id_not_by_line(runs: list[RunRecord], tmp_path: Path) -> None:
    shuffled = copy_run(runs[1], tmp_path)
    rewrite_per_query(shuffled, np.random.default_rng(0).permutation(len(runs[1].query_ids)))
    before = compare_runs(runs[:2], n_resamples=500).tests[runs[1].run_id]
    after = compare_runs([runs[0], load_run(shuffled)], n_resamples=500).tests[runs[1].run_id]
    assert after.t_test.p_value == pytest.approx(before.t_test.p_value, rel=1e-12)
    assert after.win_tie_loss == before.win_tie_loss


def test_compare_refuses_a_run_given_twice_even_under_another_name(
    runs: list[RunRecord], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=f"given twice: {runs[0].run_id}$"):
        compare_runs([runs[0], runs[1], runs[0]])
    alias = tmp_path / "alias"
    alias.symlink_to(runs[1].path, target_is_directory=True)
    with pytest.raises(ConfigError, match=f"alias is {runs[1].run_id} \\(the same folder, "):
        compare_runs([runs[0], runs[1], load_run(alias)])


def test_compare_refuses_runs_tested_on_different_queries(
    runs: list[RunRecord], tmp_path: Path
) -> None:
    fewer = copy_run(runs[1], tmp_path)
    rewrite_per_query(fewer, slice(1, None))
    with pytest.raises(ConfigError, match=r"tested on different queries \(e\.g\. qid .+ in only"):
        compare_runs([runs[0], load_run(fewer)])


def test_compare_refuses_a_run_from_before_tested_on_a_relabelled_copy_of_the_test_file(
    runs: list[RunRecord], tmp_path: Path
) -> None:
    data = Path(runs[1].config["data"]["root"])
    copy = Path(shutil.copytree(data, tmp_path / "relabelled"))
    lines = (copy / "test.txt").read_text(encoding="utf-8").splitlines()
    flipped = [("1" if line[0] == "0" else "0") + line[1:] for line in lines]  # same query ids
    (copy / "test.txt").write_text("\n".join(flipped) + "\n", encoding="utf-8")
    other = forget_data_files(copy_run(runs[1], tmp_path))  # its config.yaml alone names the file
    config = (other / "config.yaml").read_text(encoding="utf-8")
    (other / "config.yaml").write_text(config.replace(str(data), str(copy)), encoding="utf-8")

    with pytest.raises(ConfigError, match=r"tested on 2 different test files: .*relabelled/test"):
        compare_runs([runs[0], load_run(other)], n_resamples=500)


def test_compare_of_runs_from_before_checks_the_test_file_as_it_is_now(
    runs: list[RunRecord], tmp_path: Path
) -> None:
    old = [load_run(forget_data_files(copy_run(run, tmp_path))) for run in runs[:2]]
    test_file = Path(runs[0].config["data"]["root"]) / "test.txt"

    comparison = compare_runs(old, n_resamples=500)

    assert set(comparison.tests) == {runs[1].run_id}
    assert comparison.notes == [
        f"{run.run_id} recorded no sha256 of its test file (trained before ltr recorded them): "
        f"checked with {test_file} as it is now"
        for run in runs[:2]
    ]


def test_compare_notes_a_test_file_it_cannot_check(runs: list[RunRecord], tmp_path: Path) -> None:
    moved = forget_data_files(copy_run(runs[1], tmp_path))
    config = (moved / "config.yaml").read_text(encoding="utf-8")
    data = runs[1].config["data"]["root"]
    (moved / "config.yaml").write_text(config.replace(data, str(tmp_path / "gone")), "utf-8")

    comparison = compare_runs([runs[0], load_run(moved)], n_resamples=500)

    assert comparison.notes == [
        f"cannot check that {runs[1].run_id} was tested on the same file as the others: it "
        "recorded no sha256 of its test file, and the file is not there (its data.root holds "
        "none)"
    ]


@pytest.fixture(scope="module")
def edited_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunRecord]:
    """Runs a1, a2 trained on one test file, then b after that file was edited in place."""
    root = tmp_path_factory.mktemp("edited")
    data = write_tiny_data(root / "data", seed=4)
    names = []
    for name in ("a1", "a2", "b"):
        if name == "b":
            relabel_in_place(data / "test.txt")  # same path, same query ids, one label changed
        names.append(tiny_run(data, root / "runs", f"experiment.name={name}"))
    return dict(zip(("a1", "a2", "b"), map(load_run, names), strict=True))


def short_sha256(run: RunRecord) -> str:
    return str(run.report["data"]["test"]["sha256"][:12])


def test_compare_refuses_runs_whose_recorded_test_files_differ_though_the_path_is_the_same(
    edited_runs: dict[str, RunRecord],
) -> None:
    a, b = edited_runs["a1"], edited_runs["b"]
    path = Path(a.config["data"]["root"]) / "test.txt"
    then, now = short_sha256(a), short_sha256(b)
    assert then != now and a.report["data"]["test"]["path"] == str(path)

    with pytest.raises(ConfigError) as refused:
        compare_runs([a, b], n_resamples=500)

    assert str(refused.value) == (
        f"runs were tested on 2 different test files: {path} (sha256 {then}, since changed to "
        f"{now}): 1 run ({a.run_id}); {path} (sha256 {now}): 1 run ({b.run_id}); a paired "
        "comparison needs the same test set: no two of these runs share a test file"
    )


def test_compare_refusal_groups_many_runs_by_test_file_and_names_the_largest_group(
    edited_runs: dict[str, RunRecord], tmp_path: Path
) -> None:
    """As `ltr compare --all` over a folder of runs on two test files: one short line."""
    a1, b = edited_runs["a1"], edited_runs["b"]
    for i in range(5):
        shutil.copytree(a1.path, tmp_path / f"{a1.run_id}-{i}")
    for i in range(2):
        shutil.copytree(b.path, tmp_path / f"{b.run_id}-{i}")
    runs = scan_runs(tmp_path)[0]
    path = Path(a1.config["data"]["root"]) / "test.txt"
    then, now = short_sha256(a1), short_sha256(b)
    ids = [f"{a1.run_id}-{i}" for i in range(5)]

    with pytest.raises(ConfigError) as refused:
        compare_runs(runs, n_resamples=100)

    assert str(refused.value) == (
        f"runs were tested on 2 different test files: {path} (sha256 {then}, since changed to "
        f"{now}): 5 runs ({', '.join(ids[:3])} and 2 more); {path} (sha256 {now}): 2 runs "
        f"({b.run_id}-0, {b.run_id}-1); a paired comparison needs the same test set: compare "
        "runs of one test file: name them, e.g. ltr compare "
        + " ".join(str(tmp_path / run_id) for run_id in ids)
    )


def test_compare_pairs_runs_by_recorded_sha256_and_notes_a_file_changed_since(
    edited_runs: dict[str, RunRecord],
) -> None:
    a1, a2 = edited_runs["a1"], edited_runs["a2"]
    path = Path(a1.config["data"]["root"]) / "test.txt"

    comparison = compare_runs([a1, a2], n_resamples=500)

    then, now = short_sha256(a1), short_sha256(edited_runs["b"])
    assert comparison.notes == [
        f"{run.run_id}'s test file {path} changed since the run read it (sha256 {then} then, "
        f"{now} now); compared by the sha256 recorded at training"
        for run in (a1, a2)
    ]


@pytest.mark.parametrize(
    ("split", "did"), [("valid", "picked its best epoch"), ("train", "was trained")]
)
def test_compare_notes_a_run_that_used_its_test_file_to_train_or_early_stop(
    runs: list[RunRecord], tmp_path: Path, split: str, did: str
) -> None:
    """As an older run trained with data.valid (or data.train) = its test file."""
    leaky = copy_run(runs[1], tmp_path)
    report = json.loads((leaky / "metrics.json").read_text(encoding="utf-8"))
    report["data"][split] = report["data"]["test"]
    (leaky / "metrics.json").write_text(json.dumps(report), encoding="utf-8")
    test = report["data"]["test"]

    comparison = compare_runs([runs[0], load_run(leaky)], n_resamples=500)

    assert comparison.notes == [
        f"{runs[1].run_id} {did} on its test queries: its {split} file {test['path']} is its "
        f"test file {test['path']} (sha256 {test['sha256'][:12]}), so its test metrics are "
        "optimistically biased"
    ]


def test_compare_refuses_a_metric_a_run_lacks(runs: list[RunRecord]) -> None:
    with pytest.raises(ConfigError, match=r"has no per-query values of err@10; it has ndcg@1, "):
        compare_runs(runs, metric="err@10")


@pytest.fixture(scope="module")
def linear_gain_twin(runs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> RunRecord:
    """The first run of `runs` trained again (same data, loss, seed) under a linear NDCG gain."""
    first = scan_runs(runs_dir)[0][0]
    out = tmp_path_factory.mktemp("linear_gain")
    return load_run(
        tiny_run(
            Path(first.config["data"]["root"]),
            out,
            "experiment.name=linear",
            "loss.name=lambdarank",
            "evaluation.gain=linear",
            training={"seed": 0, "num_epochs": 3},
        )
    )


def test_compare_marks_no_best_and_runs_no_test_on_ndcg_of_different_gains(
    runs: list[RunRecord], linear_gain_twin: RunRecord
) -> None:
    pair = [runs[0], linear_gain_twin]

    comparison = compare_runs(pair, metrics=["ndcg@10", "map"], n_resamples=500)

    assert comparison.best["ndcg@10"] == [] and comparison.best["map"] != []
    test = comparison.tests[linear_gain_twin.run_id]
    assert np.isnan(test.randomization.p_value) and np.isnan(test.t_test.p_value)
    assert test.win_tie_loss is None and np.isnan(test.mean_diff)
    assert len(comparison.notes) == 1
    assert f"exp2: {runs[0].run_id}; linear: {linear_gain_twin.run_id}" in comparison.notes[0]
    assert "--metric 'ndcg@10[preset=letor]'" in comparison.notes[0]


def test_compare_refuses_an_asked_ndcg_metric_of_different_gains(
    runs: list[RunRecord], linear_gain_twin: RunRecord
) -> None:
    with pytest.raises(
        ConfigError,
        match=r"metric ndcg@5: runs use different NDCG gains .* test a metric of one gain in "
        r"every run: ndcg@10\[preset=letor\]",
    ):
        compare_runs([runs[0], linear_gain_twin], metric="ndcg@5", n_resamples=500)


def test_compare_tests_the_letor_ndcg_column_across_gains(
    runs: list[RunRecord], linear_gain_twin: RunRecord
) -> None:
    name = "ndcg@10[preset=letor]"

    comparison = compare_runs(
        [runs[0], linear_gain_twin], metric=name, metrics=[name, "map"], n_resamples=500
    )

    test = comparison.tests[linear_gain_twin.run_id]
    assert comparison.notes == [] and comparison.best[name] != []
    assert 0.0 <= test.randomization.p_value <= 1.0 and test.win_tie_loss is not None


def test_compare_refuses_runs_of_different_no_relevant_policies(
    runs: list[RunRecord], tmp_path: Path
) -> None:
    skip = skip_policy_copy(runs[1], tmp_path)

    with pytest.raises(
        ConfigError,
        match=rf"2 different evaluation\.no_relevant policies cannot be compared "
        rf"\(no_relevant=zero: {runs[0].run_id}; no_relevant=skip: ",
    ):
        compare_runs([runs[0], load_run(skip)], n_resamples=500)


def test_compare_accepts_different_policies_on_columns_that_fix_the_policy(
    runs: list[RunRecord], tmp_path: Path
) -> None:
    skip = skip_policy_copy(runs[1], tmp_path)
    fixed = ["ndcg@10[no_relevant=zero]", "ndcg@10[preset=letor]"]

    comparison = compare_runs([runs[0], load_run(skip)], metric=fixed[0], metrics=fixed)

    test = comparison.tests[runs[1].run_id]
    assert comparison.notes == [] and test.n == len(runs[0].query_ids)
    assert 0.0 <= test.randomization.p_value <= 1.0


@pytest.fixture(scope="module")
def gzip_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One model trained twice: on a folder with test.txt, and on a copy with test.txt.gz."""
    root = tmp_path_factory.mktemp("gzip")
    plain = write_tiny_data(root / "plain", seed=4)
    zipped = Path(shutil.copytree(plain, root / "zipped"))
    test = zipped / "test.txt"
    (zipped / "test.txt.gz").write_bytes(gzip.compress(test.read_bytes(), mtime=0))
    test.unlink()
    return {
        name: tiny_run(data, root / "runs", f"experiment.name={name}")
        for name, data in (("plain", plain), ("zipped", zipped))
    }


def test_compare_pairs_runs_tested_on_a_plain_and_a_gzip_copy_of_one_file(
    gzip_runs: dict[str, Path],
) -> None:
    plain, zipped = load_run(gzip_runs["plain"]), load_run(gzip_runs["zipped"])

    comparison = compare_runs([plain, zipped], n_resamples=500)

    content = plain.report["data"]["test"]["sha256"]  # the plain file's bytes are the data
    assert len(comparison.notes) == 1 and comparison.notes[0].startswith(
        f"runs were tested on files of different bytes but the same data (sha256 {content[:12]} "
        "decompressed): "
    )
    assert comparison.tests[zipped.run_id].win_tie_loss == (0, len(plain.query_ids), 0)


def test_a_run_on_a_gzip_file_records_the_sha256_of_its_text(
    gzip_runs: dict[str, Path],
) -> None:
    plain, zipped = load_run(gzip_runs["plain"]), load_run(gzip_runs["zipped"])

    test_plain, test_zipped = plain.report["data"]["test"], zipped.report["data"]["test"]

    assert "content_sha256" not in test_plain  # a plain file's text is its bytes
    assert test_zipped["sha256"] != test_plain["sha256"]
    assert test_zipped["content_sha256"] == test_plain["sha256"]


def test_compare_pairs_a_plain_and_a_gzip_copy_by_recorded_hashes_once_both_are_gone(
    gzip_runs: dict[str, Path], tmp_path: Path
) -> None:
    plain, zipped = load_run(gzip_runs["plain"]), load_run(gzip_runs["zipped"])
    tests = [Path(run.report["data"]["test"]["path"]) for run in (plain, zipped)]
    for number, test in enumerate(tests):
        shutil.move(test, tmp_path / f"{number}{test.name}")
    try:
        comparison = compare_runs([plain, zipped], n_resamples=500)
    finally:
        for number, test in enumerate(tests):
            shutil.move(tmp_path / f"{number}{test.name}", test)

    content = plain.report["data"]["test"]["sha256"]
    assert len(comparison.notes) == 1 and comparison.notes[0].startswith(
        f"runs were tested on files of different bytes but the same data (sha256 {content[:12]} "
        "decompressed): "
    )
    assert comparison.tests[zipped.run_id].win_tie_loss == (0, len(plain.query_ids), 0)


def old_gzip_run(run_dir: Path, destination: Path) -> Path:
    """A copy of ``run_dir`` as trained before ltr recorded a gzip file's content_sha256."""
    copy = Path(shutil.copytree(run_dir, destination / run_dir.name))
    path = copy / "metrics.json"
    report = json.loads(path.read_text(encoding="utf-8"))
    del report["data"]["test"]["content_sha256"]
    path.write_text(json.dumps(report), encoding="utf-8")
    return copy


def test_compare_pairs_an_old_gzip_run_by_rehashing_its_file(
    gzip_runs: dict[str, Path], tmp_path: Path
) -> None:
    plain, old = load_run(gzip_runs["plain"]), load_run(old_gzip_run(gzip_runs["zipped"], tmp_path))

    comparison = compare_runs([plain, old], n_resamples=500)

    assert comparison.notes[0].startswith("runs were tested on files of different bytes but")


def test_compare_refuses_an_old_gzip_run_whose_file_is_gone_saying_the_bytes_differ(
    gzip_runs: dict[str, Path], tmp_path: Path
) -> None:
    old = load_run(old_gzip_run(gzip_runs["zipped"], tmp_path))
    moved = tmp_path / "test.txt.gz"
    shutil.move(old.report["data"]["test"]["path"], moved)
    try:
        with pytest.raises(ConfigError, match=r"\(file bytes differ; a gzip file's run trained"):
            compare_runs([load_run(gzip_runs["plain"]), old], n_resamples=500)
    finally:
        shutil.move(moved, old.report["data"]["test"]["path"])


@pytest.mark.parametrize(
    ("losses", "shown"),
    [(["lambdarank", "listnet", "lambdarank"], "lambdarank+listnet"), (["mse", "mse"], "mse")],
)
def test_an_ensemble_shows_its_members_losses(
    runs: list[RunRecord], tmp_path: Path, losses: list[str], shown: str
) -> None:
    ensemble = copy_run(runs[0], tmp_path)  # config.yaml: the first member's loss
    report = json.loads((ensemble / "metrics.json").read_text(encoding="utf-8"))
    report["members"] = [{"model": "mlp", "loss": loss} for loss in losses]
    (ensemble / "metrics.json").write_text(json.dumps(report), encoding="utf-8")

    assert load_run(ensemble).loss == shown


def test_runs_of_one_loss_show_the_parameters_that_tell_them_apart(
    runs: list[RunRecord], tmp_path: Path
) -> None:
    # lambdarank, as if trained again with another sigma
    variant = Path(shutil.copytree(runs[0].path, tmp_path / f"{runs[0].run_id}-sigma2"))
    config = yaml.safe_load((variant / "config.yaml").read_text(encoding="utf-8"))
    config["loss"]["params"]["sigma"] = 2.0
    (variant / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")

    comparison = compare_runs([runs[0], runs[1], load_run(variant)], n_resamples=200)

    assert [run.loss for run in comparison.runs] == [
        "lambdarank (sigma=1)",
        "listnet",  # the only listnet run: nothing to tell apart
        "lambdarank (sigma=2)",
    ]
    assert comparison.to_dict()["runs"][2]["loss"] == "lambdarank (sigma=2)"
    assert runs[0].loss == "lambdarank"  # the caller's records are left as they were


@pytest.mark.parametrize(
    ("sigmas", "shown"),
    [
        ((1.6875875571239969, 2.0), ["sigma=1.688", "sigma=2"]),  # 4 significant digits
        ((1.68758, 1.68759), ["sigma=1.68758", "sigma=1.68759"]),  # more where 4 read alike
        ((1.0, 1.0 + 2**-52), ["sigma=1", "sigma=1.0000000000000002"]),  # up to 17 digits
    ],
)
def test_loss_parameters_show_few_digits_but_never_alike(
    runs: list[RunRecord], tmp_path: Path, sigmas: tuple[float, float], shown: list[str]
) -> None:
    variants = []
    for i, sigma in enumerate(sigmas):
        variant = Path(shutil.copytree(runs[0].path, tmp_path / f"{runs[0].run_id}-{i}"))
        config = yaml.safe_load((variant / "config.yaml").read_text(encoding="utf-8"))
        config["loss"]["params"]["sigma"] = sigma
        (variant / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        variants.append(load_run(variant))

    comparison = compare_runs(variants, n_resamples=50)

    assert [run.loss for run in comparison.runs] == [f"lambdarank ({s})" for s in shown]


def test_comparison_as_json_is_strict_json(runs: list[RunRecord]) -> None:
    data = compare_runs(runs, n_resamples=500).to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text)["baseline"] == runs[0].run_id
    assert [row["vs_baseline"] is None for row in data["runs"]] == [True, False, False]


def test_the_metrics_plot_title_counts_the_queries_the_means_are_over(
    runs: list[RunRecord], tmp_path: Path
) -> None:
    skipping = copy_run(runs[0], tmp_path)
    blank_all_but_one_query(skipping, "ndcg@10")  # as under skip: 1 query with a relevant doc
    run, n = load_run(skipping), len(runs[0].query_ids)

    titles = [metrics_plot_title([run], metrics) for metrics in (["ndcg@10"], ["ndcg@10", "map"])]

    assert titles == [
        f"Test metrics on {n} queries: means over 1 ({n - 1} skipped: no relevant document), "
        "whiskers: 95% confidence interval",
        f"Test metrics on {n} queries: means over 1 to {n} (the others skipped: no relevant "
        "document), whiskers: 95% confidence interval",
    ]
    assert metrics_plot_title(runs, ["map"]).startswith(f"Test metrics: mean over {n} queries, ")


def test_plotted_whiskers_stay_in_the_metric_range_and_one_value_has_none(
    runs: list[RunRecord], tmp_path: Path
) -> None:
    run = runs[0]
    n = len(run.query_ids)
    near_one = np.ones(n)
    near_one[0] = 0.0  # mean close to 1, a t interval reaching above it
    one_value = np.full(n, np.nan)
    one_value[0] = 0.5
    edited = dataclasses.replace(run, per_query={"mrr": near_one, "ndcg@10": one_value})

    mrr, ndcg = drawn_interval(edited, "mrr", 0.95), drawn_interval(edited, "ndcg@10", 0.95)

    assert edited.interval("mrr").high > 1.0 and mrr.high == 1.0 and 0.0 < mrr.low < mrr.mean
    assert ndcg.mean == 0.5 and math.isnan(ndcg.low) and math.isnan(ndcg.high)
    path = plot_test_metrics([edited], tmp_path / "cmp.png", metrics=["mrr", "ndcg@10"])
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_plots_write_two_pngs_atomically(runs: list[RunRecord], tmp_path: Path) -> None:
    metrics_png = plot_test_metrics(runs, tmp_path / "cmp.png")
    curves_png = plot_training_curves(runs, curves_path(tmp_path / "cmp.png"))
    assert curves_png == tmp_path / "cmp-curves.png"
    for path in (metrics_png, curves_png):
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 20_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmp-curves.png", "cmp.png"]


def test_plot_refuses_an_unknown_image_format(runs: list[RunRecord], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot write \.docx images"):
        plot_test_metrics(runs, tmp_path / "cmp.docx")
