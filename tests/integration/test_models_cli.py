"""`ltr models ...` and `ltr promote` as a user runs them: a real process, exit codes, messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ltr.cli import app
from ltr.lifecycle.bundle import write_bundle
from ltr.lifecycle.store import ModelStore
from support.onnx_models import linear_onnx
from support.tiny_runs import retrained_copy

N_FEATURES = 3


def ltr(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ltr", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    """``models/`` with 1.0.0 then 1.1.0 promoted; 1.1.0 is live."""
    store = ModelStore(tmp_path / "models")
    for i, version in enumerate(["1.0.0", "1.1.0"]):
        metadata = {
            "version": version,
            "n_features": N_FEATURES,
            "source_run": f"experiments/run-{i}",
            "metrics": {"test": {"ndcg@10": 0.41 + i / 10}},
        }
        store.add(
            lambda out, m=metadata: write_bundle(out, {"model.onnx": linear_onnx([1.0] * 3)}, m)
        )
        store.set_current(version)
    return store


def test_list_shows_versions_live_marker_source_and_ndcg(store: ModelStore) -> None:
    result = ltr("models", "list", "--json", cwd=store.root.parent)
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert listing["current"] == "1.1.0"
    rows = [
        (r["version"], r["current"], r["source_run"], r["ndcg@10"]) for r in listing["versions"]
    ]
    assert rows == [
        ("1.0.0", False, "experiments/run-0", 0.41),
        ("1.1.0", True, "experiments/run-1", pytest.approx(0.51)),
    ]


def test_list_table_names_every_version(store: ModelStore) -> None:
    result = ltr("models", "list", "--store", str(store.root), cwd=store.root.parent.parent)
    assert result.returncode == 0, result.stderr
    assert "1.0.0" in result.stdout and "0.5100" in result.stdout and "*" in result.stdout


def test_show_prints_metadata_of_a_verified_version(store: ModelStore) -> None:
    result = ltr("models", "show", "1.0.0", cwd=store.root.parent)
    assert result.returncode == 0, result.stderr
    assert "source run  experiments/run-0" in result.stdout
    assert "│ ndcg@10 │ 0.4100 │" in result.stdout


LONG_RUN = "experiments/20261122-165057-exp003_lambdarank_with_a_rather_long_experiment_name"


@pytest.fixture
def promoted(tmp_path: Path) -> ModelStore:
    """A store whose live 2.0.0 was promoted from the validated model ranker_v2.0.0."""
    store = ModelStore(tmp_path / "models")
    metadata = {
        "version": "2.0.0",
        "n_features": N_FEATURES,
        "source_run": LONG_RUN,
        "metrics": {
            "best_epoch": 9,
            "conventions": {"gain": "exp2", "no_relevant": "zero"},
            "test": {"map": 0.788156776741333, "ndcg@10[preset=letor]": 0.7073616757981406},
            "data": {
                "test": {"path": "/data/test.txt", "sha256": "f6fc211f46d401c6c58c7d27"},
                "train": {"path": "/data/train.txt", "sha256": "15966ff8196b8188cb010cec"},
            },
        },
        "validated": {
            "name": "ranker",
            "model_id": "ranker_v2.0.0",
            "validated_at": "2026-11-22T16:53:01.123+00:00",
            "status": "ready_for_production",
            "path": "/work/validated/ranker_v2.0.0",
        },
    }
    store.add(lambda out: write_bundle(out, {"model.onnx": linear_onnx([1.0] * 3)}, metadata))
    store.set_current("2.0.0")
    return store


def test_show_names_the_model_and_its_validation_and_rounds_metrics(
    promoted: ModelStore,
) -> None:
    result = CliRunner().invoke(app, ["models", "show", "2.0.0", "--store", str(promoted.root)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("version     2.0.0 (live since ")
    assert lines[1:3] == [
        "name        ranker",
        "validated   ranker_v2.0.0 at 2026-11-22T16:53:01.123+00:00, ready_for_production",
    ]
    assert "│ map                   │ 0.7882 │" in lines
    assert "│ ndcg@10[preset=letor] │ 0.7074 │" in lines
    assert "gain=exp2, no_relevant=zero" in [line.strip() for line in lines]
    data = lines.index("data")
    assert lines[data + 1 : data + 3] == [
        "  train /data/train.txt  sha256 15966ff8196b…",
        "  test  /data/test.txt  sha256 f6fc211f46d4…",
    ]
    assert "0.788156776741333" not in result.stdout  # full precision is --json's


def test_show_orders_metrics_by_name_then_cutoff_as_a_number(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    test = {"map": 0.5, "ndcg@1": 0.1, "ndcg@10": 0.4, "ndcg@3": 0.2, "ndcg@5": 0.3}
    metadata = {"version": "1.0.0", "n_features": N_FEATURES, "metrics": {"test": test}}
    store.add(lambda out: write_bundle(out, {"model.onnx": linear_onnx([1.0] * 3)}, metadata))

    result = CliRunner().invoke(app, ["models", "show", "1.0.0", "--store", str(store.root)])

    assert result.exit_code == 0, result.output
    rows = [line.split("│")[1].strip() for line in result.stdout.splitlines() if "│ 0." in line]
    assert rows == ["ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "map"]


def test_show_json_keeps_full_precision(promoted: ModelStore) -> None:
    args = ["models", "show", "2.0.0", "--store", str(promoted.root), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metadata = json.loads(result.stdout)["metadata"]
    assert metadata["metrics"]["test"]["map"] == 0.788156776741333
    assert metadata["validated"]["name"] == "ranker"


def test_list_has_a_name_column_and_keeps_run_names_whole_in_a_pipe(
    promoted: ModelStore,
) -> None:
    result = CliRunner().invoke(app, ["models", "list", "--store", str(promoted.root)])
    assert result.exit_code == 0, result.output
    header, _, row = result.stdout.splitlines()
    assert header.split() == ["version", "name", "created_at", "source", "run", "ndcg@10", "size"]
    assert row.split()[:3] == ["*", "2.0.0", "ranker"]
    assert Path(LONG_RUN).name in row


def store_with_conventions(root: Path, *no_relevant: str | None) -> ModelStore:
    """Versions 1.0.0, 1.1.0, ... tested under ``no_relevant`` (None: not recorded)."""
    store = ModelStore(root)
    for i, policy in enumerate(no_relevant):
        metrics: dict[str, object] = {"test": {"ndcg@10": 0.4 + i / 10}}
        if policy is not None:
            metrics["conventions"] = {"gain": "exp2", "no_relevant": policy}
        facts = {"version": f"1.{i}.0", "n_features": N_FEATURES, "metrics": metrics}
        store.add(lambda out, m=facts: write_bundle(out, {"model.onnx": linear_onnx([1.0] * 3)}, m))
    return store


def test_list_marks_values_tested_under_other_conventions_than_the_live_one(
    tmp_path: Path,
) -> None:
    store = store_with_conventions(tmp_path / "models", "one", "zero", None)
    store.set_current("1.1.0")
    args = ["models", "list", "--store", str(store.root)]

    listed = CliRunner().invoke(app, args)
    as_json = CliRunner().invoke(app, [*args, "--json"])

    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert [line.split()[-3] for line in lines[2:5]] == ["0.4000‡", "0.5000", "0.6000‡"]
    assert lines[5] == (
        "‡ ndcg@10 under other metric conventions than live 1.1.0 (gain=exp2, "
        "no_relevant=zero): 1.0.0: gain=exp2, no_relevant=one; 1.2.0: conventions not recorded"
    )
    conventions = [row["conventions"] for row in json.loads(as_json.stdout)["versions"]]
    assert conventions == [
        {"gain": "exp2", "no_relevant": "one"},
        {"gain": "exp2", "no_relevant": "zero"},
        None,
    ]


def test_list_without_a_live_version_compares_conventions_with_the_first(tmp_path: Path) -> None:
    store = store_with_conventions(tmp_path / "models", "zero", "zero", "one")

    listed = CliRunner().invoke(app, ["models", "list", "--store", str(store.root)])

    assert listed.exit_code == 0, listed.output
    assert "‡" not in "".join(listed.stdout.splitlines()[2:4])
    assert listed.stdout.splitlines()[-1] == (
        "‡ ndcg@10 under other metric conventions than the first listed version, 1.0.0 "
        "(gain=exp2, no_relevant=zero): 1.2.0: gain=exp2, no_relevant=one"
    )


def test_verify_passes_a_clean_store(store: ModelStore) -> None:
    result = ltr("models", "verify", cwd=store.root.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", "1.0.0", "ok", "1.1.0", "(live)"]


def test_verify_exits_1_naming_the_bundle_and_file(store: ModelStore) -> None:
    model = store.root / "versions" / "1.0.0" / "model.onnx"
    model.write_bytes(model.read_bytes() + b"\x00")
    result = ltr("models", "verify", cwd=store.root.parent)
    assert result.returncode == 1
    assert result.stderr == (
        "error: bundle models/versions/1.0.0: sha256 of model.onnx does not match metadata.json\n"
    )
    assert "ok      1.1.0" in result.stdout


def test_verify_of_one_version_checks_only_that_one(store: ModelStore) -> None:
    (store.root / "versions" / "1.0.0" / "metadata.json").write_text("{")
    assert ltr("models", "verify", "1.1.0", cwd=store.root.parent).returncode == 0
    result = ltr("models", "verify", "1.0.0", cwd=store.root.parent)
    assert result.returncode == 1
    assert "bundle models/versions/1.0.0: metadata.json is not valid JSON" in result.stderr


def test_verify_checks_every_bundle_then_fails_on_a_corrupt_pointer(store: ModelStore) -> None:
    (store.root / "current").write_text("garbage\n")

    result = ltr("models", "verify", cwd=store.root.parent)

    assert result.returncode == 1
    assert result.stdout.split() == ["ok", "1.0.0", "ok", "1.1.0"]
    assert result.stderr == (
        "error: model store models: models/current must name a version X.Y.Z; got 'garbage'; "
        "history.json says 1.1.0 was live last: make it live again with `ltr promote "
        "experiments/run-1 --to production --version 1.1.0 --store models`\n"
    )


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["list", "--json"],
        ["show", "1.0.0"],
        ["verify"],
        ["verify", "1.0.0"],
        ["rollback"],
    ],
)
def test_models_commands_refuse_a_store_that_does_not_exist(
    store: ModelStore, command: list[str]
) -> None:
    result = ltr("models", *command, "--store", "nosuch", cwd=store.root.parent)

    assert result.returncode == 1
    assert result.stderr == (
        "error: model store nosuch does not exist; give --store the folder that "
        "`ltr promote RUN --to production` created\n"
    )
    assert result.stdout == ""
    assert not (store.root.parent / "nosuch").exists()


def test_verify_and_list_of_an_empty_store_say_so_and_succeed(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    verified = ltr("models", "verify", cwd=tmp_path)
    listed = ltr("models", "list", cwd=tmp_path)
    assert (verified.returncode, verified.stdout) == (0, "no versions in models\n")
    assert listed.returncode == 0 and listed.stdout.startswith("no versions in models;")


def test_rollback_switches_back_and_says_so(store: ModelStore) -> None:
    result = ltr("models", "rollback", cwd=store.root.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "models/current: 1.1.0 -> 1.0.0"
    assert (store.root / "current").read_text() == "1.0.0\n"


def test_rollback_repairs_a_corrupt_pointer_from_the_history(store: ModelStore) -> None:
    (store.root / "current").write_text("garbage\n")

    result = ltr("models", "rollback", cwd=store.root.parent)

    assert result.returncode == 0, result.stderr
    assert "must name a version X.Y.Z; got 'garbage'" in result.stderr  # warned, not fatal
    assert result.stdout.strip() == "models/current: ? -> 1.0.0"
    assert (store.root / "current").read_text() == "1.0.0\n"


def test_rollback_with_nothing_before_exits_1(store: ModelStore) -> None:
    assert ltr("models", "rollback", cwd=store.root.parent).returncode == 0
    result = ltr("models", "rollback", cwd=store.root.parent)
    assert result.returncode == 1
    assert result.stderr == (
        "error: model store models: nothing to roll back to; no version was live before 1.0.0; "
        "the later ones were rolled back (1.1.0)\n"
    )


def test_show_of_a_bad_version_exits_1_with_the_rule(store: ModelStore) -> None:
    result = ltr("models", "show", "latest", cwd=store.root.parent)
    assert result.returncode == 1
    assert result.stderr == "error: version must look like X.Y.Z (e.g. 1.2.0); got 'latest'\n"


def test_promote_to_production_refuses_a_folder_that_is_no_run(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    result = ltr("promote", "run", "--to", "production", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        result.stderr == "error: run run has no metrics.json; promote a finished `ltr train` run\n"
    )
    assert not (tmp_path / "models").exists()


def test_promote_needs_to_option(tmp_path: Path) -> None:
    result = ltr("promote", "run", cwd=tmp_path)
    assert result.returncode == 2
    assert "--to" in result.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--to", "validated", "--force"],
            "--force: only with --to production (to replace a better live model)",
        ),
        (
            ["--to", "production", "--version", "1.0"],
            "--version: must look like X.Y.Z (e.g. 1.2.0); got '1.0'",
        ),
        (
            ["--to", "validated", "--name", "a/b"],
            "--name 'a/b': use letters, digits, '_', '.' and '-' only",
        ),
    ],
)
def test_promote_usage_errors_exit_2_naming_the_option(
    tmp_path: Path, options: list[str], message: str
) -> None:
    result = ltr("promote", "run", *options, cwd=tmp_path)
    assert (result.returncode, result.stderr) == (2, f"error: {message}\n")


def test_promote_to_validated_without_the_registry_says_so(tmp_path: Path) -> None:
    # the registry module hidden, as on a branch without it
    code = (
        "import sys; sys.modules['ltr.lifecycle.registry'] = None; "
        "sys.argv = ['ltr', 'promote', 'run', '--to', 'validated']; "
        "from ltr.cli import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: promotion to validated is not available yet")


@pytest.mark.slow  # trains a run, validates it twice, exports it twice: ~1 min on 2 cores
def test_promote_to_production_publishes_validated_versions_only(tmp_path: Path) -> None:
    from ltr.config import PromotionConfig, load_config
    from ltr.data.synthetic import write_synthetic
    from ltr.lifecycle.registry import promote_to_validated
    from ltr.training import run_experiment

    write_synthetic(tmp_path / "data", n_queries=30, n_features=8, seed=4, max_docs=10)
    overrides = [
        f"data.root={tmp_path / 'data'}",
        f"tracking.output_dir={tmp_path / 'runs'}",
        "model.hidden_dims=[8]",
        "training.num_epochs=1",
        "training.device=cpu",
        "tracking.mlflow=false",
    ]
    repo = Path(__file__).resolve().parents[2]
    run_dir = run_experiment(load_config(repo / "configs" / "default.yaml", overrides), quiet=True)

    unvalidated = ltr("promote", str(run_dir), "--to", "production", cwd=tmp_path)
    assert unvalidated.returncode == 1
    assert unvalidated.stderr == (
        f"error: run {run_dir} is not validated as default; run `ltr promote {run_dir} --to "
        "validated` first\n"
    )
    assert not (tmp_path / "models").exists()

    def validate(run: Path, version: str) -> None:  # the gate passes: no floors, no rival
        gate = PromotionConfig(compare_to_validated=False)
        promote_to_validated(
            run, version=version, promotion=gate, validated_dir=tmp_path / "validated",
            register=False,
        )  # fmt: skip

    validate(run_dir, "1.0.0")
    first = ltr("promote", str(run_dir), "--to", "production", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1] == "models/current: none -> 1.0.0"
    again = ltr("promote", str(run_dir), "--to", "production", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "models/current: 1.0.0 is live already"
    # a checkpoint is validated once: the next version is a new checkpoint of the same weights
    twin = retrained_copy(run_dir, tmp_path / "twin" / run_dir.name)
    validate(twin, "1.1.0")
    second = ltr("promote", str(twin), "--to", "production", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[-1] == "models/current: 1.0.0 -> 1.1.0"
    assert ltr("models", "rollback", cwd=tmp_path).returncode == 0
    forward = ltr("promote", str(twin), "--to", "production", cwd=tmp_path)
    assert forward.returncode == 0, forward.stderr  # rolls forward: no second export
    assert forward.stdout.strip() == "models/current: 1.0.0 -> 1.1.0 (stored already)"

    store = ModelStore(tmp_path / "models")
    live = store.load_current()
    assert (store.versions(), live.version, live.n_features) == (["1.0.0", "1.1.0"], "1.1.0", 8)
    assert live.source_run == str(twin)
    validated = live.metadata["validated"]  # `ltr models show` names the model by it
    assert (validated["name"], validated["model_id"]) == ("default", "default_v1.1.0")
    assert sorted(p.name for p in store.root.iterdir()) == [
        ".lock",
        "current",
        "history.json",
        "versions",
    ]  # the export's staging folder is gone
    listing = json.loads(ltr("models", "list", "--json", cwd=tmp_path).stdout)
    assert [row["ndcg@10"] is not None for row in listing["versions"]] == [True, True]
    assert ltr("models", "verify", cwd=tmp_path).returncode == 0
    rolled = ltr("models", "rollback", cwd=tmp_path)
    assert rolled.stdout.strip() == "models/current: 1.1.0 -> 1.0.0"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-epoch run on tiny synthetic data."""
    from ltr.config import load_config
    from ltr.data.synthetic import write_synthetic
    from ltr.training import run_experiment

    root = tmp_path_factory.mktemp("trained")
    write_synthetic(root / "data", n_queries=30, n_features=8, seed=4, max_docs=10)
    overrides = [
        f"data.root={root / 'data'}",
        f"tracking.output_dir={root / 'runs'}",
        "model.hidden_dims=[8]",
        "training.num_epochs=1",
        "training.device=cpu",
        "tracking.mlflow=false",
        "tracking.tensorboard=false",
    ]
    repo = Path(__file__).resolve().parents[2]
    return run_experiment(load_config(repo / "configs" / "default.yaml", overrides), quiet=True)


def validate_as(run: Path, name: str, cwd: Path, version: str = "1.0.0") -> None:
    """Validate ``run`` into ``cwd/validated``, where `ltr promote` looks."""
    from ltr.config import PromotionConfig
    from ltr.lifecycle.registry import promote_to_validated

    gate = PromotionConfig(compare_to_validated=False)
    promote_to_validated(
        run, name=name, version=version, promotion=gate, validated_dir=cwd / "validated",
        register=False,
    )  # fmt: skip


def test_promote_to_production_without_name_suggests_the_name_it_is_validated_as(
    trained_run: Path, tmp_path: Path
) -> None:
    validate_as(trained_run, "ranker", tmp_path)

    result = ltr("promote", str(trained_run), "--to", "production", cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr == (
        f"error: run {trained_run} is not validated as default; it is validated as ranker "
        "1.0.0: add --name ranker\n"
    )
    assert not (tmp_path / "models").exists()


def test_promote_to_production_over_another_runs_version_suggests_another_store(
    trained_run: Path, store: ModelStore, tmp_path: Path
) -> None:
    validate_as(trained_run, "ranker", tmp_path)  # ranker 1.0.0; the store holds 1.0.0, 1.1.0

    result = ltr(
        "promote", str(trained_run), "--to", "production", "--name", "ranker", cwd=tmp_path
    )

    assert result.returncode == 1
    assert result.stderr == (
        f"error: version 1.0.0 in models was exported from experiments/run-0, not from "
        f"ranker_v1.0.0's run {trained_run}; the store is keyed by version alone, so the same "
        "version of two names collides there, and a stored version is never overwritten: "
        f"promote the run into a store of its own, e.g. `ltr promote {trained_run} --to "
        "production --name ranker --store models-ranker`\n"
    )
    assert store.versions() == ["1.0.0", "1.1.0"] and store.current() == "1.1.0"


def test_a_broken_pointer_with_nothing_to_roll_back_to_is_repaired_by_the_command_it_names(
    trained_run: Path, tmp_path: Path
) -> None:
    validate_as(trained_run, "ranker", tmp_path)
    promote = ["promote", str(trained_run), "--to", "production", "--name", "ranker"]
    assert ltr(*promote, cwd=tmp_path).returncode == 0
    (tmp_path / "models" / "current").write_text("garbage\n")

    refused = ltr("models", "rollback", cwd=tmp_path)

    assert refused.returncode == 1
    command = (
        f"ltr promote {trained_run} --to production --name ranker --version 1.0.0 --store models"
    )
    assert refused.stderr == (
        "error: model store models: nothing to roll back to, and models/current must name a "
        f"version X.Y.Z; got 'garbage'; history.json says 1.0.0 was live last: make it live "
        f"again with `{command}`\n"
    )
    repaired = ltr(*command.split()[1:], cwd=tmp_path)
    assert repaired.returncode == 0, repaired.stderr
    assert repaired.stdout.strip() == "models/current: none -> 1.0.0 (stored already)"
    assert (tmp_path / "models" / "current").read_text() == "1.0.0\n"
    assert ltr("models", "verify", cwd=tmp_path).returncode == 0


def test_show_and_list_look_up_the_name_of_a_bundle_that_predates_recording_it(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    validate_as(trained_run, "ranker", tmp_path)  # validated/ranker_v1.0.0, as promote finds it
    store = ModelStore(tmp_path / "models")
    for version in ("1.0.0", "1.1.0"):  # 1.1.0: a version the run was never validated as
        metadata = {"version": version, "n_features": 8, "source_run": str(trained_run)}
        store.add(
            lambda out, m=metadata: write_bundle(out, {"model.onnx": linear_onnx([1.0] * 8)}, m)
        )
    monkeypatch.chdir(tmp_path)  # where `ltr promote` put validated/

    shown = CliRunner().invoke(app, ["models", "show", "1.0.0"])
    listed = CliRunner().invoke(app, ["models", "list"])
    as_json = CliRunner().invoke(app, ["models", "list", "--json"])

    assert shown.exit_code == 0, shown.output
    folder = (tmp_path / "validated" / "ranker_v1.0.0").resolve()
    name, validated = shown.stdout.splitlines()[1:3]
    assert name == f"name        ranker (not recorded in this bundle; found in {folder})"
    assert validated.startswith("validated   ranker_v1.0.0 at ")
    assert validated.endswith(", ready_for_production")
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines()[2:4]}
    assert rows == {"1.0.0": "ranker†", "1.1.0": "-"}
    assert listed.stdout.splitlines()[-1].strip() == (
        "† not recorded in the bundle; found in the validated folder by source run and version"
    )
    names = [(row["name"], row["name_looked_up"]) for row in json.loads(as_json.stdout)["versions"]]
    assert names == [("ranker", True), (None, False)]
