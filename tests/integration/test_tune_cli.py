"""`ltr tune` on tiny synthetic data with real Optuna and MLflow SQLite stores in tmp."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from ltr.config import load_config
from ltr.experiments.mlflow_tracker import mlflow_client
from ltr.experiments.tune import run_study
from ltr.training import run_experiment
from support.tiny_runs import write_tiny_data

SPACE = {
    "training.learning_rate": {"type": "loguniform", "low": 1e-3, "high": 1e-1},
    "model.hidden_dims": {"type": "categorical", "choices": [[4], [8, 4]]},
    "model.dropout": {"type": "uniform", "low": 0.0, "high": 0.3},
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_data(tmp_path_factory.mktemp("data"), n_queries=30, max_docs=10)


def raw_config(root: Path, out: Path, *, mlflow_uri: str | None = None) -> dict[str, Any]:
    return {
        "experiment": {"name": "tiny_tune"},
        "data": {"root": str(root)},
        "model": {"name": "mlp", "hidden_dims": [8]},
        "training": {"num_epochs": 2, "batch_size": 8, "device": "cpu"},
        "tracking": {
            "output_dir": str(out),
            "tensorboard": False,
            "mlflow": mlflow_uri is not None,
            "mlflow_uri": mlflow_uri,
        },
        "tune": {"pruner": "none", "seed": 0, "space": SPACE},
    }


def study_trials(out: Path, name: str = "tiny_tune") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'optuna.db'}").trials


@pytest.fixture(scope="module")
def finished_study(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("study")
    uri = f"sqlite:///{tmp / 'mlruns.db'}"
    config = load_config(base=raw_config(data_root, tmp / "out", mlflow_uri=uri))
    result = run_study(config, trials=3, quiet=True)
    return {"result": result, "out": tmp / "out", "uri": uri}


def test_study_runs_n_trials_and_writes_its_outputs(finished_study: dict[str, Any]) -> None:
    result, out = finished_study["result"], finished_study["out"]
    assert result.n_complete == 3
    assert [t.state.name for t in study_trials(out)] == ["COMPLETE"] * 3
    folder = out / "tune-tiny_tune"
    for name in ("best_config.yaml", "trials.csv", "trials.json", "optimization_history.png"):
        assert (folder / name).is_file(), name
    assert (folder / "param_importances.png").is_file()
    records = json.loads((folder / "trials.json").read_text())
    assert [r["number"] for r in records] == [0, 1, 2]
    assert all(Path(r["run_dir"]).parent == folder / "trials" for r in records)


def test_best_config_loads_and_trains(finished_study: dict[str, Any], tmp_path: Path) -> None:
    result = finished_study["result"]
    best = load_config(result.best_config, ["tracking.mlflow=false", "training.num_epochs=1"])
    assert best.tune is None
    raw = yaml.safe_load(result.best_config.read_text())
    best_trial = study_trials(finished_study["out"])[result.best_trial]
    assert raw["training"]["learning_rate"] == best_trial.params["training.learning_rate"]
    assert json.dumps(raw["model"]["hidden_dims"]) == best_trial.params["model.hidden_dims"]
    retrained = run_experiment(
        load_config(base={**best.resolved(), "tracking": {"output_dir": str(tmp_path)}}),
        quiet=True,
    )
    assert (retrained / "metrics.json").is_file()


def test_each_trial_is_a_child_run_of_the_study_run(finished_study: dict[str, Any]) -> None:
    client = MlflowClient(finished_study["uri"])
    experiment = client.get_experiment_by_name("tiny_tune")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.info.run_name == "study-tiny_tune"]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted(r.info.run_name for r in children) == ["trial-0", "trial-1", "trial-2"]
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"best_config.yaml", "trials.csv", "optimization_history.png"} <= artifacts


def test_interrupted_study_resumes_and_completes(data_root: Path, tmp_path: Path) -> None:
    config = load_config(base=raw_config(data_root, tmp_path / "out"))
    first = run_study(config, trials=3, timeout_seconds=0.01, quiet=True)  # stops after 1 trial
    assert first.n_complete == 1 and first.timed_out
    second = run_study(config, trials=3, timeout_seconds=600, quiet=True)
    assert second.n_complete == 3 and not second.timed_out  # N is the study's total: 2 more
    assert [t.number for t in study_trials(tmp_path / "out")] == [0, 1, 2]


def test_a_study_with_enough_trials_says_there_is_nothing_to_run(
    finished_study: dict[str, Any], data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "out").mkdir()
    shutil.copy(finished_study["out"] / "optuna.db", tmp_path / "out" / "optuna.db")  # 3 trials
    config = load_config(base=raw_config(data_root, tmp_path / "out"))

    result = run_study(config, trials=2)

    assert result.n_complete == 3
    assert capsys.readouterr().err.splitlines()[0] == (
        f"Study 'tiny_tune' in sqlite:///{tmp_path}/out/optuna.db already has 3 finished trials "
        "(>= --trials 2); nothing to run"
    )
    assert len(study_trials(tmp_path / "out")) == 3


def test_best_config_names_the_data_by_absolute_path(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(data_root.parent)
    raw = raw_config(Path(data_root.name), tmp_path / "out")
    raw["tune"]["space"] = {"model.dropout": SPACE["model.dropout"]}
    raw["training"]["num_epochs"] = 1

    result = run_study(load_config(base=raw), trials=1, quiet=True)

    assert result.best_config is not None
    best = yaml.safe_load(result.best_config.read_text(encoding="utf-8"))
    assert best["data"]["root"] == str(data_root.resolve())


def test_a_study_refuses_to_resume_on_other_data(data_root: Path, tmp_path: Path) -> None:
    from ltr.errors import ConfigError

    run_study(load_config(base=raw_config(data_root, tmp_path / "out")), trials=1, quiet=True)
    other = write_tiny_data(tmp_path / "other", n_queries=30, max_docs=10, seed=5)
    config = load_config(base=raw_config(other, tmp_path / "out"))

    with pytest.raises(ConfigError, match=r"ran with other fixed settings: data\.root \("):
        run_study(config, trials=2, quiet=True)
    assert len(study_trials(tmp_path / "out")) == 1  # no trial on the other data


STOP_AT = Path(__file__).resolve().parents[1] / "support" / "stop_at.py"
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
BATCHES_PER_TRIAL = 2 * 3  # 2 epochs of 18 training queries in batches of 8


def stop_tune(moment: str, signal_name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``ltr tune ARGS``, sent ``signal_name`` at ``moment`` (see support/stop_at.py)."""
    return subprocess.run(
        [sys.executable, str(STOP_AT), moment, signal_name, "tune", *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def closing_line(result: subprocess.CompletedProcess[str]) -> str:
    """The last line of stderr, once it is clear that no traceback or Optuna warning came first."""
    assert "Traceback" not in result.stderr, result.stderr
    assert " failed with " not in result.stderr, result.stderr  # optuna's "Trial 1 failed with"
    return result.stderr.strip().splitlines()[-1]


def test_ctrl_c_in_a_trial_ends_with_how_to_continue_the_study(
    data_root: Path, tmp_path: Path
) -> None:
    config = tmp_path / "tune.yaml"
    config.write_text(yaml.safe_dump(raw_config(data_root, tmp_path / "out")))
    result = stop_tune(
        f"loss:{BATCHES_PER_TRIAL + 2}", "SIGINT", "--config", str(config), "--trials", "3"
    )

    assert result.returncode == 130, result.stderr
    first, stopped = study_trials(tmp_path / "out")
    assert (first.state, stopped.state) == (TrialState.COMPLETE, TrialState.FAIL)
    assert closing_line(result) == (
        f"interrupted by SIGINT; study 'tiny_tune' in sqlite:///{tmp_path}/out/optuna.db: "
        f"1 of 3 trials finished (1 complete, 0 pruned), best trial 0 with ndcg@10="
        f"{first.value:.4f}; trial 1 stopped, marked FAIL; run the same ltr tune command "
        "again to continue the study with new trials (trial 1 is not resumed)"
    )
    records = json.loads((tmp_path / "out" / "tune-tiny_tune" / "trials.json").read_text())
    assert records[1]["error"] == "stopped by SIGINT"
    run_dir = Path(records[1]["run_dir"])  # the stopped trial's run is there, and named
    assert run_dir.parent == tmp_path / "out" / "tune-tiny_tune" / "trials"
    assert (run_dir / "config.yaml").is_file() and run_dir != Path(records[0]["run_dir"])
    again = run_study(load_config(config), trials=3, quiet=True)
    assert again.n_complete == 3


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_stop_ends_both_trials_of_n_jobs_2_and_leaves_no_run_running(
    signal_name: str, data_root: Path, tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    config = tmp_path / "tune.yaml"
    config.write_text(yaml.safe_dump(raw_config(data_root, tmp_path / "out", mlflow_uri=uri)))
    # two trials train side by side; the 4th batch of the two leaves both mid-training
    options = ["--config", str(config), "--trials", "4", "--n-jobs", "2"]
    result = stop_tune("loss:4", signal_name, *options)

    assert result.returncode == EXIT_CODES[signal_name], result.stderr
    assert closing_line(result) == (
        f"interrupted by {signal_name}; study 'tiny_tune' in sqlite:///{tmp_path}/out/optuna.db: "
        "0 of 4 trials finished (0 complete, 0 pruned), no trial completed yet; "
        "trials 0, 1 stopped, marked FAIL; run the same ltr tune command again to continue "
        "the study with new trials (trials 0, 1 are not resumed)"
    )
    assert [t.state for t in study_trials(tmp_path / "out")] == [TrialState.FAIL] * 2
    records = json.loads((tmp_path / "out" / "tune-tiny_tune" / "trials.json").read_text())
    assert [r["state"] for r in records] == ["FAIL", "FAIL"]
    client = mlflow_client(uri)  # quiet about mlflow's SQLAlchemy deprecation
    experiment = client.get_experiment_by_name("tiny_tune")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert sorted((r.info.run_name, r.info.status) for r in runs) == [
        ("study-tiny_tune", "KILLED"),
        ("trial-0", "KILLED"),
        ("trial-1", "KILLED"),
    ]


def tune_command(config: Path, trials: int) -> list[str]:
    return [sys.executable, "-m", "ltr", "tune", "--config", str(config), "--trials", str(trials)]


@pytest.mark.slow
def test_two_processes_share_one_study(data_root: Path, tmp_path: Path) -> None:
    config = tmp_path / "tune.yaml"
    config.write_text(yaml.safe_dump(raw_config(data_root, tmp_path / "out")))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen(
            tune_command(config, 6), env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=240) for worker in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err.decode()
    ran = [
        {
            int(line.split()[1].rstrip(":"))
            for line in err.decode().splitlines()
            if line.startswith("Trial ")
        }
        for _, err in outputs
    ]
    trials = study_trials(tmp_path / "out")
    assert ran[0] and ran[1] and not ran[0] & ran[1]  # both worked, never on the same trial
    assert ran[0] | ran[1] == {t.number for t in trials}
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert 6 <= len(trials) <= 7  # N is the study's total; each worker may overshoot by one


def test_a_diverging_trial_is_one_line_with_its_error_and_the_search_goes_on(
    data_root: Path, tmp_path: Path
) -> None:
    raw = raw_config(data_root, tmp_path / "out")
    raw["loss"] = {"name": "mse"}
    raw["training"]["optimizer"] = "sgd"  # at 1e12 plain SGD's first step overflows the loss
    raw["tune"]["space"] = {
        "training.learning_rate": {"type": "categorical", "choices": [0.01, 1e12]}
    }
    config = tmp_path / "tune.yaml"
    config.write_text(yaml.safe_dump(raw))

    result = subprocess.run(
        tune_command(config, 3), capture_output=True, text=True, timeout=240, check=False
    )

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and " failed with " not in result.stderr
    trials = study_trials(tmp_path / "out")
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed and all(t.params["training.learning_rate"] == 1e12 for t in failed)
    error = failed[0].user_attrs["error"]
    assert error.startswith("training diverged: the mean training loss of epoch 1 is ")
    line = f"Trial {failed[0].number}: failed: {error}"
    assert any(shown.startswith(line) for shown in result.stderr.splitlines()), result.stderr
    records = json.loads((tmp_path / "out" / "tune-tiny_tune" / "trials.json").read_text())
    assert [r["error"] for r in records] == [t.user_attrs.get("error") for t in trials]
    assert all(Path(r["run_dir"]).is_dir() for r in records)  # the failed ones' runs too
    best_config = tmp_path / "out" / "tune-tiny_tune" / "best_config.yaml"
    assert result.stdout.splitlines()[-1].endswith(f"; wrote {best_config}")  # not wrapped


def test_tune_refuses_to_run_under_torchrun(data_root: Path, tmp_path: Path) -> None:
    config = tmp_path / "tune.yaml"
    config.write_text(yaml.safe_dump(raw_config(data_root, tmp_path / "out")))
    torchrun = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}
    env = {**os.environ, **torchrun, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}

    result = subprocess.run(
        tune_command(config, 2), env=env, capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: ltr tune does not run under torchrun (WORLD_SIZE=2): each trial trains in one "
        "process; to search in parallel, start ltr tune in several shells (or machines) with "
        "one --storage"
    ]
    assert not (tmp_path / "out" / "optuna.db").exists()


def test_a_command_whose_trials_all_fail_says_why(data_root: Path, tmp_path: Path) -> None:
    raw = raw_config(data_root, tmp_path / "out")
    raw["loss"] = {"name": "mse"}
    raw["training"]["optimizer"] = "sgd"
    raw["tune"]["space"] = {"training.learning_rate": {"type": "categorical", "choices": [1e12]}}
    config = tmp_path / "tune.yaml"
    config.write_text(yaml.safe_dump(raw))

    result = subprocess.run(
        [*tune_command(config, 2), "--quiet"], capture_output=True, text=True, timeout=240
    )

    assert result.returncode == 1, result.stderr
    trials = study_trials(tmp_path / "out")
    assert len(trials) == 2 and all(t.state == TrialState.FAIL for t in trials)
    error = trials[0].user_attrs["error"]
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: all 2 trials this command ran failed (study tiny_tune); trial 0: {error}"
    )
    assert result.stdout == ""


def test_a_timeout_says_it_ended_the_search(data_root: Path, tmp_path: Path) -> None:
    config = tmp_path / "tune.yaml"
    config.write_text(yaml.safe_dump(raw_config(data_root, tmp_path / "out")))

    result = subprocess.run(
        [*tune_command(config, 3), "--timeout", "0.01", "--quiet"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "study tiny_tune: 1 complete, 0 pruned, stopped by --timeout 0.01s after 1 of 3 trials; "
    )
