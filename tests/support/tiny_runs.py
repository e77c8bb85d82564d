"""Tiny ``run_experiment`` runs on synthetic data, for tests of training options end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ltr.config import load_config
from ltr.data.synthetic import write_synthetic
from ltr.training import run_experiment

N_FEATURES = 8


def write_tiny_data(
    root: Path,
    *,
    n_queries: int = 40,
    n_features: int = N_FEATURES,
    seed: int = 0,
    max_docs: int = 12,
    **options: Any,
) -> Path:
    """Synthetic train/vali/test files under ``root``, by default 40 queries of up to 12
    documents (``options``: more ``write_synthetic`` arguments, e.g. ``splits``); ``root``."""
    write_synthetic(
        root, n_queries=n_queries, n_features=n_features, seed=seed, max_docs=max_docs, **options
    )
    return root


def tiny_run(
    root: Path,
    out: Path,
    *overrides: str,
    training: dict[str, Any] | None = None,
    resume: Path | None = None,
) -> Path:
    """Train an MLP [8] with ListNet for 3 epochs (``training`` adds settings); the run dir."""
    base: dict[str, Any] = {
        "experiment": {"name": "tiny"},
        "data": {"root": str(root)},
        "model": {"name": "mlp", "hidden_dims": [8], "dropout": 0.1},
        "loss": {"name": "listnet"},
        "training": {"num_epochs": 3, "batch_size": 8, "device": "cpu", **(training or {})},
        "tracking": {"output_dir": str(out), "tensorboard": False, "mlflow": False},
    }
    return run_experiment(load_config(base=base, overrides=overrides), resume=resume, quiet=True)


def relabel_in_place(path: Path) -> None:
    """Flip the label of the first document of a LETOR text file (0 <-> 1), in place: the same
    path and query ids, other bytes."""
    first, rest = path.read_text(encoding="utf-8").split("\n", 1)
    label, features = first.split(" ", 1)
    path.write_text(f"{1 if label == '0' else 0} {features}\n{rest}", encoding="utf-8")


def forget_data_files(run_dir: Path) -> Path:
    """Make ``run_dir`` look like a run from before metrics.json recorded its data files."""
    path = run_dir / "metrics.json"
    report = json.loads(path.read_text(encoding="utf-8"))
    del report["data"]
    path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return run_dir


def retrained_copy(run_dir: Path, destination: Path) -> Path:
    """``run_dir`` copied to ``destination`` with a ``best.pt`` of other bytes but the same
    weights, as training the run again would give: a new checkpoint to validate, with the
    same metrics (a plain copy is the same checkpoint, validated once wherever it lies)."""
    import shutil

    from ltr.training.checkpoint import load_checkpoint, save_checkpoint

    copy = Path(shutil.copytree(run_dir, destination))
    best = copy / "checkpoints" / "best.pt"
    save_checkpoint(best, {**load_checkpoint(best), "copied_from": str(run_dir)})
    return copy
