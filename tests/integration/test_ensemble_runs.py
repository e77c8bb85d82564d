"""`ltr ensemble` on real runs: the run it writes, its numbers, what it refuses, the CLI, export."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ltr.cli import app
from ltr.config import load_config
from ltr.data.letor import load_letor
from ltr.data.runs import read_scores
from ltr.errors import ConfigError, ShapeError
from ltr.evaluation import evaluate_scores
from ltr.inference import Predictor
from ltr.lifecycle.export import export_bundle
from ltr.lifecycle.registry import promote_to_validated
from ltr.training import run_experiment
from ltr.training.ensemble import build_ensemble
from ltr.training.experiment import load_splits
from support.tiny_runs import write_tiny_data

REPO_ROOT = Path(__file__).resolve().parents[2]
N_FEATURES = 8
SEEDS = (0, 1, 2)


def train(root: Path, data: Path | dict[str, str], *overrides: str) -> Path:
    """A 2-epoch run of configs/default.yaml (small MLP) on a data root or explicit files."""
    if isinstance(data, Path):
        where = [f"data.root={data}"]
    else:  # explicit files; the default's data.root (quickstart/data) must go
        where = ["data.root=null", *(f"data.{split}={path}" for split, path in data.items())]
    config = load_config(
        REPO_ROOT / "configs" / "default.yaml",
        [
            *where,
            f"tracking.output_dir={root / 'runs'}",
            "model.hidden_dims=[8]",
            "training.num_epochs=2",
            "training.batch_size=8",
            "training.device=cpu",
            "tracking.tensorboard=false",
            "tracking.mlflow=false",
            *overrides,
        ],
    )
    return run_experiment(config, quiet=True)


def ltr_ensemble(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``ltr ensemble ARGS`` in a real process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "ltr", "ensemble", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def ndcg10(data_file: Path, scores: np.ndarray) -> float:
    return float(evaluate_scores(load_letor(data_file), scores, ["ndcg@10"]).means["ndcg@10"])


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ensemble")
    write_tiny_data(path / "data", n_features=N_FEATURES, seed=5)
    return path


@pytest.fixture(scope="module")
def members(root: Path) -> list[Path]:
    """Three seeds of one config on data with a validation file."""
    return [
        train(root, root / "data", f"training.seed={s}", f"experiment.name=s{s}") for s in SEEDS
    ]


@pytest.fixture(scope="module")
def ensemble(root: Path, members: list[Path]) -> Path:
    return build_ensemble(members, output_dir=root / "ensembles", quiet=True)


def test_run_dir_holds_a_loadable_config_and_checkpoint(
    ensemble: Path, members: list[Path]
) -> None:
    assert ensemble.parent.name == "ensembles" and ensemble.name.endswith("-s0_ensemble3")
    config = load_config(ensemble / "config.yaml")
    assert config.model.name == "ensemble" and config.experiment.name == "s0_ensemble3"
    member_models = [load_config(m / "config.yaml").model.model_dump() for m in members]
    assert config.model.params["members"] == member_models
    assert config.model.params["weights"] is None

    checkpoint = torch.load(ensemble / "checkpoints" / "best.pt", weights_only=True)
    assert checkpoint["epoch"] == 0 and checkpoint["optimizer"] is None
    assert checkpoint["n_features"] == N_FEATURES
    assert checkpoint["model"]["weights"].tolist() == pytest.approx([1 / 3] * 3)
    member_state = torch.load(members[1] / "checkpoints" / "best.pt", weights_only=True)["model"]
    for key, value in member_state.items():
        assert torch.equal(checkpoint["model"][f"members.1.{key}"], value)

    assert read_json(ensemble / "preprocessor.json") == read_json(members[0] / "preprocessor.json")
    assert read_json(ensemble / "training_history.json") == []


def test_test_metrics_are_those_of_the_predictor_and_of_the_members_mean(
    root: Path, ensemble: Path, members: list[Path]
) -> None:
    test_file = root / "data" / "test.txt"
    test = load_letor(test_file)
    report = read_json(ensemble / "metrics.json")

    scores = Predictor.load(ensemble).score(test)
    assert ndcg10(test_file, scores) == report["test"]["ndcg@10"]
    assert report["test_queries"] == test.n_queries

    mean = np.mean([Predictor.load(m).score(test) for m in members], axis=0)
    np.testing.assert_allclose(scores, mean, rtol=0, atol=1e-6)
    assert ndcg10(test_file, mean) == pytest.approx(report["test"]["ndcg@10"], abs=1e-6)


def test_validation_numbers_come_from_the_validation_file(
    root: Path, ensemble: Path, members: list[Path]
) -> None:
    report = read_json(ensemble / "metrics.json")
    assert report["valid_from_train"] is False
    assert {"ndcg@1", "ndcg@10", "map", "mrr"} <= set(report["valid"])
    assert all(math.isfinite(v) for v in report["valid"].values())
    valid_file = root / "data" / "vali.txt"
    scores = Predictor.load(ensemble).score(load_letor(valid_file))
    assert ndcg10(valid_file, scores) == pytest.approx(report["valid"]["ndcg@10"], abs=1e-12)
    assert (report["best_epoch"], report["epochs"], report["stopped_early"]) == (None, 0, False)
    records = report["members"]
    assert [r["seed"] for r in records] == list(SEEDS)
    assert [r["run_dir"] for r in records] == [str(m.resolve()) for m in members]
    assert all(r["model"] == "mlp" for r in records)
    checkpoints = [member / "checkpoints" / "best.pt" for member in members]
    assert [r["sha256"] for r in records] == [
        hashlib.sha256(path.read_bytes()).hexdigest() for path in checkpoints
    ]


def test_ensemble_records_the_data_files_it_read_like_a_trained_run(
    root: Path, ensemble: Path, members: list[Path]
) -> None:
    files = read_json(ensemble / "metrics.json")["data"]
    assert files == read_json(members[0] / "metrics.json")["data"]
    test_file = root / "data" / "test.txt"
    assert files["test"]["path"] == str(test_file.resolve())
    assert files["test"]["sha256"] == hashlib.sha256(test_file.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def train_test_only(root: Path) -> dict[str, str]:
    """Data without a validation file: members validate on seeded splits of train.txt."""
    return {"train": str(root / "data" / "train.txt"), "test": str(root / "data" / "test.txt")}


def test_seeds_without_a_validation_file_share_the_split_and_validate_the_ensemble_on_it(
    root: Path, train_test_only: dict[str, str], tmp_path: Path
) -> None:
    out = root / "no_valid"
    seeded = [train(out, train_test_only, f"training.seed={s}") for s in (0, 1)]  # standard
    member_splits = [read_json(run / "metrics.json")["valid"]["ndcg@10"] for run in seeded]
    assert member_splits[0] != member_splits[1]  # different models, one validation split

    ensemble = build_ensemble(seeded, output_dir=tmp_path, quiet=True)
    report = read_json(ensemble / "metrics.json")
    config = load_config(ensemble / "config.yaml")
    splits = load_splits(config.data)
    expected = evaluate_scores(
        splits.valid, Predictor.load(ensemble).score(splits.valid), ["ndcg@10"]
    ).means["ndcg@10"]
    assert report["valid_from_train"] is True
    assert report["valid"]["ndcg@10"] == pytest.approx(expected, abs=1e-12)


def test_members_split_with_different_split_seeds_are_refused(
    root: Path, train_test_only: dict[str, str], tmp_path: Path
) -> None:
    out = root / "split_seeds"
    split = [train(out, train_test_only, f"data.split_seed={s}") for s in (0, 1)]
    with pytest.raises(ConfigError, match=r"other data settings.*data\.split_seed"):
        build_ensemble(split, output_dir=tmp_path, quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_members_normalized_differently_are_refused(
    root: Path, members: list[Path], tmp_path: Path
) -> None:
    minmax = train(root, root / "data", "data.normalization=minmax")
    with pytest.raises(ConfigError, match=r"data\.normalization"):
        build_ensemble([members[0], minmax], output_dir=tmp_path, quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_members_with_different_feature_counts_are_refused(
    root: Path, members: list[Path], tmp_path: Path
) -> None:
    write_tiny_data(root / "wide", n_queries=20, n_features=N_FEATURES + 2, seed=5)
    wide = train(root, root / "wide")
    with pytest.raises(
        ShapeError, match=rf"scores {N_FEATURES + 2} features; .* scores {N_FEATURES}"
    ):
        build_ensemble([members[0], wide], output_dir=tmp_path, quiet=True)


@pytest.mark.parametrize(
    ("count", "weights", "name", "message"),
    [
        (1, None, None, r"at least 2 members; got 1"),
        (0, None, None, r"at least 2 members; got 0"),
        (2, [1.0], None, r"model\.weights: 1 weights for 2 members"),
        (2, [1.0, -1.0], None, r"model\.weights: need finite, non-negative"),
        (2, None, "not a name", r"experiment\.name"),
    ],
)
def test_bad_requests_are_config_errors_that_write_nothing(
    members: list[Path], tmp_path: Path, count: int, weights, name, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build_ensemble(members[:count], name=name, weights=weights, output_dir=tmp_path, quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_a_member_given_twice_is_refused(members: list[Path], tmp_path: Path) -> None:
    twice = [members[0], members[1], members[0] / "checkpoints" / "best.pt"]
    with pytest.raises(ConfigError, match=r"best\.pt is given twice \(also as .*s0\); give"):
        build_ensemble(twice, output_dir=tmp_path, quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_a_cv_directory_is_refused_as_no_set_of_members(
    members: list[Path], tmp_path: Path
) -> None:
    cv_dir = tmp_path / "exp-cv"  # the layout ltr cv writes, its fold runs copied from members
    folds = []
    for fold, run in (("Fold1", members[0]), ("Fold2", members[1])):
        copy = shutil.copytree(run, cv_dir / fold / run.name)
        folds.append({"name": fold, "data_root": "data", "run_dir": str(copy.resolve())})
    folds.append({"name": "Fold3", "data_root": "data", "run_dir": None})  # not trained yet
    cv_state = {"folds_dir": "data", "config": {}, "folds": folds}
    (cv_dir / "cv.json").write_text(json.dumps(cv_state), encoding="utf-8")

    for given in ([cv_dir, members[2]], [cv_dir]):  # alone too: not a member-count error
        with pytest.raises(ConfigError) as error:
            build_ensemble(given, output_dir=tmp_path, quiet=True)

        assert str(error.value) == (
            f"{cv_dir} is a cv directory of `ltr cv`; its fold runs were trained on different "
            "folds (each on the others' test queries), so they do not average into one model: "
            "ensemble runs trained on the same data (seeds, losses)"
        )


def interrupted_copy(run_dir: Path, where: Path, epochs_done: int) -> Path:
    """``run_dir`` as if stopped after ``epochs_done`` epochs: no metrics.json, a short history."""
    copy = shutil.copytree(run_dir, where / f"{run_dir.name}-stopped")
    (copy / "metrics.json").unlink()
    history = read_json(copy / "training_history.json")[:epochs_done]
    (copy / "training_history.json").write_text(json.dumps(history), encoding="utf-8")
    return copy


def test_an_unfinished_member_is_refused_before_any_work(
    members: list[Path], tmp_path: Path
) -> None:
    stopped = interrupted_copy(members[1], tmp_path / "stopped", epochs_done=1)
    runs = tmp_path / "runs"
    runs.mkdir()
    result = ltr_ensemble(members[0], stopped, "--output-dir", runs)
    assert result.returncode == 1
    assert result.stderr == (
        f"error: 1 member(s) did not finish (no metrics.json): {stopped} (1 of 2 epochs done); "
        "finish each with `ltr train --resume <run>` or leave it out of the ensemble\n"
    )
    assert list(runs.iterdir()) == []


def test_an_ensemble_lands_beside_its_first_run_from_any_folder(
    root: Path, members: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(root)
    relative = train(root, root / "data", "tracking.output_dir=relative_runs").resolve()
    monkeypatch.chdir(tmp_path)  # elsewhere, where relative_runs/ does not exist

    built = build_ensemble([relative, members[1]], name="beside", quiet=True)

    assert built.parent == relative.parent == root / "relative_runs"
    assert not (tmp_path / "relative_runs").exists()


def test_an_ensemble_is_not_a_member(ensemble: Path, members: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ensembles do not nest"):
        build_ensemble([members[0], ensemble], output_dir=tmp_path, quiet=True)


def test_predict_then_evaluate_reproduces_the_test_metrics(
    root: Path, ensemble: Path, tmp_path: Path
) -> None:
    runner, scores = CliRunner(), tmp_path / "scores.txt"
    test_file = root / "data" / "test.txt"
    predicted = runner.invoke(
        app, ["predict", "--model", str(ensemble), "--data", str(test_file), "--out", str(scores)]
    )
    assert predicted.exit_code == 0, predicted.output
    assert predicted.stdout == f"wrote {scores}\n"
    evaluated = runner.invoke(
        app, ["evaluate", "--data", str(test_file), "--scores", str(scores), "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    means = json.loads(evaluated.stdout)["metrics"]
    assert means["ndcg@10"] == read_json(ensemble / "metrics.json")["test"]["ndcg@10"]
    assert len(read_scores(scores)) == load_letor(test_file).n_docs


def test_compare_takes_trained_and_ensemble_runs_together(
    ensemble: Path, members: list[Path]
) -> None:
    result = CliRunner().invoke(
        app,
        ["compare", *map(str, [*members, ensemble]), "--format", "json", "--resamples", "200"],
    )
    assert result.exit_code == 0, result.output
    rows = {row["id"]: row for row in json.loads(result.stdout)["runs"]}
    assert [row["model"] for row in rows.values()] == ["mlp", "mlp", "mlp", "ensemble"]
    row = rows[ensemble.name]
    assert row["test"]["ndcg@10"] == read_json(ensemble / "metrics.json")["test"]["ndcg@10"]
    assert (row["best_epoch"], row["epochs"]) == (None, 0)
    assert row["vs_baseline"] is not None  # paired per query against the first member


def test_ensemble_command_writes_a_weighted_run(members: list[Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            *("ensemble", *map(str, members)),
            *("--name", "first_only", "--output-dir", str(tmp_path), "--weights", "1,0,0"),
        ],
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = tmp_path.iterdir()
    assert run_dir.name.endswith("-first_only")
    shown, valid, test = result.stdout.splitlines()  # the result, on stdout
    assert shown == f"Ensemble of 3 runs: {run_dir}"
    assert valid.startswith("Validation: ndcg@1=") and test.startswith("Test: ndcg@1=")
    assert load_config(run_dir / "config.yaml").model.params["weights"] == [1.0, 0.0, 0.0]
    # all weight on the first member: the ensemble ranks exactly as that member does
    test = read_json(run_dir / "metrics.json")["test"]
    assert test == pytest.approx(read_json(members[0] / "metrics.json")["test"], abs=1e-12)


@pytest.mark.parametrize(
    ("weights", "problem"),
    [
        ("1,abc", "give numbers separated by commas"),
        ("a,b", "give numbers separated by commas"),
        ("2,1,1", "3 weights for 2 runs"),
        ("1,-1", "need finite, non-negative weights with a positive sum"),
        ("0,0", "need finite, non-negative weights with a positive sum"),
    ],
)
def test_ensemble_command_reports_bad_weights_as_bad_usage_in_one_line(
    weights: str, problem: str, members: list[Path], tmp_path: Path
) -> None:
    result = ltr_ensemble(*members[:2], "--output-dir", tmp_path, "--weights", weights)
    assert result.returncode == 2
    assert result.stderr == f"error: --weights: {problem}; got {weights!r}\n"
    assert list(tmp_path.iterdir()) == []


def test_export_of_an_ensemble_run_passes_parity(ensemble: Path, tmp_path: Path) -> None:
    report = export_bundle(ensemble, tmp_path / "bundle")
    assert report.parity.passed and report.parity.max_abs_diff <= 1e-5
    assert report.metadata["metrics"] == read_json(ensemble / "metrics.json")
    assert [spec["name"] for spec in report.inputs] == ["features"]  # mlp members: no mask


def test_promote_to_validated_describes_the_ensemble_in_its_model_card(
    ensemble: Path, tmp_path: Path
) -> None:
    model = promote_to_validated(ensemble, validated_dir=tmp_path / "validated", register=False)
    card = (model.path / "model_card.md").read_text(encoding="utf-8")
    report = read_json(ensemble / "metrics.json")
    assert f"the mean score of {len(SEEDS)} trained runs" in card
    assert "Epochs:" not in card  # nothing was trained to build it
    assert model.metadata["metrics"]["default"]["ndcg@10"] == pytest.approx(
        report["test"]["ndcg@10"]
    )


def test_members_with_and_without_encoded_inputs_average_and_export(
    root: Path, members: list[Path], tmp_path: Path
) -> None:
    encoded = train(root, root / "data", "model.piecewise_bins=4", "experiment.name=ple")
    mixed = build_ensemble([members[0], encoded], output_dir=tmp_path, quiet=True)
    test = load_letor(root / "data" / "test.txt")

    scores = Predictor.load(mixed).score(test)

    mean = np.mean([Predictor.load(m).score(test) for m in (members[0], encoded)], axis=0)
    np.testing.assert_allclose(scores, mean, rtol=0, atol=1e-6)
    assert export_bundle(mixed, tmp_path / "bundle").parity.passed


def test_quiet_ensemble_prints_exactly_its_run_directory(
    members: list[Path], tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app, ["ensemble", *map(str, members[:2]), "--output-dir", str(tmp_path), "--quiet"]
    )

    assert result.exit_code == 0, result.output
    (run_dir,) = tmp_path.iterdir()
    assert result.stdout == f"{run_dir}\n" and result.stderr == ""


def test_a_relative_output_dir_gives_an_absolute_run_directory(
    members: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # as ltr train and ltr cv print theirs

    run_dir = build_ensemble(members[:2], output_dir=Path("ensembles"), quiet=True)

    assert run_dir.is_absolute() and run_dir.parent == tmp_path / "ensembles"


def test_an_ensemble_run_keeps_train_log_like_a_trained_run(
    members: list[Path], tmp_path: Path, ltr_main
) -> None:
    status, out, err = ltr_main("ensemble", *members[:2], "--output-dir", tmp_path / "shown")
    assert status == 0, err
    (shown,) = (tmp_path / "shown").iterdir()
    assert (shown / "train.log").read_text(encoding="utf-8") == out + err

    status, out, err = ltr_main(
        "ensemble", *members[:2], "--output-dir", tmp_path / "quiet", "--quiet"
    )

    assert status == 0, err
    (quiet,) = (tmp_path / "quiet").iterdir()
    assert out == f"{quiet}\n"  # the results are in its train.log alone
    logged = (quiet / "train.log").read_text(encoding="utf-8").splitlines()
    assert [line.split(":")[0] for line in logged] == ["Ensemble of 2 runs", "Validation", "Test"]


@pytest.fixture(scope="module")
def mse_member(root: Path) -> Path:
    """The first member's config trained with a pointwise loss: scores on another scale."""
    return train(
        root, root / "data", "loss.name=mse", f"training.seed={SEEDS[0]}", "experiment.name=mse"
    )


def train_spread(member: Path, root: Path) -> float:
    """Pooled within-query standard deviation of ``member``'s scores on the training file."""
    train_data = load_letor(root / "data" / "train.txt")
    scores = Predictor.load(member).score(train_data)
    sizes = np.diff(train_data.query_offsets)
    means = np.add.reduceat(scores, train_data.query_offsets[:-1]) / sizes
    return float(np.sqrt(np.mean((scores - np.repeat(means, sizes)) ** 2)))


def test_members_of_different_losses_are_scaled_to_one_spread_by_default(
    root: Path, members: list[Path], mse_member: Path, tmp_path: Path
) -> None:
    pair = [members[0], mse_member]

    built = build_ensemble(pair, output_dir=tmp_path, quiet=True)

    scaling = read_json(built / "metrics.json")["score_scaling"]
    spreads = [train_spread(member, root) for member in pair]
    assert (scaling["scaled"], scaling["why"]) == (True, "the members' losses differ")
    assert scaling["train_score_std"] == pytest.approx(spreads, rel=1e-5)
    weights = load_config(built / "config.yaml").model.params["weights"]
    assert weights == pytest.approx(scaling["weights"]) and sum(weights) == pytest.approx(1.0)
    # each member's weighted scores spread alike: neither dominates the mean
    assert weights[0] * spreads[0] == pytest.approx(weights[1] * spreads[1], rel=1e-5)
    test = load_letor(root / "data" / "test.txt")
    mean = sum(w * Predictor.load(m).score(test) for w, m in zip(weights, pair, strict=True))
    np.testing.assert_allclose(Predictor.load(built).score(test), mean, rtol=0, atol=1e-6)
    assert export_bundle(built, tmp_path / "bundle").parity.passed


def test_members_of_one_loss_average_unscaled_by_default(ensemble: Path) -> None:
    scaling = read_json(ensemble / "metrics.json")["score_scaling"]

    assert (scaling["scaled"], scaling["why"]) == (False, "the members share one loss")
    assert scaling["weights"] == pytest.approx([1 / len(SEEDS)] * len(SEEDS))
    assert "train_score_std" not in scaling


@pytest.mark.parametrize("flag", ["--scale-scores", "--no-scale-scores"])
def test_ensemble_command_forces_score_scaling_on_or_off(
    members: list[Path], mse_member: Path, tmp_path: Path, flag: str
) -> None:
    pair = [members[0], mse_member] if flag == "--no-scale-scores" else members[:2]
    args = ["ensemble", *map(str, pair), "--output-dir", str(tmp_path), flag, "--quiet"]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    scaling = read_json(Path(result.stdout.strip()) / "metrics.json")["score_scaling"]
    forced = flag == "--scale-scores"
    assert (
        scaling["scaled"] is forced
        and scaling["why"] == f"asked (scale_scores={str(forced).lower()})"
    )
    assert ("train_score_std" in scaling) is forced
