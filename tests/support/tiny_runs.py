"""Tiny ``run_experiment`` runs on synthetic data, for tests of training options end to end."""

from __future__ import annotations

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
