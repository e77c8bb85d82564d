"""Processes started at the same moment on the same files: a new MLflow store, a cold data cache,
one experiment name. Real processes, released together once each has imported everything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from ltr.data.letor import load_letor, read_letor
from support.tiny_runs import N_FEATURES, write_tiny_data

REPO_ROOT = Path(__file__).resolve().parents[2]

# waits for `go`, then runs BODY; `ready` tells the test it has imported what BODY needs
STARTER = """
import sys, time
from pathlib import Path

folder, name = Path(sys.argv[1]), sys.argv[2]
{imports}
(folder / f"ready-{{name}}").touch()
while not (folder / "go").exists():
    time.sleep(0.002)
{body}
"""


def start_together(
    folder: Path, imports: str, body: str, names: list[str], env: dict[str, str]
) -> list[tuple[int, str, str]]:
    """Start one process per name, each running ``body`` at the same moment; their results."""
    script = folder / "starter.py"
    code = STARTER.format(imports=textwrap.dedent(imports), body=textwrap.dedent(body))
    script.write_text(code, encoding="utf-8")
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), str(folder), name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in names
    ]
    deadline = time.monotonic() + 120
    while not all((folder / f"ready-{name}").exists() for name in names):
        assert time.monotonic() < deadline, "the processes never got ready"
        assert all(p.poll() is None for p in processes), [p.communicate() for p in processes]
        time.sleep(0.01)
    (folder / "go").touch()
    return [(p.wait(timeout=120), *p.communicate()) for p in processes]


def test_runs_starting_together_on_a_new_mlflow_store_all_start(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'new.db'}"
    results = start_together(
        tmp_path,
        imports="from ltr.experiments.mlflow_tracker import MLflowTracker",
        body=f"""
        tracker = MLflowTracker.start({uri!r}, "together", run_name=name)
        tracker.close()
        print(tracker.run_id)
        """,
        names=["a", "b", "c"],
        env=dict(os.environ),
    )

    assert [code for code, _, _ in results] == [0, 0, 0], [err[-2000:] for _, _, err in results]
    run_ids = {out.strip() for _, out, _ in results}
    with warnings.catch_warnings():  # mlflow's store module warns on import (SQLAlchemy 2.1)
        warnings.simplefilter("ignore", DeprecationWarning)
        from mlflow.tracking import MlflowClient

        stored = MlflowClient(uri).search_runs(
            [MlflowClient(uri).get_experiment_by_name("together").experiment_id]
        )
    assert {run.info.run_id for run in stored} == run_ids and len(run_ids) == 3


@pytest.mark.slow
def test_two_trainings_started_together_share_a_cold_cache_and_a_new_store(
    tmp_path: Path,
) -> None:
    data = write_tiny_data(tmp_path / "data")
    cache = tmp_path / "cache"
    env = {
        **os.environ,
        "LTR_CACHE_DIR": str(cache),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns.db'}",
        "OMP_NUM_THREADS": "1",
    }
    sets = [
        *(f"data.root={data}", f"tracking.output_dir={tmp_path / 'runs'}"),
        *("experiment.name=same", "model.hidden_dims=[8]", "training.num_epochs=2"),
        *("training.device=cpu", "tracking.tensorboard=false"),
    ]
    args = ["train", "--config", str(REPO_ROOT / "configs" / "default.yaml"), "--quiet"]
    args += [arg for item in sets for arg in ("--set", item)]
    results = start_together(
        tmp_path,
        imports="""
        import ltr.training.experiment, ltr.experiments.mlflow_tracker
        from ltr.cli import main
        """,
        body=f"sys.argv = ['ltr', *{args!r}]\nmain()",
        names=["a", "b"],
        env=env,
    )

    assert [code for code, _, _ in results] == [0, 0], [err[-2000:] for _, _, err in results]
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2  # distinct directories, even when started in the same second
    for run_dir in runs:
        assert json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))["test"]
    entries = sorted(p.name for p in cache.iterdir())
    assert len(entries) == 3 and all(name.endswith(".npz") for name in entries)  # no temp file
    stamps = {p: p.stat().st_mtime_ns for p in cache.iterdir()}
    for split, width in (("train", None), ("vali", N_FEATURES), ("test", N_FEATURES)):
        # as training reads them (the others with train's width); a valid entry is kept
        cached = load_letor(data / f"{split}.txt", n_features=width, cache_dir=cache)
        parsed = read_letor(data / f"{split}.txt", n_features=width)
        assert np.array_equal(cached.features, parsed.features)
        assert np.array_equal(cached.labels, parsed.labels)
    assert {p: p.stat().st_mtime_ns for p in cache.iterdir()} == stamps
