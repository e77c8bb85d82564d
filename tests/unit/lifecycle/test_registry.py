"""Promotion to validated: the gate, the folder it writes, versions, the model card.

Real tiny runs (synthetic data, a few epochs); the MLflow registry is off here
(``register=False``) and exercised against a real SQLite store in
``tests/integration/test_promote_validated.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ltr.data.summary
import ltr.lifecycle.registry
from ltr._fs import file_sha256
from ltr.config import PromotionConfig, load_config
from ltr.errors import DataFormatError, PromotionRefused
from ltr.lifecycle.gates import Baseline, PerQueryTable, evaluate_gate
from ltr.lifecycle.model_card import render_model_card
from ltr.lifecycle.registry import (
    ValidatedModel,
    latest_validated,
    list_validated,
    next_version,
    promote_to_validated,
    validated_version_of,
)
from ltr.training import run_experiment
from support.tiny_runs import forget_data_files, relabel_in_place, retrained_copy, write_tiny_data

NAME = "tiny"
CARD_SECTIONS = (
    "## Intended use",
    "## Data",
    "## Metrics (test set)",
    "## Training configuration",
    "## Promotion gate",
    "## Limitations",
)


def write_data(root: Path) -> Path:
    # 60 test queries: enough for a paired test to tell a trained model from an untrained one
    return write_tiny_data(root, n_queries=120, n_features=10, max_docs=20, splits=(0.4, 0.1, 0.5))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_data(tmp_path_factory.mktemp("data"))


def train_run(root: Path, out: Path, *overrides: str) -> Path:
    base: dict[str, Any] = {
        "experiment": {"name": NAME},
        "data": {"root": str(root)},
        "model": {"name": "mlp", "hidden_dims": [16]},
        "training": {"num_epochs": 6, "batch_size": 8, "learning_rate": 1e-2, "device": "cpu"},
        "tracking": {"output_dir": str(out), "tensorboard": False, "mlflow": False},
    }
    return run_experiment(load_config(base=base, overrides=overrides), quiet=True)


@pytest.fixture(scope="module")
def strong_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_run(data_root, tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def weak_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Barely trained: one epoch at a tiny learning rate keeps the random initial weights."""
    out = tmp_path_factory.mktemp("runs")
    return train_run(data_root, out, "training.num_epochs=1", "training.learning_rate=1e-7")


@pytest.fixture(scope="module")
def failing_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose own config sets floors nobody reaches."""
    out = tmp_path_factory.mktemp("runs")
    floors = "promotion.min_metrics={ndcg@10: 0.99, map: 0.98}"
    return train_run(data_root, out, "training.num_epochs=1", floors)


@pytest.fixture
def validated(tmp_path: Path) -> Path:
    return tmp_path / "validated"


def promote(run: Path, validated: Path, **kwargs: Any) -> Any:
    return promote_to_validated(run, validated_dir=validated, register=False, **kwargs)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_passing_run_writes_the_validated_folder(strong_run: Path, validated: Path) -> None:
    model = promote(strong_run, validated)

    assert model.path == validated / "tiny_v1.0.0"
    assert sorted(p.name for p in validated.iterdir()) == ["tiny_v1.0.0"]  # no temp folder left
    assert sorted(p.name for p in model.path.iterdir()) == [
        "best.pt",
        "config.yaml",
        "metadata.json",
        "model_card.md",
        "preprocessor.json",
        "test_per_query.tsv",
    ]
    assert sha256(model.path / "best.pt") == sha256(strong_run / "checkpoints" / "best.pt")
    metadata = json.loads((model.path / "metadata.json").read_text())
    assert metadata == model.metadata
    assert metadata["model_id"] == "tiny_v1.0.0"
    assert metadata["version"] == "1.0.0"
    assert metadata["status"] == "ready_for_production"
    assert metadata["experiment_id"] == strong_run.name
    assert metadata["run_dir"] == str(strong_run.resolve())
    assert metadata["mlflow_run_id"] is None
    assert datetime.fromisoformat(metadata["validated_at"]).utcoffset() is not None
    assert metadata["code_revision"] is None or len(metadata["code_revision"]) == 40
    assert metadata["registry"] == {"skipped": "registration turned off (register=False)"}
    assert metadata["files"] == {
        name: sha256(model.path / name)
        for name in ("best.pt", "config.yaml", "preprocessor.json", "test_per_query.tsv")
    }


def test_metadata_records_the_data_files_and_their_sha256(
    strong_run: Path, data_root: Path, validated: Path
) -> None:
    data = promote(strong_run, validated).metadata["data"]

    for split, file in (("train", "train.txt"), ("valid", "vali.txt"), ("test", "test.txt")):
        assert data[split]["path"] == str((data_root / file).resolve())
        assert data[split]["sha256"] == sha256(data_root / file)
    assert (data["train"]["queries"], data["valid"]["queries"], data["test"]["queries"]) == (
        48,
        12,
        60,
    )
    assert data["synthetic"] is True


def test_metadata_describes_the_data_files_as_the_run_recorded_them(
    strong_run: Path, validated: Path
) -> None:
    data = promote(strong_run, validated).metadata["data"]

    recorded = json.loads((strong_run / "metrics.json").read_text())["data"]
    for split in ("train", "valid", "test"):
        assert {key: data[split][key] for key in recorded[split]} == recorded[split]


def test_promotion_reads_each_data_file_once(
    strong_run: Path,
    data_root: Path,
    validated: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    promote(strong_run, validated)  # a baseline, so the gate compares test files
    run = copy_run(strong_run, tmp_path / "copy")
    hashed: list[Path] = []

    def counting_sha256(path: Path) -> str:
        hashed.append(Path(path).resolve())
        return file_sha256(path)

    def counting_digests(path: Path) -> tuple[str, str | None]:
        hashed.append(Path(path).resolve())
        return digests(path)

    digests = ltr.data.summary.file_digests
    monkeypatch.setattr(ltr.lifecycle.registry, "file_sha256", counting_sha256)
    monkeypatch.setattr(ltr.data.summary, "file_digests", counting_digests)
    promote(run, validated, promotion=PromotionConfig(min_improvement=-1, significance=None))

    for name in ("train.txt", "vali.txt", "test.txt"):
        assert hashed.count((data_root / name).resolve()) == 1, name


def test_metadata_holds_metrics_under_every_convention(strong_run: Path, validated: Path) -> None:
    metadata = promote(strong_run, validated).metadata
    report = json.loads((strong_run / "metrics.json").read_text())

    metrics = metadata["metrics"]
    assert sorted(metrics) == ["default", "letor", "lightgbm", "trec_eval"]
    assert metrics["default"] == report["test"]
    assert metadata["conventions"]["trec_eval"]["gain"] == "linear"
    # LightGBM scores a query without relevant documents 1, the default 0: never lower
    assert metrics["lightgbm"]["ndcg@10"] >= metrics["default"]["ndcg@10"]
    assert metrics["lightgbm"]["ndcg@10"] == pytest.approx(
        report["test"]["ndcg@10[no_relevant=one]"]
    )


def test_model_card_has_every_section(strong_run: Path, validated: Path) -> None:
    model = promote(strong_run, validated)

    card = (model.path / "model_card.md").read_text()
    assert card == render_model_card(model.metadata)
    assert card.startswith("# Model card: tiny_v1.0.0\n")
    for section in CARD_SECTIONS:
        assert f"\n{section}\n" in card
    assert model.metadata["data"]["test"]["sha256"] in card
    assert "| ndcg@10 |" in card
    assert "| metric | default | letor | lightgbm | trec_eval |" in card


def test_failing_run_is_refused_with_every_failed_check_and_writes_nothing(
    failing_run: Path, validated: Path
) -> None:
    with pytest.raises(PromotionRefused) as refused:
        promote(failing_run, validated)

    report = json.loads((failing_run / "metrics.json").read_text())["test"]
    assert str(refused.value) == (
        f"run {failing_run}: ndcg@10 = {report['ndcg@10']:.3f} is below the gate 0.990; "
        f"map = {report['map']:.3f} is below the gate 0.980"
    )
    assert not validated.exists()


def test_caller_gate_wins_over_the_run_config(failing_run: Path, validated: Path) -> None:
    model = promote(failing_run, validated, promotion=PromotionConfig(min_metrics={"mrr": 0.0}))

    assert [check["name"] for check in model.metadata["gate"]["checks"]] == [
        "min mrr",
        "improvement",
    ]


def test_clearly_better_run_passes_the_significance_gate(
    weak_run: Path, strong_run: Path, validated: Path
) -> None:
    promote(weak_run, validated)

    model = promote(strong_run, validated)

    improvement = model.metadata["gate"]["checks"][-1]
    assert improvement["passed"] is True
    assert improvement["baseline"] == "tiny_v1.0.0"
    assert improvement["mean_diff"] > 0.05
    assert improvement["p_value"] < 0.05
    assert improvement["n_queries"] == 60


def copy_run(run: Path, parent: Path) -> Path:
    """The same weights in another run directory and another checkpoint file (as training the
    run again gives), so it is a new model to validate."""
    parent.mkdir()
    return retrained_copy(run, parent / run.name)


def test_same_quality_run_fails_the_significance_gate(
    strong_run: Path, validated: Path, tmp_path: Path
) -> None:
    promote(strong_run, validated)
    twin = copy_run(strong_run, tmp_path / "copy")

    with pytest.raises(PromotionRefused) as refused:
        promote(twin, validated)

    assert str(refused.value) == (
        f"run {twin}: improvement over validated tiny_v1.0.0 in ndcg@10 is +0.000 "
        "(p = 1 by randomization test), needs p < 0.05"
    )
    assert [p.name for p in validated.iterdir()] == ["tiny_v1.0.0"]


def test_validated_run_is_refused_again_without_gating_it_against_itself(
    strong_run: Path, validated: Path
) -> None:
    first = promote(strong_run, validated)

    with pytest.raises(PromotionRefused) as refused:
        promote(strong_run, validated)

    assert str(refused.value) == (
        f"run {strong_run}: already validated as tiny 1.0.0 ({first.path})"
    )
    assert [p.name for p in validated.iterdir()] == ["tiny_v1.0.0"]


def test_validated_run_is_refused_under_another_name(strong_run: Path, validated: Path) -> None:
    promote(strong_run, validated, name="ranker")

    with pytest.raises(PromotionRefused) as refused:
        promote(strong_run, validated, name="other", version="1.3.0")

    assert str(refused.value) == (
        f"run {strong_run}: already validated as ranker 1.0.0 ({validated}/ranker_v1.0.0)"
    )
    assert [p.name for p in validated.iterdir()] == ["ranker_v1.0.0"]


def test_validated_run_is_refused_under_another_version(strong_run: Path, validated: Path) -> None:
    promote(strong_run, validated)

    with pytest.raises(PromotionRefused, match=r"already validated as tiny 1\.0\.0 \("):
        promote(strong_run, validated, version="1.2.0")

    assert [p.name for p in validated.iterdir()] == ["tiny_v1.0.0"]


def test_run_retrained_since_validation_is_gated_against_its_previous_version(
    strong_run: Path, weak_run: Path, validated: Path, tmp_path: Path
) -> None:
    run = copy_run(weak_run, tmp_path / "copy")
    promote(run, validated)
    for name in ("checkpoints/best.pt", "metrics.json", "test_per_query.tsv"):  # "retrained"
        shutil.copyfile(strong_run / name, run / name)

    model = promote(run, validated)

    improvement = model.metadata["gate"]["checks"][-1]
    assert (model.version, improvement["baseline"]) == ("1.1.0", "tiny_v1.0.0")


NOTHING_TO_IMPROVE_ON = "no other validated model of this name yet: nothing to improve on"


def test_gate_says_nothing_to_improve_on_only_for_a_names_first_version(
    strong_run: Path, validated: Path
) -> None:
    promote(strong_run, validated)
    with contextlib.suppress(PromotionRefused):  # the same checkpoint as a second version
        promote(strong_run, validated, version="1.2.0")

    claims = [
        model.version
        for model in list_validated(validated, NAME)
        if model.metadata["gate"]["checks"][-1]["message"] == NOTHING_TO_IMPROVE_ON
    ]
    assert claims == ["1.0.0"]


def relabelled_copy(data_root: Path, destination: Path) -> Path:
    """``data_root`` with test.txt's labels shuffled: the same query ids, another test set."""
    shutil.copytree(data_root, destination)
    lines = (destination / "test.txt").read_text(encoding="utf-8").splitlines()
    labels = np.random.default_rng(0).permutation([line.split(" ", 1)[0] for line in lines])
    relabelled = [
        f"{label} {line.split(' ', 1)[1]}" for label, line in zip(labels, lines, strict=True)
    ]
    (destination / "test.txt").write_text("\n".join(relabelled) + "\n", encoding="utf-8")
    return destination


def test_gate_refuses_a_run_tested_on_another_file_with_the_same_queries(
    weak_run: Path, data_root: Path, tmp_path: Path, validated: Path
) -> None:
    promote(weak_run, validated)
    other = train_run(relabelled_copy(data_root, tmp_path / "data"), tmp_path / "runs")

    with pytest.raises(
        PromotionRefused,
        match=r"the test files differ \(the run's .*/data/test.* needs its own registry name "
        r"\(ltr promote --name\)$",
    ):
        promote(other, validated)
    assert [p.name for p in validated.iterdir()] == ["tiny_v1.0.0"]

    model = promote(other, validated, name="tiny-relabelled")  # its own name: its own line

    assert model.model_id == "tiny-relabelled_v1.1.0" and model.metadata["name"] == model.name
    assert validated_version_of(other, name="tiny-relabelled", validated_dir=validated) == model
    with pytest.raises(PromotionRefused, match=r"is not validated as tiny; it is validated as"):
        validated_version_of(other, validated_dir=validated)


@pytest.fixture(scope="module")
def runs_around_an_edit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Run a, then the test file relabelled in place (same path and query ids), then run b."""
    data = write_data(tmp_path_factory.mktemp("edited"))
    out = tmp_path_factory.mktemp("runs")
    before = train_run(data, out, "experiment.name=before", f"promotion.registry_name={NAME}")
    relabel_in_place(data / "test.txt")
    after = train_run(data, out, "experiment.name=after", f"promotion.registry_name={NAME}")
    return before, after, data / "test.txt"


def test_promotion_refuses_a_run_whose_test_file_changed_since_training(
    runs_around_an_edit: tuple[Path, Path, Path], validated: Path
) -> None:
    before, after, test_file = runs_around_an_edit
    promote(after, validated)  # tested on the file as it is now
    then, now = (
        json.loads((run / "metrics.json").read_text())["data"]["test"]["sha256"][:12]
        for run in (before, after)
    )

    with pytest.raises(PromotionRefused) as refused:
        promote(before, validated)

    assert str(refused.value) == (
        f"run {before}'s test file {test_file.resolve()} changed since the run read it "
        f"(sha256 {then} then, {now} now); its metrics describe the file it read: restore that "
        "file or train again"
    )
    assert [p.name for p in validated.iterdir()] == ["tiny_v1.0.0"]


def test_promotion_refuses_a_run_whose_training_file_changed_since(
    tmp_path: Path, validated: Path
) -> None:
    data = write_data(tmp_path / "data")
    run = train_run(data, tmp_path / "runs", "training.num_epochs=1")
    relabel_in_place(data / "train.txt")

    with pytest.raises(PromotionRefused, match=r"'s train file .*/data/train\.txt changed since "):
        promote(run, validated)
    assert not validated.exists()


def test_run_from_before_recorded_files_is_promoted_with_the_files_as_they_are(
    strong_run: Path, data_root: Path, tmp_path: Path, validated: Path
) -> None:
    old = forget_data_files(Path(shutil.copytree(strong_run, tmp_path / strong_run.name)))

    model = promote(old, validated)

    assert model.metadata["data"]["test"]["sha256"] == sha256(data_root / "test.txt")


@pytest.mark.parametrize("text", ["{not json", "[]"])
def test_run_with_a_metrics_json_that_is_no_report_is_one_error_naming_the_file(
    strong_run: Path, tmp_path: Path, validated: Path, text: str
) -> None:
    run = Path(shutil.copytree(strong_run, tmp_path / strong_run.name))
    (run / "metrics.json").write_text(text, encoding="utf-8")

    with pytest.raises(DataFormatError, match=r"metrics\.json(:1: invalid JSON|: expected an obj)"):
        promote(run, validated)
    assert not validated.exists()


def test_existing_version_is_refused(strong_run: Path, validated: Path, tmp_path: Path) -> None:
    no_comparison = PromotionConfig(compare_to_validated=False)
    promote(strong_run, validated, version="2.0.0", promotion=no_comparison)
    other = copy_run(strong_run, tmp_path / "copy")

    with pytest.raises(
        PromotionRefused, match=r"tiny_v2\.0\.0 already exists; .*next free: 2\.1\.0"
    ):
        promote(other, validated, version="2.0.0", promotion=no_comparison)


def test_default_version_is_the_next_minor(
    strong_run: Path, validated: Path, tmp_path: Path
) -> None:
    no_comparison = PromotionConfig(compare_to_validated=False)
    first = promote(strong_run, validated, promotion=no_comparison)
    second = promote(copy_run(strong_run, tmp_path / "copy"), validated, promotion=no_comparison)
    third = copy_run(strong_run, tmp_path / "copy2")
    promote(third, validated, version="3.4.1", promotion=no_comparison)

    assert (first.version, second.version) == ("1.0.0", "1.1.0")
    assert next_version(validated) == "3.5.0"
    assert [m.version for m in list_validated(validated, NAME)] == ["1.0.0", "1.1.0", "3.4.1"]


def test_versions_are_one_sequence_across_names_so_two_names_can_share_a_store(
    strong_run: Path, validated: Path, tmp_path: Path
) -> None:
    no_comparison = PromotionConfig(compare_to_validated=False)
    first = promote(strong_run, validated, promotion=no_comparison)
    other = promote(
        copy_run(strong_run, tmp_path / "copy"), validated, name="other", promotion=no_comparison
    )

    assert (first.model_id, other.model_id) == (f"{NAME}_v1.0.0", "other_v1.1.0")
    third = copy_run(strong_run, tmp_path / "copy2")
    with pytest.raises(PromotionRefused) as refused:  # nor by an explicit --version
        promote(third, validated, name="gamma", version="1.0.0", promotion=no_comparison)
    assert str(refused.value) == (
        f"version 1.0.0 is validated already as {NAME}_v1.0.0; versions are one sequence "
        "across names (next free: 1.2.0)"
    )


def test_comparison_uses_the_most_recently_validated(
    strong_run: Path, validated: Path, tmp_path: Path
) -> None:
    no_comparison = PromotionConfig(compare_to_validated=False)
    earlier, later = (
        datetime(2026, 1, 1, tzinfo=timezone.utc),
        datetime(2026, 2, 1, tzinfo=timezone.utc),
    )
    other = copy_run(strong_run, tmp_path / "copy")
    promote(strong_run, validated, version="2.0.0", promotion=no_comparison, now=earlier)
    promote(other, validated, version="1.5.0", promotion=no_comparison, now=later)

    latest = latest_validated(validated, NAME)

    assert latest is not None and latest.version == "1.5.0"


# ---------------------------------------------------------------------------------------------
# The gate on its own: numbers in, checks out.


def table(query_ids: list[str], values: list[float]) -> PerQueryTable:
    return PerQueryTable(np.asarray(query_ids), {"ndcg@10": np.asarray(values, dtype=float)})


CONVENTIONS = {"gain": "exp2", "no_relevant": "zero"}


def validated_again(model: ValidatedModel, name: str, version: str) -> Path:
    """A copy of ``model``'s folder as ``name`` ``version``: what ltr wrote before a checkpoint
    could be validated only once."""
    folder = Path(shutil.copytree(model.path, model.path.parent / f"{name}_v{version}"))
    metadata = {**model.metadata, "name": name, "version": version}
    metadata["model_id"] = folder.name
    (folder / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    return folder


def test_production_refuses_a_run_that_was_never_validated(
    strong_run: Path, weak_run: Path, validated: Path
) -> None:
    promote(strong_run, validated)  # another run's validation does not count

    with pytest.raises(
        PromotionRefused, match=r"is not validated as tiny; run `ltr promote .* first$"
    ):
        validated_version_of(weak_run, validated_dir=validated)


def test_a_copied_run_is_the_same_checkpoint_validated_once(
    strong_run: Path, validated: Path, tmp_path: Path
) -> None:
    first = promote(strong_run, validated)
    copied = Path(shutil.copytree(strong_run, tmp_path / "moved" / strong_run.name))

    with pytest.raises(PromotionRefused) as refused:
        promote(copied, validated, name="zzz")
    assert str(refused.value) == f"run {copied}: already validated as tiny 1.0.0 ({first.path})"
    assert [model.model_id for model in list_validated(validated)] == ["tiny_v1.0.0"]
    # and production points at the run that holds the validation, not at validating the copy
    with pytest.raises(PromotionRefused) as refused:
        validated_version_of(copied, validated_dir=validated)
    assert str(refused.value) == (
        f"run {copied}: its checkpoint is validated as tiny 1.0.0 from run "
        f"{strong_run.resolve()}; promote that run"
    )


def test_a_moved_validated_run_stands_for_its_validation_in_production(
    strong_run: Path, validated: Path, tmp_path: Path
) -> None:
    run = Path(shutil.copytree(strong_run, tmp_path / "runs" / strong_run.name))  # ours to move
    first = promote(run, validated)
    moved = Path(shutil.move(run, tmp_path / "archive" / run.name))

    chosen = validated_version_of(moved, validated_dir=validated)

    assert (chosen.model_id, chosen.metadata["files"]) == (first.model_id, first.metadata["files"])


def test_not_validated_hint_keeps_the_name_given(weak_run: Path, validated: Path) -> None:
    with pytest.raises(PromotionRefused) as refused:
        validated_version_of(weak_run, name="ranker", validated_dir=validated)
    assert str(refused.value) == (
        f"run {weak_run} is not validated as ranker; run `ltr promote {weak_run} --to validated "
        "--name ranker` first"
    )


def test_promotion_errors_name_the_run_as_it_was_given(
    strong_run: Path, validated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    promote(strong_run, validated)
    monkeypatch.chdir(strong_run.parent)
    given = Path("..") / strong_run.parent.name / strong_run.name  # neither name nor absolute

    with pytest.raises(PromotionRefused) as again:
        promote(given, validated, name="other")
    with pytest.raises(PromotionRefused) as wrong_version:
        validated_version_of(given, "9.9.9", validated_dir=validated)

    assert str(again.value).startswith(f"run {given}: already validated as tiny 1.0.0 (")
    assert str(wrong_version.value).startswith(f"run {given}: --version 9.9.9 is not one of")


def test_production_names_the_names_a_run_is_validated_under(
    strong_run: Path, weak_run: Path, validated: Path
) -> None:
    gate = PromotionConfig(compare_to_validated=False)
    ranker = promote(strong_run, validated, name="ranker", promotion=gate)
    validated_again(ranker, "ranker", "1.1.0")  # as a store from before the once-only rule
    validated_again(ranker, "r2", "1.0.0")
    promote(weak_run, validated, name="other", promotion=gate)  # another run: not named

    with pytest.raises(PromotionRefused) as refused:
        validated_version_of(strong_run, validated_dir=validated)

    assert str(refused.value) == (
        f"run {strong_run} is not validated as tiny; it is validated as r2 1.0.0, ranker 1.0.0, "
        "ranker 1.1.0: add --name r2 or --name ranker"
    )


def test_production_takes_the_runs_highest_validated_version(
    strong_run: Path, validated: Path
) -> None:
    gate = PromotionConfig(compare_to_validated=False)
    first = promote(strong_run, validated, version="1.0.0", promotion=gate)
    validated_again(first, NAME, "1.3.0")  # the same model twice, from before the rule

    assert validated_version_of(strong_run, validated_dir=validated).version == "1.3.0"
    chosen = validated_version_of(strong_run, "1.0.0", validated_dir=validated)
    assert chosen.model_id == f"{NAME}_v1.0.0"
    with pytest.raises(PromotionRefused, match=r"--version 1\.1\.0 is not one of its validated"):
        validated_version_of(strong_run, "1.1.0", validated_dir=validated)


def test_production_refuses_a_checkpoint_changed_since_validation(
    strong_run: Path, tmp_path: Path, validated: Path
) -> None:
    run = tmp_path / strong_run.name
    shutil.copytree(strong_run, run)
    promote(run, validated)
    with open(run / "checkpoints" / "best.pt", "ab") as handle:
        handle.write(b"retrained")

    with pytest.raises(PromotionRefused, match=r"best\.pt changed since it was validated as"):
        validated_version_of(run, validated_dir=validated)


def test_gate_pairs_queries_by_id_whatever_their_order() -> None:
    run = table(["a", "b", "c", "d"], [0.9, 0.8, 0.7, 0.6])
    baseline = Baseline("m_v1.0.0", table(["d", "c", "b", "a"], [0.6, 0.7, 0.8, 0.9]), CONVENTIONS)
    promotion = PromotionConfig(significance=None)

    gate = evaluate_gate({"ndcg@10": 0.75}, run, CONVENTIONS, promotion, baseline)

    assert gate.passed
    assert gate.checks[0].values["mean_diff"] == 0.0


def test_gate_refuses_to_compare_different_test_sets() -> None:
    run = table(["a", "b", "c"], [0.9, 0.8, 0.7])
    baseline = Baseline("m_v1.0.0", table(["a", "b", "x"], [0.1, 0.2, 0.3]), CONVENTIONS)

    with pytest.raises(PromotionRefused, match=r"the test sets differ \(the run has 3 test "):
        evaluate_gate({}, run, CONVENTIONS, PromotionConfig(), baseline)


def test_gate_refuses_a_baseline_of_another_test_file() -> None:
    run = table(["a", "b"], [0.9, 0.8])
    mine, theirs = (
        {"path": "/d2/test.txt", "sha256": "2" * 64},
        {"path": "/d/test.txt", "sha256": "1" * 64},
    )
    baseline = Baseline("m_v1.0.0", table(["a", "b"], [0.1, 0.2]), CONVENTIONS, theirs)

    with pytest.raises(PromotionRefused, match=r"the test files differ \(the run's /d2/test\.txt "):
        evaluate_gate({}, run, CONVENTIONS, PromotionConfig(), baseline, test_file=mine)


def test_gate_refuses_to_compare_different_conventions() -> None:
    run = table(["a", "b"], [0.9, 0.8])
    other = {"gain": "linear", "no_relevant": "zero"}
    baseline = Baseline("m_v1.0.0", table(["a", "b"], [0.1, 0.2]), other)

    with pytest.raises(PromotionRefused, match=r"its metrics use conventions"):
        evaluate_gate({}, run, CONVENTIONS, PromotionConfig(), baseline)


def test_gate_reports_a_too_small_improvement_with_the_t_test() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.8, size=30)
    ids = [str(i) for i in range(30)]
    run = table(ids, list(base + 0.01 + rng.normal(0, 0.001, size=30)))
    baseline = Baseline("m_v1.0.0", table(ids, list(base)), CONVENTIONS)
    promotion = PromotionConfig(min_improvement=0.02, significance={"test": "t"})

    gate = evaluate_gate({}, run, CONVENTIONS, promotion, baseline)

    assert not gate.passed
    assert gate.refusal("r1") == (
        "run r1: improvement over validated m_v1.0.0 in ndcg@10 is +0.010 "
        f"(p = {gate.checks[0].values['p_value']:.2g} by paired t-test), needs at least +0.020"
    )


def test_gate_names_a_floor_on_a_metric_the_run_lacks() -> None:
    promotion = PromotionConfig(min_metrics={"ndcg@20": 0.5}, compare_to_validated=False)

    gate = evaluate_gate({"ndcg@10": 0.6}, table([], []), CONVENTIONS, promotion, None)

    assert gate.refusal("r1") == (
        "run r1: ndcg@20 is not among the run's test metrics (ndcg@10); the gate cannot check it"
    )
