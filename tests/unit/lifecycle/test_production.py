"""`ltr promote --to production` against the live model, and `ltr models list`'s lookups.

A real tiny run, validated into ``tmp_path/validated`` (where `ltr promote` looks from the
working directory); the store's bundles are written directly (a linear ONNX graph), so no test
pays for an export: a refused promotion stops before it, and an accepted one here goes live by
rolling forward to the candidate's stored version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import ltr.lifecycle.registry
from ltr.cli import app
from ltr.config import PromotionConfig
from ltr.errors import ConfigError, PromotionRefused, UsageError
from ltr.lifecycle.bundle import write_bundle
from ltr.lifecycle.registry import ValidatedModel, promote_to_validated
from ltr.lifecycle.store import ModelStore
from support.onnx_models import linear_onnx
from support.tiny_runs import N_FEATURES, tiny_run, write_tiny_data

METRIC = "ndcg@10"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("promote")
    return tiny_run(write_tiny_data(root / "data"), root / "runs", training={"num_epochs": 1})


@pytest.fixture
def candidate(run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ValidatedModel:
    """``run`` validated as ranker 1.0.0, in the working directory's ``validated/``."""
    monkeypatch.chdir(tmp_path)
    gate = PromotionConfig(compare_to_validated=False)
    return promote_to_validated(
        run, name="ranker", promotion=gate, validated_dir=tmp_path / "validated", register=False
    )


def add_bundle(store: ModelStore, version: str, **metadata: Any) -> None:
    weights = linear_onnx([1.0] * N_FEATURES)
    facts = {"version": version, "n_features": N_FEATURES, **metadata}
    store.add(lambda out: write_bundle(out, {"model.onnx": weights}, facts))


def add_live(store: ModelStore, candidate: ValidatedModel, value: float, sha256: str) -> None:
    """Live 1.2.0, exp002_listnet, with test ``METRIC`` = ``value`` on a file of ``sha256``."""
    recorded = candidate.metadata
    metrics = {
        "test": {METRIC: value},
        "conventions": recorded["conventions"]["default"],
        "data": {"test": {"path": "/data/test.txt", "sha256": sha256}},
    }
    add_bundle(
        store, "1.2.0", source_run="experiments/listnet", metrics=metrics,
        validated={"name": "exp002_listnet", "model_id": "exp002_listnet_v1.2.0"},
    )  # fmt: skip
    store.set_current("1.2.0")


def candidate_value(candidate: ValidatedModel) -> float:
    return float(candidate.metadata["metrics"]["default"][METRIC])


def sha256_of_test_file(candidate: ValidatedModel) -> str:
    return str(candidate.metadata["data"]["test"]["sha256"])


def promote(run: Path, *options: str) -> Any:
    return CliRunner().invoke(app, ["promote", str(run), "--to", "production", *options])


def last_event(store: ModelStore) -> dict[str, Any]:
    return dict(store.history()["events"][-1])


def test_production_refuses_a_candidate_the_live_model_beats_on_the_same_test_file(
    run: Path, candidate: ValidatedModel, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path / "models")
    ours = candidate_value(candidate)
    add_live(store, candidate, ours + 0.05, sha256_of_test_file(candidate))

    result = promote(run, "--name", "ranker")

    assert isinstance(result.exception, PromotionRefused)  # `ltr` prints it as one line, exit 1
    assert str(result.exception) == (
        f"live 1.2.0 (exp002_listnet) has {METRIC} {ours + 0.05:.4f} > {ours:.4f} on the same "
        "test file; add --force to replace it"
    )
    assert (store.versions(), store.current()) == (["1.2.0"], "1.2.0")  # nothing exported


def with_candidate_stored(store: ModelStore, run: Path) -> None:
    """The candidate's own export as 1.0.0, as after a rollback: going live needs no export."""
    add_bundle(store, "1.0.0", source_run=str(run))


def test_force_replaces_a_better_live_model_records_it_and_rollback_needs_no_force(
    run: Path, candidate: ValidatedModel, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path / "models")
    with_candidate_stored(store, run)
    ours = candidate_value(candidate)
    add_live(store, candidate, ours + 0.05, sha256_of_test_file(candidate))

    forced = promote(run, "--name", "ranker", "--force")
    rolled_back = CliRunner().invoke(app, ["models", "rollback"])

    assert forced.exit_code == 0, forced.output
    assert forced.stdout == "models/current: 1.2.0 -> 1.0.0 (stored already)\n"
    assert forced.stderr.startswith("warning: live 1.2.0 (exp002_listnet) has ndcg@10 ")
    assert forced.stderr.endswith("; replacing it (--force)\n")
    promotion = store.history()["events"][-2]
    assert (promotion["to"], promotion["forced"]) == ("1.0.0", True)
    assert promotion["compared_with_live"] == {
        "metric": METRIC,
        "live_version": "1.2.0",
        "live_name": "exp002_listnet",
        "live_value": pytest.approx(ours + 0.05),
        "candidate_value": pytest.approx(ours),
        "not_compared": None,
    }
    assert rolled_back.exit_code == 0, rolled_back.output
    assert store.current() == "1.2.0"
    assert last_event(store)["action"] == "rollback"


def test_production_goes_on_with_a_note_when_the_test_files_differ(
    run: Path, candidate: ValidatedModel, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path / "models")
    with_candidate_stored(store, run)
    add_live(store, candidate, candidate_value(candidate) + 0.05, "f" * 64)

    result = promote(run, "--name", "ranker")

    assert result.exit_code == 0, result.output
    ours = candidate.metadata["data"]["test"]
    assert result.stderr == (
        "warning: could not compare with live 1.2.0 (exp002_listnet): the test files differ "
        f"(live: /data/test.txt sha256 ffffffffffff, candidate: {ours['path']} sha256 "
        f"{ours['sha256'][:12]})\n"
    )
    assert store.current() == "1.0.0"
    event = last_event(store)
    assert (event["forced"], event["compared_with_live"]["live_value"]) == (False, None)
    assert event["compared_with_live"]["not_compared"].startswith("the test files differ (")


def test_production_over_a_worse_live_model_records_the_comparison(
    run: Path, candidate: ValidatedModel, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path / "models")
    with_candidate_stored(store, run)
    ours = candidate_value(candidate)
    add_live(store, candidate, ours - 0.05, sha256_of_test_file(candidate))

    result = promote(run, "--name", "ranker")

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    compared = last_event(store)["compared_with_live"]
    assert (compared["live_value"], compared["candidate_value"]) == (
        pytest.approx(ours - 0.05),
        pytest.approx(ours),
    )


def test_force_is_refused_for_validation(run: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["promote", str(run), "--to", "validated", "--force"])

    assert isinstance(result.exception, UsageError)  # `ltr` exits 2: bad usage
    assert str(result.exception) == (
        "--force: only with --to production (to replace a better live model)"
    )


def test_collision_suggests_another_store_and_deletes_nothing(
    run: Path, candidate: ValidatedModel, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path / "models")
    add_bundle(store, "1.0.0", source_run="experiments/other")  # every name's 1.0.0: one slot

    refused = promote(run, "--name", "ranker", "--version", "1.0.0")

    assert isinstance(refused.exception, ConfigError)
    assert str(refused.exception) == (
        f"version 1.0.0 in models was exported from experiments/other, not from ranker_v1.0.0's "
        f"run {run}; the store is keyed by version alone, so the same version of two names "
        "collides there, and a stored version is never overwritten: promote the run into a "
        f"store of its own, e.g. `ltr promote {run} --to production --name ranker --version "
        "1.0.0 --store models-ranker`"
    )
    assert "rm " not in str(refused.exception)
    assert candidate.path.is_dir() and not ModelStore(tmp_path / "models-ranker").root.exists()


def test_models_list_reads_the_validated_folder_once(
    run: Path, candidate: ValidatedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ModelStore(tmp_path / "models")
    for version in ("1.0.0", "1.1.0", "1.2.0"):  # bundles from before they recorded a name
        add_bundle(store, version, source_run=str(run))
    listings: list[Path] = []
    list_validated = ltr.lifecycle.registry.list_validated

    def counting(folder: Any, name: str | None = None) -> list[ValidatedModel]:
        listings.append(Path(folder))
        return list_validated(folder, name)

    monkeypatch.setattr(ltr.lifecycle.registry, "list_validated", counting)

    result = CliRunner().invoke(app, ["models", "list", "--json"])

    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["versions"]
    assert [(row["name"], row["name_looked_up"]) for row in rows] == [
        ("ranker", True),
        (None, False),
        (None, False),
    ]
    assert len(listings) == 1


@pytest.mark.parametrize(
    "command",
    [["models", "list"], ["models", "show", "1.0.0"], ["models", "verify"], ["models", "rollback"]],
)
def test_models_commands_refuse_a_store_that_is_a_file(tmp_path: Path, command: list[str]) -> None:
    blocker = tmp_path / "train.txt"
    blocker.write_text("not a store\n")

    result = CliRunner().invoke(app, [*command, "--store", str(blocker)])

    assert isinstance(result.exception, ConfigError)  # `ltr` prints it as one line, exit 1
    assert str(result.exception) == f"model store {blocker} is a file, not a folder"


def test_production_refuses_a_store_that_is_a_file(
    run: Path, candidate: ValidatedModel, tmp_path: Path
) -> None:
    blocker = tmp_path / "train.txt"
    blocker.write_text("not a store\n")

    result = promote(run, "--name", "ranker", "--store", str(blocker))

    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == f"model store {blocker} is a file, not a folder"


def test_force_over_a_worse_live_model_records_nothing_forced(
    run: Path, candidate: ValidatedModel, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path / "models")
    with_candidate_stored(store, run)
    add_live(store, candidate, candidate_value(candidate) - 0.05, sha256_of_test_file(candidate))

    result = promote(run, "--name", "ranker", "--force")

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert last_event(store)["forced"] is False  # the candidate was better: nothing overridden


@pytest.mark.parametrize(
    ("damaged", "live", "cause"),
    [
        ("current", None, f"model store models: {Path('models/current')} must name a version"),
        ("versions/1.2.0/metadata.json", "1.2.0", "bundle "),
    ],
)
def test_production_goes_on_with_a_warning_when_the_live_model_cannot_be_read(
    run: Path, candidate: ValidatedModel, tmp_path: Path, damaged: str, live: str | None, cause: str
) -> None:
    store = ModelStore(tmp_path / "models")
    with_candidate_stored(store, run)
    add_live(store, candidate, candidate_value(candidate) + 0.05, sha256_of_test_file(candidate))
    (store.root / damaged).write_text("garbage!!\n")

    result = promote(run, "--name", "ranker")

    assert result.exit_code == 0, result.output
    seen = "the live model" if live is None else f"live {live}"
    assert result.stderr.startswith(
        f"warning: could not compare with {seen}: the live model cannot be read: {cause}"
    )
    assert store.current() == "1.0.0"
    event = last_event(store)  # switched from the version the comparison saw live
    assert (event["from"], event["compared_with_live"]["live_version"]) == (live, live)
    assert event["compared_with_live"]["not_compared"].startswith("the live model cannot be read")


def test_an_unreadable_history_refuses_production_before_the_export(
    run: Path, candidate: ValidatedModel, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path / "models")
    add_live(store, candidate, candidate_value(candidate) - 0.05, sha256_of_test_file(candidate))
    (store.root / "history.json").write_text('{"live": [')

    result = promote(run, "--name", "ranker")

    assert result.exit_code == 1
    assert "history.json cannot be read" in str(result.exception)
    assert (store.versions(), store.current()) == (["1.2.0"], "1.2.0")  # nothing exported
