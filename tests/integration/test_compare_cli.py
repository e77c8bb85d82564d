"""`ltr compare` as a user runs it: real training runs in, a table / markdown / JSON out."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ltr.config import load_config
from ltr.training.crossval import run_cv
from support.tiny_runs import forget_data_files, relabel_in_place, tiny_run, write_tiny_data


def run_ltr(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ltr", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three tiny real runs on one synthetic data set (different losses and seeds)."""
    root = tmp_path_factory.mktemp("compare_cli")
    data = write_tiny_data(root / "data", seed=5)
    for loss, seed in [("ranknet", 0), ("listnet", 1), ("approx_ndcg", 2)]:
        tiny_run(
            data,
            root / "runs",
            f"experiment.name={loss}",
            f"loss.name={loss}",
            training={"seed": seed},
        )
    return root / "runs"


def run_names(runs_dir: Path) -> list[str]:
    return sorted(path.name for path in runs_dir.iterdir())


def test_compare_all_prints_a_table_with_the_best_marked(runs_dir: Path) -> None:
    result = run_ltr("compare", "--all", "--dir", runs_dir, "--resamples", "1000")
    assert result.returncode == 0, result.stderr
    oldest, *others = run_names(runs_dir)
    assert "Exp ID" in result.stdout and "NDCG@10" in result.stdout and "W/T/L" in result.stdout
    assert result.stdout.count("★") >= 5 + 1  # one per metric column, and the caption
    assert f"Baseline: {oldest}" in result.stdout
    assert all(name in result.stdout for name in others)


def test_compare_of_one_run_says_there_is_nothing_to_compare_against(runs_dir: Path) -> None:
    name = run_names(runs_dir)[0]
    result = run_ltr("compare", runs_dir / name, "--format", "markdown", "--resamples", "100")
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f"warning: only one run ({name}): nothing to compare it against; name a second run for "
        "paired tests\n"
    )
    header, _, row = result.stdout.splitlines()  # the note once, on stderr: no caption
    assert header == "| Exp ID | Model | Loss | NDCG@1 | NDCG@5 | NDCG@10 | MAP | MRR |"
    assert row.startswith(f"| {name} |") and "★" not in result.stdout


def test_compare_of_one_run_as_a_table_notes_it_once(runs_dir: Path) -> None:
    result = run_ltr("compare", runs_dir / run_names(runs_dir)[0], "--resamples", "100")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("nothing to compare") == 1
    assert "nothing to compare" not in result.stdout and "only" not in result.stdout.lower()


def test_compare_json_is_one_object_with_tests_against_the_named_baseline(
    runs_dir: Path, tmp_path: Path
) -> None:
    names = run_names(runs_dir)
    result = run_ltr(
        "compare",
        *(runs_dir / name for name in names),
        "--baseline",
        runs_dir / names[1],
        "--format",
        "json",
        "--plot",
        tmp_path / "cmp.png",
        "--resamples",
        "1000",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)  # exactly one object: nothing else on stdout
    assert data["baseline"] == names[1] and data["metric"] == "ndcg@10"
    tested = {row["id"]: row["vs_baseline"] for row in data["runs"]}
    assert tested[names[1]] is None
    for name in (names[0], names[2]):
        test = tested[name]
        assert test["wins"] + test["ties"] + test["losses"] == test["queries"] == 8
        assert 0 < test["randomization"]["p_value"] <= 1 and 0 <= test["t_test"]["p_value"] <= 1
    assert data["plots"] == [str(tmp_path / "cmp.png"), str(tmp_path / "cmp-curves.png")]
    assert all(Path(path).stat().st_size > 0 for path in data["plots"])


def test_compare_json_flag_is_format_json(runs_dir: Path) -> None:
    names = run_names(runs_dir)[:2]
    result = run_ltr("compare", *(runs_dir / n for n in names), "--json", "--resamples", "100")
    assert result.returncode == 0, result.stderr
    assert [row["id"] for row in json.loads(result.stdout)["runs"]] == names
    both = run_ltr("compare", runs_dir / names[0], "--json", "--format", "markdown")
    assert both.returncode != 0
    assert both.stderr == "error: --json and --format markdown: give one of them\n"


def test_compare_markdown_is_a_github_table(runs_dir: Path) -> None:
    result = run_ltr("compare", "--all", "--dir", runs_dir, "--format", "markdown")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("| Exp ID | Model | Loss | NDCG@1 |")
    assert set(lines[1]) <= set("|:-") and len(lines) >= 2 + 3
    assert "baseline" in lines[2] and "**" in result.stdout


def test_compare_refuses_a_folder_that_is_not_a_run(runs_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run_ltr("compare", runs_dir / run_names(runs_dir)[0], tmp_path / "empty")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "it has no config.yaml" in result.stderr
    assert "Traceback" not in result.stderr


def test_compare_refuses_runs_tested_on_different_queries(runs_dir: Path, tmp_path: Path) -> None:
    names = run_names(runs_dir)
    other = Path(shutil.copytree(runs_dir / names[1], tmp_path / names[1]))
    table = other / "test_per_query.tsv"
    table.write_text("".join(table.read_text().splitlines(keepends=True)[:-1]))  # one query less
    result = run_ltr("compare", runs_dir / names[0], other)
    assert result.returncode == 1
    assert "were tested on different queries" in result.stderr


def test_compare_needs_runs_or_all() -> None:
    result = run_ltr("compare")
    assert result.returncode == 1 and "give run directories, or --all" in result.stderr


def test_compare_plot_without_extension_writes_pngs_in_new_folders(
    runs_dir: Path, tmp_path: Path
) -> None:
    plot = tmp_path / "newdir" / "sub" / "cmp"
    result = run_ltr("compare", "--all", "--dir", runs_dir, "--resamples", "100", "--plot", plot)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in plot.parent.iterdir()) == ["cmp-curves.png", "cmp.png"]


def test_compare_refuses_runs_around_an_in_place_edit_of_the_test_file(tmp_path: Path) -> None:
    data = write_tiny_data(tmp_path / "data", seed=6)
    before = tiny_run(data, tmp_path / "runs", "experiment.name=before")
    relabel_in_place(data / "test.txt")  # same path, same query ids, one label changed
    after = tiny_run(data, tmp_path / "runs", "experiment.name=after")
    then, now = (
        json.loads((run / "metrics.json").read_text())["data"]["test"]["sha256"][:12]
        for run in (before, after)
    )

    result = run_ltr("compare", before, after)

    assert result.returncode == 1
    test_file = (data / "test.txt").resolve()
    assert result.stderr == (
        f"error: runs were tested on 2 different test files: {test_file} (sha256 {then}, since "
        f"changed to {now}): 1 run ({before.name}); {test_file} (sha256 {now}): 1 run "
        f"({after.name}); a paired comparison needs the same test set: no two of these runs "
        "share a test file\n"
    )


def test_compare_of_runs_from_before_still_works_with_a_note(
    runs_dir: Path, tmp_path: Path
) -> None:
    old = [
        forget_data_files(Path(shutil.copytree(runs_dir / name, tmp_path / name)))
        for name in run_names(runs_dir)[:2]
    ]

    result = run_ltr("compare", *old, "--resamples", "100")

    assert result.returncode == 0, result.stderr
    for run in old:
        assert f"{run.name} recorded no sha256 of its test file" in result.stderr


@pytest.fixture(scope="session")
def cv_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two tiny cvs of `ltr cv` on the same two synthetic folds (ListNet, then RankNet)."""
    root = tmp_path_factory.mktemp("compare_cv_cli")
    for number in (1, 2):
        write_tiny_data(root / "folds" / f"Fold{number}", seed=number, min_docs=10)
    cvs = []
    for loss in ("listnet", "ranknet"):
        config = load_config(
            base={
                "experiment": {"name": loss},
                "data": {"root": "."},  # every fold sets its own
                "model": {"name": "mlp", "hidden_dims": [8]},
                "loss": {"name": loss},
                "training": {"num_epochs": 1, "batch_size": 8, "device": "cpu"},
                "tracking": {"output_dir": str(root), "tensorboard": False, "mlflow": False},
            }
        )
        result = run_cv(config, root / "folds", quiet=True)
        assert result is not None
        cvs.append(result.cv_dir)
    return cvs


def test_compare_of_cvs_pools_their_folds_test_queries(cv_dirs: list[Path]) -> None:
    table = run_ltr("compare", *cv_dirs, "--resamples", "100")
    data = run_ltr("compare", *cv_dirs, "--resamples", "100", "--format", "json")

    assert table.returncode == data.returncode == 0, table.stderr + data.stderr
    runs = json.loads(data.stdout)["runs"]
    queries = json.loads(data.stdout)["test_queries"]
    assert [row["id"] for row in runs] == [cv.name for cv in cv_dirs]
    assert runs[1]["vs_baseline"]["queries"] == queries and runs[1]["folds"] == ["Fold1", "Fold2"]
    assert f"2 cvs on {queries} test queries of 2 folds" in table.stdout
    assert "over the test queries of all folds pooled" in " ".join(table.stdout.split())


def test_compare_refuses_a_cv_beside_a_run(cv_dirs: list[Path]) -> None:
    fold_run = next((cv_dirs[1] / "Fold1").iterdir())

    result = run_ltr("compare", cv_dirs[0], fold_run)

    assert result.returncode == 1
    assert result.stderr == (
        f"error: cannot compare cv directories ({cv_dirs[0].name}) with run directories "
        f"({fold_run.name}): a cv is tested on the queries of all its folds; give only cv "
        "directories or only run directories\n"
    )
