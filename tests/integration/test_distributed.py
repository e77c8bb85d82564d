"""`torchrun --nproc-per-node 2 -m ltr train`: two gloo processes on this machine, DDP for real.

One torchrun job trains on tiny synthetic data; the test then checks that both ranks ended with
identical weights, that rank 0 alone wrote one run directory, that the result matches a
single-process run with the same global batch, and that `ltr predict` reads the DDP checkpoint.

Why the comparison can be tight: the global batch is the whole training set (48 queries; each
rank steps on its 24), the loss is ListNet (a mean over informative queries) and both shards hold
equally many informative queries, so DDP's average of the two per-rank means *is* the
single-process loss of that batch (see :mod:`ltr.training.distributed`). With SGD the only
difference left is floating-point summation order (the gradient is summed in two halves, then
all-reduced), hence ``atol=1e-5`` on the weights, while training moves them by far more than that.
Adam would not do: ListNet is invariant to a shift of all scores, so the output bias gets a
gradient of pure rounding noise that Adam's normalisation turns into steps of size ``lr``.
Pair-averaged losses (lambdarank) are not exact under DDP: measured here with Adam, the weights
differ by ~2% (full batch) and ~8% (batches of 16) from the single-process run, NDCG@10 by < 0.01.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ltr._fs import file_sha256
from ltr.cli import app
from ltr.config import load_config
from ltr.data.dataset import QueryDataset
from ltr.data.letor import load_letor
from ltr.data.runs import read_scores
from ltr.data.synthetic import write_synthetic
from ltr.evaluation import evaluate_scores
from ltr.models import build_model
from ltr.training import run_experiment
from ltr.training.checkpoint import load_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[2]

# `python -m ltr ARGS...` plus one thing: each rank saves its weights as training left them
# (before rank 0 reloads best.pt for the test set), by wrapping the trainer's `train`.
DRIVER = """
import os, runpy, sys
from pathlib import Path

import torch

import ltr.training.experiment as experiment
from ltr.training import trainer

out = Path(sys.argv.pop(1))


def train_and_save(model, *args, **kwargs):
    result = trainer.train(model, *args, **kwargs)
    torch.save(model.state_dict(), out / f"rank{os.environ['RANK']}.pt")
    return result


experiment.train = train_and_save
runpy.run_module("ltr", run_name="__main__", alter_sys=True)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def informative_per_shard(train_file: Path) -> list[int]:
    """Queries with at least two different labels in each of the two shards."""
    data = load_letor(train_file)
    dataset = QueryDataset(data)
    counts = []
    for rank in range(2):
        labels = np.split(data.labels, data.query_offsets[1:-1])
        counts.append(sum(len(set(labels[q].tolist())) > 1 for q in dataset.shard(rank, 2)))
    return counts


def test_two_gloo_processes_match_each_other_and_one_process(tmp_path: Path) -> None:
    started = time.perf_counter()
    info = write_synthetic(tmp_path / "data", n_queries=80, n_features=10, seed=1, max_docs=20)
    n_train = load_letor(info["train"]).n_queries
    assert n_train == 48
    shards = informative_per_shard(info["train"])
    assert shards[0] == shards[1], f"the exactness argument needs equal shards; got {shards}"
    overrides = [
        f"data.root={tmp_path / 'data'}",
        "model.name=mlp",
        "model.hidden_dims=[16]",
        "model.dropout=0.0",
        "loss.name=listnet",
        "training.num_epochs=3",
        f"training.batch_size={n_train}",  # global batch: 24 queries on each rank
        "training.optimizer=sgd",
        "training.learning_rate=0.5",
        "training.momentum=0.9",
        "training.early_stopping_patience=10",
        "training.device=cpu",
        "training.num_threads=1",
        "tracking.tensorboard=false",
        "experiment.name=ddp",
    ]
    sets = [arg for item in overrides for arg in ("--set", item)]
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"),
        *("--master-port", str(free_port())),
        *(str(driver), str(weights_dir), "train"),
        *("--config", str(REPO_ROOT / "configs" / "default.yaml")),
        *sets,
        *("--set", f"tracking.output_dir={tmp_path / 'runs'}"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-4000:]
    ddp_seconds = time.perf_counter() - started

    # (1) both ranks ended with bit-identical weights
    rank0, rank1 = (
        torch.load(weights_dir / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)
    )
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[key], rank1[key]) for key in rank0)

    # (2) rank 0 alone wrote one run directory, each file once; only rank 0 printed
    (run_dir,) = (tmp_path / "runs").iterdir()
    files = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    assert files == [
        "checkpoints/best.pt",
        "checkpoints/last.pt",
        "config.yaml",
        "metrics.json",
        "mlflow.json",  # rank 0 alone talks to MLflow
        "preprocessor.json",
        "test_per_query.tsv",
        "train.lock",  # rank 0 alone held it
        "train.log",  # rank 0's console
        "training_history.json",
    ]
    assert (run_dir / "train.log").read_text(encoding="utf-8").count("Epoch 3/3") == 1
    assert result.stderr.count("Epoch 3/3") == 1  # progress on stderr, the result on stdout
    assert result.stdout.count("Run directory") == 1 and result.stdout.count("Test (best") == 1
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert all(torch.equal(last["model"][key], rank0[key]) for key in rank0)  # no "module."
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["epochs"] == 3 and metrics["test"] is not None
    assert metrics["data"]["test"]["sha256"] == file_sha256(Path(info["test"]))  # rank 0's record

    # (3) the same as one process with the same global batch and seed
    config = load_config(
        REPO_ROOT / "configs" / "default.yaml",
        [*overrides, f"tracking.output_dir={tmp_path / 'single'}"],
    )
    single_dir = run_experiment(config, quiet=True)
    single = load_checkpoint(single_dir / "checkpoints" / "last.pt")
    torch.manual_seed(config.training.seed)
    initial = build_model("mlp", 10, **config.model.params).state_dict()
    for key, value in single["model"].items():
        torch.testing.assert_close(last["model"][key], value, rtol=0, atol=1e-5)
    moved = max(float((single["model"][key] - initial[key]).abs().max()) for key in initial)
    assert moved > 0.05  # training moved the weights by far more than the tolerance
    for ddp_epoch, single_epoch in zip(
        last["state"]["history"], single["state"]["history"], strict=True
    ):
        assert ddp_epoch["valid_ndcg@10"] == pytest.approx(single_epoch["valid_ndcg@10"], abs=1e-4)
        assert ddp_epoch["train_loss"] == pytest.approx(single_epoch["train_loss"], rel=1e-5)
    assert last["normalizer"] == single["normalizer"]

    # (4) `ltr predict` reads the DDP run's best.pt
    scores_file = tmp_path / "scores.txt"
    predicted = CliRunner().invoke(
        app,
        [
            *("predict", "--model", str(run_dir / "checkpoints" / "best.pt")),
            *("--data", str(info["test"]), "--out", str(scores_file)),
        ],
    )
    assert predicted.exit_code == 0, predicted.output
    test = load_letor(info["test"])
    ndcg = evaluate_scores(test, read_scores(scores_file), ["ndcg@10"]).means["ndcg@10"]
    assert ndcg == metrics["test"]["ndcg@10"]
    print(f"torchrun job {ddp_seconds:.1f} s, whole test {time.perf_counter() - started:.1f} s")


# --------------------------------------------------------------------------------------------
# Failures of one process: the job ends in bounded time and says which process failed and why
# --------------------------------------------------------------------------------------------

STOP_AT = REPO_ROOT / "tests" / "support" / "stop_at.py"
BOUNDED_SECONDS = 60  # startup included; a hang would last gloo's 30-minute timeout


def torchrun_train(tmp_path: Path, *sets: str, script: list[str] | None = None) -> list[str]:
    """`torchrun --nproc-per-node 2 [script] -m ltr train` on tiny data, MLflow in tmp_path."""
    write_synthetic(tmp_path / "data", n_queries=40, n_features=10, seed=1, max_docs=10)
    items = [
        *(f"data.root={tmp_path / 'data'}", f"tracking.output_dir={tmp_path / 'runs'}"),
        *("model.hidden_dims=[8]", "training.num_epochs=20", "training.device=cpu"),
        *("training.num_threads=1", "tracking.tensorboard=false"),
        f"tracking.mlflow_uri=sqlite:///{tmp_path / 'mlruns.db'}",
        *sets,
    ]
    program = script if script is not None else ["-m", "ltr"]
    return [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"),
        *("--master-port", str(free_port()), *program, "train"),
        *("--config", str(REPO_ROOT / "configs" / "default.yaml")),
        *(arg for item in items for arg in ("--set", item)),
    ]


def root_cause(stderr: str) -> str:
    """torchrun's summary of the failure it saw first."""
    assert "Root Cause" in stderr, stderr[-4000:]
    return stderr.split("Root Cause", 1)[1]


def mlflow_statuses(tmp_path: Path) -> list[str]:
    with warnings.catch_warnings():  # mlflow's store module warns on import (SQLAlchemy 2.1)
        warnings.simplefilter("ignore", DeprecationWarning)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns.db'}")
        return [run.info.status for run in client.search_runs(["1"])]


def test_an_error_only_rank_0_meets_ends_the_job_and_is_named_its_root_cause(
    tmp_path: Path,
) -> None:
    (tmp_path / "taken").write_text("a file where the MLflow folder should be")
    bad_store = f"tracking.mlflow_uri=sqlite:///{tmp_path / 'taken' / 'mlruns.db'}"
    command = torchrun_train(tmp_path, bad_store)  # rank 0 alone opens the store
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)

    assert time.perf_counter() - started < BOUNDED_SECONDS
    assert result.returncode != 0
    printed = re.findall(r"^error: tracking\.mlflow_uri", result.stderr, flags=re.MULTILINE)
    assert len(printed) == 1  # rank 0's one line (the summary quotes it, indented)
    cause = root_cause(result.stderr)
    assert re.search(r"rank\s*: 0 ", cause), cause  # not rank 1, which merely lost rank 0
    assert "traceback : error: tracking.mlflow_uri" in cause  # the line rank 0 printed
    assert "[rank1]:" not in result.stderr  # rank 1 has no traceback: one line, if any


def test_a_misspelt_set_fails_every_rank_on_its_own_and_none_is_killed(tmp_path: Path) -> None:
    # every rank meets the error at startup, a moment apart; torchrun used to stop the later
    # one (exit 143, and no error line at all when that was rank 0)
    command = torchrun_train(tmp_path, "misspelt.key=1")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)

    assert result.returncode == 1, result.stderr[-4000:]
    line = "error: --set misspelt.key=1: misspelt: unknown field"
    lines = result.stderr.splitlines()
    assert lines.count(line) == 1, result.stderr[-4000:]  # rank 0's, for every rank
    summary = result.stderr.split("Failures:", 1)[1]
    ranks = re.findall(r"rank\s*: (\d) \(local_rank: \d\)\s*exitcode\s*: (-?\d+)", summary)
    assert sorted(ranks) == [("0", "1"), ("1", "1")], summary  # both failed, neither killed
    # each rank's record is the error line, not a traceback through click and pydantic
    assert summary.count(f"traceback : {line}\n") == 2, summary
    assert "Traceback" not in summary and "site-packages" not in summary, summary
    assert "interrupted by SIGTERM" not in result.stderr


def test_a_rank_killed_mid_run_ends_the_job_in_bounded_time(tmp_path: Path) -> None:
    # rank 1 is SIGKILLed as its 5th batch starts; rank 0 is then inside a collective
    command = torchrun_train(tmp_path, script=[str(STOP_AT), "loss:5@1", "SIGKILL"])
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)

    assert time.perf_counter() - started < BOUNDED_SECONDS
    assert result.returncode != 0
    cause = root_cause(result.stderr)
    assert re.search(r"rank\s*: 1 ", cause) and "SIGKILL" in cause, cause
    assert "[rank0]:" not in result.stderr  # rank 0 lost rank 1: one line, no traceback
    (run_dir,) = (tmp_path / "runs").iterdir()
    # rank 1 starts epoch 5 without waiting for rank 0 to save epoch 4: torchrun's SIGTERM may
    # reach a busy rank 0 before that save, and a stop keeps the last whole checkpoint
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] in (3, 4)
    assert mlflow_statuses(tmp_path) in (["FAILED"], ["KILLED"])  # closed, not left RUNNING


def test_ctrl_c_on_a_torchrun_job_stops_every_rank_cleanly(tmp_path: Path) -> None:
    # the terminal sends SIGINT to the whole process group; torchrun forwards it once more
    command = torchrun_train(tmp_path, "training.num_epochs=500")
    job = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert job.stderr is not None
    for line in job.stderr:
        if "Epoch 2/" in line:
            break
    started = time.perf_counter()
    os.killpg(job.pid, signal.SIGINT)
    stderr = job.communicate(timeout=300)[1]

    assert time.perf_counter() - started < BOUNDED_SECONDS
    (run_dir,) = (tmp_path / "runs").iterdir()
    lines = [line for line in stderr.splitlines() if line.startswith("interrupted by SIGINT")]
    # one closing line, rank 0's (rank 1 wrote nothing, so it has nothing to add), no traceback
    assert len(lines) == 1, stderr[-4000:]
    # the same job continues it: as many processes under torchrun
    assert f"continue with: torchrun --nproc-per-node 2 -m ltr train --resume {run_dir}" in lines[0]
    assert "KeyboardInterrupt" not in stderr
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] >= 2
    assert mlflow_statuses(tmp_path) == ["KILLED"]


def torchrun_resume(run_dir: Path, *sets: str) -> list[str]:
    """`torchrun --nproc-per-node 2 -m ltr train --resume RUN_DIR [--set ...]`."""
    return [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"),
        *("--master-port", str(free_port()), "-m", "ltr", "train", "--resume", str(run_dir)),
        *(arg for item in sets for arg in ("--set", item)),
    ]


@pytest.mark.slow  # three torchrun jobs: ~25 s on 2 cores
def test_a_resumed_torchrun_run_ends_with_the_weights_of_an_uninterrupted_one(
    tmp_path: Path,
) -> None:
    # batches of lists of other lengths on each rank use up other numbers of dropout draws, so
    # the ranks' random states part: a resume must give each rank its own back
    data = tmp_path / "uneven"
    write_synthetic(data, n_queries=60, n_features=10, seed=2, min_docs=2, max_docs=60)
    dropout = (
        f"data.root={data}", "training.batch_size=4", "model.dropout=0.3",
        "training.early_stopping_patience=50",
    )  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        assert done.returncode == 0, done.stderr[-4000:]

    whole, parted = tmp_path / "whole", tmp_path / "parted"
    run(torchrun_train(whole, *dropout, "training.num_epochs=4"))
    run(torchrun_train(parted, *dropout, "training.num_epochs=2"))
    (first_half,) = (parted / "runs").iterdir()
    run(torchrun_resume(first_half, "training.num_epochs=4"))

    (uninterrupted,) = (whole / "runs").iterdir()
    expected = load_checkpoint(uninterrupted / "checkpoints" / "last.pt")
    resumed = load_checkpoint(first_half / "checkpoints" / "last.pt")
    assert resumed["epoch"] == expected["epoch"] == 4
    for name, weights in expected["model"].items():
        assert torch.equal(resumed["model"][name], weights), name
    assert len(resumed["rng_ranks"]) == resumed["world_size"] == 2

    alone = subprocess.run(
        [sys.executable, "-m", "ltr", "train", "--resume", str(first_half), "--set",
         "training.num_epochs=5", "--quiet"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert alone.returncode == 0, alone.stderr
    assert (
        "warning: the run was trained by 2 process(es) and is resumed by 1: it goes on, but"
        in alone.stderr
    )
