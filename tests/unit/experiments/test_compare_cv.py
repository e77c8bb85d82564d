"""Comparing cross-validations: real tiny cvs of ltr cv, their folds' test queries pooled."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ltr.config import load_config
from ltr.errors import ConfigError, DataNotFoundError
from ltr.experiments.compare import RunRecord, compare_runs, load_run, scan_runs
from ltr.experiments.cv_record import load_cv, load_run_or_cv
from ltr.experiments.plots import plot_test_metrics, plot_training_curves
from ltr.experiments.significance import paired_t_test, randomization_test, win_tie_loss
from ltr.training.crossval import run_cv
from support.tiny_runs import forget_data_files, relabel_in_place, write_tiny_data

FOLD_QUERIES = {"Fold1": 30, "Fold2": 45, "Fold3": 20}  # unequal test folds: pooled != fold means


def tiny_cv(folds_dir: Path, out: Path, *overrides: str) -> Path:
    """``ltr cv`` of an MLP [8] with ListNet, 2 epochs a fold; the cv directory."""
    base: dict[str, Any] = {
        "experiment": {"name": "tiny"},
        "data": {"root": "."},  # every fold sets its own
        "model": {"name": "mlp", "hidden_dims": [8]},
        "loss": {"name": "listnet"},
        "training": {"num_epochs": 2, "batch_size": 8, "device": "cpu"},
        "tracking": {"output_dir": str(out), "tensorboard": False, "mlflow": False},
    }
    result = run_cv(load_config(base=base, overrides=overrides), folds_dir, quiet=True)
    assert result is not None
    return result.cv_dir


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def fold_run_dirs(cv_dir: Path) -> dict[str, Path]:
    return {fold["name"]: Path(fold["run_dir"]) for fold in read_json(cv_dir / "cv.json")["folds"]}


def read_fold_table(run_dir: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """A fold run's ``test_per_query.tsv`` read here, independently of ltr's reader."""
    header, *rows = (run_dir / "test_per_query.tsv").read_text(encoding="utf-8").splitlines()
    cells = [row.split("\t") for row in rows]
    names = header.split("\t")[1:]
    columns = {name: np.array([float(row[i]) for row in cells]) for i, name in enumerate(names, 1)}
    return [row[0] for row in cells], columns


def pooled_by_hand(cv_dir: Path, metric: str) -> tuple[list[str], np.ndarray]:
    """The fold tables concatenated in fold order, keyed ``<fold>:<qid>``."""
    keys: list[str] = []
    values = []
    for fold, run_dir in fold_run_dirs(cv_dir).items():
        qids, columns = read_fold_table(run_dir)
        keys += [f"{fold}:{qid}" for qid in qids]
        values.append(columns[metric])
    return keys, np.concatenate(values)


@pytest.fixture(scope="module")
def folds_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("folds")
    for number, (name, n_queries) in enumerate(FOLD_QUERIES.items(), start=1):
        write_tiny_data(root / name, n_queries=n_queries, seed=number, min_docs=10)
    return root


@pytest.fixture(scope="module")
def cvs(folds_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two cvs of the same folds: ListNet with seed 0, RankNet with seed 1."""
    out = tmp_path_factory.mktemp("cvs")
    return [
        tiny_cv(folds_dir, out, "experiment.name=listnet"),
        tiny_cv(folds_dir, out, "experiment.name=ranknet", "loss.name=ranknet", "training.seed=1"),
    ]


@pytest.fixture(scope="module")
def records(cvs: list[Path]) -> list[RunRecord]:
    return [load_cv(cv_dir) for cv_dir in cvs]


def copy_cv(cv_dir: Path, destination: Path) -> Path:
    return Path(shutil.copytree(cv_dir, destination / cv_dir.name))


def test_a_cv_pools_the_fold_tables_keyed_by_fold_and_query_id(
    cvs: list[Path], records: list[RunRecord]
) -> None:
    cv = records[0]
    raw_ids = [
        qid for run_dir in fold_run_dirs(cvs[0]).values() for qid in read_fold_table(run_dir)[0]
    ]
    assert len(set(raw_ids)) < len(raw_ids)  # folds reuse query ids: the fold keeps them apart

    for metric in ("ndcg@10", "map", "ndcg@10[no_relevant=skip]"):
        keys, values = pooled_by_hand(cvs[0], metric)
        assert cv.query_ids.tolist() == keys
        np.testing.assert_array_equal(cv.per_query[metric], values)  # NaN where skipped, too
    assert len(set(cv.query_ids.tolist())) == len(raw_ids)
    assert (cv.run_id, cv.model, cv.loss) == (cvs[0].name, "mlp", "listnet")
    assert list(cv.folds) == list(FOLD_QUERIES)


def test_a_cv_reads_its_folds_after_the_cv_directory_moved(
    cvs: list[Path], records: list[RunRecord], tmp_path: Path
) -> None:
    moved = load_cv(copy_cv(cvs[0], tmp_path))  # cv.json still names the old run folders

    assert all(fold.path.is_relative_to(tmp_path) for fold in moved.folds.values())
    np.testing.assert_array_equal(moved.per_query["ndcg@10"], records[0].per_query["ndcg@10"])


def test_cv_means_are_over_pooled_queries_and_json_also_gives_the_mean_of_fold_means(
    cvs: list[Path], records: list[RunRecord]
) -> None:
    rows = compare_runs(records, n_resamples=200).to_dict()["runs"]

    for cv_dir, row in zip(cvs, rows, strict=True):
        summary = read_json(cv_dir / "cv.json")["metrics"]
        for metric in ("ndcg@10", "map"):
            pooled = pooled_by_hand(cv_dir, metric)[1].mean()
            assert row["test"][metric] == pytest.approx(pooled, rel=1e-12)
            assert row["mean_of_fold_means"][metric] == summary[metric]["mean"]
            assert row["test"][metric] != pytest.approx(summary[metric]["mean"], rel=1e-6)
        assert row["folds"] == list(FOLD_QUERIES)


def test_cv_history_is_the_per_epoch_mean_over_folds(
    cvs: list[Path], records: list[RunRecord]
) -> None:
    histories = [read_json(run / "training_history.json") for run in fold_run_dirs(cvs[0]).values()]

    assert [record["epoch"] for record in records[0].history] == [1, 2]
    for i, record in enumerate(records[0].history):
        for key in ("train_loss", "valid_ndcg@10"):
            expected = np.mean([history[i][key] for history in histories])
            assert record[key] == pytest.approx(expected, rel=1e-12)


def test_paired_tests_of_cvs_are_those_of_the_pooled_queries(
    cvs: list[Path], records: list[RunRecord]
) -> None:
    comparison = compare_runs(records, metric="ndcg@10", n_resamples=2_000, seed=3)

    base_keys, base = pooled_by_hand(cvs[0], "ndcg@10")
    run_keys, run = pooled_by_hand(cvs[1], "ndcg@10")
    assert run_keys == base_keys
    test = comparison.tests[records[1].run_id]
    assert comparison.n_queries == test.n == len(base)
    assert test.t_test == paired_t_test(run, base)
    assert test.randomization == randomization_test(run, base, n_resamples=2_000, seed=3)
    assert test.win_tie_loss == win_tie_loss(run, base)


def test_compare_refuses_cvs_of_different_folds(
    folds_dir: Path, records: list[RunRecord], tmp_path: Path
) -> None:
    two_folds = tmp_path / "two_folds"
    two_folds.mkdir()
    for name in ("Fold1", "Fold2"):
        (two_folds / name).symlink_to(folds_dir / name)  # the same files, one fold fewer
    fewer = load_cv(tiny_cv(two_folds, tmp_path / "runs"))

    with pytest.raises(ConfigError) as refused:
        compare_runs([records[0], fewer], n_resamples=200)

    assert str(refused.value) == (
        f"cvs ran on different folds: {records[0].run_id} (Fold1, Fold2, Fold3), {fewer.run_id} "
        "(Fold1, Fold2); a paired comparison needs the same test queries: compare cvs of the "
        "same folds"
    )


def test_compare_refuses_cvs_whose_runs_of_a_fold_were_tested_on_different_files(
    folds_dir: Path, records: list[RunRecord], tmp_path: Path
) -> None:
    edited = Path(shutil.copytree(folds_dir, tmp_path / "edited"))
    relabel_in_place(edited / "Fold2" / "test.txt")  # same query ids, one label changed
    other = load_cv(tiny_cv(edited, tmp_path / "runs"))

    with pytest.raises(ConfigError, match="tested on 2 different test files: ") as refused:
        compare_runs([records[0], other], n_resamples=200)

    message = str(refused.value)
    assert f"{folds_dir / 'Fold2' / 'test.txt'} (sha256 " in message
    assert f"1 run ({records[0].run_id}/Fold2)" in message
    assert f"{edited / 'Fold2' / 'test.txt'} (sha256 " in message
    assert f"1 run ({other.run_id}/Fold2)" in message
    assert message.endswith("compare cvs whose runs of each fold were tested on the same file")
    assert "Fold1" not in message and "Fold3" not in message


def test_compare_checks_cv_folds_from_before_recorded_hashes_with_the_files_as_they_are(
    cvs: list[Path], tmp_path: Path
) -> None:
    old = [copy_cv(cv_dir, tmp_path) for cv_dir in cvs]
    for cv_dir in old:
        for run_dir in (cv_dir / fold for fold in FOLD_QUERIES):
            forget_data_files(next(run_dir.iterdir()))

    comparison = compare_runs([load_cv(cv_dir) for cv_dir in old], n_resamples=200)

    assert len(comparison.notes) == 2 * len(FOLD_QUERIES)
    assert comparison.notes[0].startswith(
        f"{old[0].name}/Fold1 recorded no sha256 of its test file (trained before ltr recorded "
        "them): checked with "
    )


def test_compare_refuses_cvs_of_different_no_relevant_policies(
    folds_dir: Path, records: list[RunRecord], tmp_path: Path
) -> None:
    skip = load_cv(tiny_cv(folds_dir, tmp_path, "evaluation.no_relevant=skip"))

    with pytest.raises(ConfigError) as refused:
        compare_runs([records[0], skip, records[1]], n_resamples=200)

    # grouped by policy, the largest group first, ending with the command that compares it
    assert str(refused.value) == (
        "runs evaluated under 2 different evaluation.no_relevant policies cannot be compared "
        f"(no_relevant=zero: {records[0].run_id}, {records[1].run_id}; no_relevant=skip: "
        f"{skip.run_id}) on ndcg@1, ndcg@5, ndcg@10, map, mrr: NDCG, MAP and MRR all depend on "
        f"it; compare runs evaluated alike, e.g. ltr compare {records[0].path} "
        f"{records[1].path}, or compare on columns that fix the policy: --metric "
        "'ndcg@10[no_relevant=zero]' --metrics 'ndcg@10[no_relevant=zero],ndcg@10[preset=letor]'"
    )


@pytest.mark.parametrize("unfinished", ["no metrics.json", "cv.json names no run"])
def test_load_cv_refuses_an_unfinished_fold_and_suggests_resume(
    cvs: list[Path], tmp_path: Path, unfinished: str
) -> None:
    cv_dir = copy_cv(cvs[0], tmp_path)
    if unfinished == "no metrics.json":
        (next((cv_dir / "Fold2").iterdir()) / "metrics.json").unlink()
    else:  # as cv.json is before the fold's run has finished
        state = read_json(cv_dir / "cv.json")
        state["folds"][1].update(run_dir=None, test=None)
        (cv_dir / "cv.json").write_text(json.dumps(state), encoding="utf-8")

    with pytest.raises(DataNotFoundError) as refused:
        load_cv(cv_dir)

    assert str(refused.value) == (
        f"cv {cv_dir}: fold Fold2 is unfinished (it has no metrics.json); finish it with "
        f"`ltr cv --resume {cv_dir}`"
    )


def test_compare_refuses_a_mix_of_a_run_and_a_cv(cvs: list[Path], records: list[RunRecord]) -> None:
    run = load_run_or_cv(fold_run_dirs(cvs[1])["Fold1"])  # a run directory: no cv.json
    assert not run.folds

    with pytest.raises(ConfigError) as refused:
        compare_runs([records[0], run], n_resamples=200)

    assert str(refused.value) == (
        f"cannot compare cv directories ({records[0].run_id}) with run directories "
        f"({run.run_id}): a cv is tested on the queries of all its folds; give only cv "
        "directories or only run directories"
    )


def test_compare_refuses_a_cv_given_twice_through_a_symlink(
    cvs: list[Path], records: list[RunRecord], tmp_path: Path
) -> None:
    alias = tmp_path / "same-cv"
    alias.symlink_to(cvs[0], target_is_directory=True)
    with pytest.raises(ConfigError, match=f"same-cv is {records[0].run_id} \\(the same folder"):
        compare_runs([records[0], load_run_or_cv(alias)], n_resamples=200)


def test_load_run_or_cv_reads_a_run_directory_as_load_run_does(cvs: list[Path]) -> None:
    run_dir = fold_run_dirs(cvs[0])["Fold3"]
    run, direct = load_run_or_cv(run_dir), load_run(run_dir)
    assert run.run_id == direct.run_id and run.query_ids.tolist() == direct.query_ids.tolist()


def test_scan_of_a_folder_of_cvs_only_says_to_name_them(cvs: list[Path]) -> None:
    with pytest.raises(
        DataNotFoundError, match=r"holds cv directories of ltr cv but no run, and --all compares"
    ) as error:
        scan_runs(cvs[0].parent)
    assert f"name them: ltr compare {cvs[0]} {cvs[1]}" in str(error.value)


def test_scan_notes_the_cvs_it_skips_beside_runs(cvs: list[Path], tmp_path: Path) -> None:
    copy_cv(cvs[0], tmp_path)
    run_dir = shutil.copytree(fold_run_dirs(cvs[0])["Fold1"], tmp_path / "run")

    found, notes = scan_runs(tmp_path)

    assert [run.path for run in found] == [run_dir]
    assert notes == [
        f"skipped 1 cv directory (--all compares runs); to compare cvs, name them: "
        f"ltr compare {tmp_path / cvs[0].name}"
    ]


def test_table_of_one_cv_of_one_fold_counts_in_the_singular(
    cvs: list[Path], tmp_path: Path
) -> None:
    from rich.console import Console

    from ltr.cli.experiments import rich_table

    one = copy_cv(cvs[0], tmp_path)
    state = read_json(one / "cv.json")
    state["folds"] = state["folds"][:1]
    (one / "cv.json").write_text(json.dumps(state), encoding="utf-8")
    record = load_cv(one)
    console = Console(width=200, record=True)

    console.print(rich_table(compare_runs([record], n_resamples=100)))

    title = console.export_text().splitlines()[0].rstrip()
    assert title == f"1 cv on {len(record.query_ids)} test queries of 1 fold"


def test_plots_of_cvs_show_pooled_metrics_and_mean_curves(
    records: list[RunRecord], tmp_path: Path
) -> None:
    written = [
        plot_test_metrics(records, tmp_path / "cmp.png"),
        plot_training_curves(records, tmp_path / "cmp-curves.png"),
    ]
    assert all(path.read_bytes()[:4] == b"\x89PNG" for path in written)


def test_curves_of_cvs_promise_no_best_epoch_star_they_do_not_draw(
    records: list[RunRecord], tmp_path: Path
) -> None:
    svg = plot_training_curves(records, tmp_path / "curves.svg").read_text(encoding="utf-8")

    assert "<!-- Validation NDCG@10, mean over folds -->" in svg  # matplotlib names each text
    assert "best epoch" not in svg
