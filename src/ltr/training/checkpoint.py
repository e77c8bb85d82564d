"""Training checkpoints: plain dicts of tensors and Python values, never pickled objects.

A checkpoint is what :func:`torch.save` writes for a dict with these keys (``FORMAT`` names it,
``VERSION`` bumps when the layout changes)::

    format, version            "ltr.checkpoint", 1
    epoch                      epochs completed (1-based count; 0 = untrained)
    model, optimizer           state dicts (model: the averaged weights when
                               training.weight_averaging is on, what validated and predicts)
    trained, averaged          with weight averaging only: the optimizer's own weights and
                               the number of steps averaged so far, for --resume
    scheduler                  state dict, or None without a scheduler
    state                      best_epoch, best_value, epochs_since_best, stopped_early, history
    rng                        {"torch": CPU generator state, "cuda": [per-device states]}
    world_size, rng_ranks      the processes that trained it and each one's CPU generator
                               state (rank order), so a resume by as many restores each rank's
                               own dropout draws (absent in checkpoints before session 12)
    config                     the resolved experiment config (ExperimentConfig.resolved())
    normalizer                 Normalizer.to_dict() of the training features
    n_features                 the feature count the scorer was built for
    data                       each data file's path, sha256 and size, as metrics.json["data"]
                               (training runs; a resume refuses files edited since)
    ltr_version, torch_version who wrote it

Every value is a tensor, a number, a string, None, or a list/dict of those, so
``torch.load(path, weights_only=True)`` reads it and a checkpoint cannot run code when loaded.
Writes are atomic (:func:`ltr._fs.atomic_path`): a crash leaves the previous file intact.
"""

from __future__ import annotations

import pickle
import shlex
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ltr import __version__
from ltr._fs import atomic_path, missing_file
from ltr.data.preprocessing import Normalizer
from ltr.errors import DataNotFoundError, LtrError, ShapeError
from ltr.models import build_model

__all__ = [
    "FORMAT",
    "VERSION",
    "check_feature_count",
    "checkpoint_file",
    "load_checkpoint",
    "refuse_cv_dir",
    "restore_scorer",
    "save_checkpoint",
]

FORMAT = "ltr.checkpoint"
VERSION = 1
_REQUIRED = ("epoch", "model", "state", "config", "normalizer", "n_features")


def save_checkpoint(path: str | Path, checkpoint: Mapping[str, Any]) -> None:
    """Write ``checkpoint`` (the layout of the module docstring) atomically.

    ``format``, ``version`` and the writer versions are filled in here.
    """
    payload = {
        "format": FORMAT,
        "version": VERSION,
        **checkpoint,
        "ltr_version": __version__,
        "torch_version": str(torch.__version__),  # TorchVersion is not weights_only-safe
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` onto the CPU and check its layout.

    Raises:
        DataNotFoundError: the file does not exist.
        LtrError: the file is not an ltr checkpoint (corrupt, truncated, another format or
            version, or keys missing).
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"checkpoint {path} {missing_file(path)}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip; anything else is not ours
        raise LtrError(
            f"{path}: not a readable ltr checkpoint (not a zip archive as torch.save writes; "
            "truncated or another kind of file)"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise LtrError(f"{path}: not a readable ltr checkpoint ({_reason(error)})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise LtrError(f"{path}: not an ltr checkpoint (expected format {FORMAT!r})")
    if checkpoint.get("version") != VERSION:
        raise LtrError(
            f"{path}: checkpoint version must be {VERSION}; got {checkpoint.get('version')!r} "
            f"(written by ltr {checkpoint.get('ltr_version', '?')})"
        )
    missing = [key for key in _REQUIRED if key not in checkpoint]
    if missing:
        raise LtrError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return checkpoint


def checkpoint_file(model_path: str | Path, name: str = "best") -> Path:
    """The checkpoint a path stands for: a run directory means ``checkpoints/<name>.pt``.

    Raises:
        DataNotFoundError: neither a file nor a run directory holding that checkpoint; a cv
            directory of ``ltr cv`` is named as one, with its fold runs.
    """
    model_path = Path(model_path)
    if model_path.is_dir():
        candidate = model_path / "checkpoints" / f"{name}.pt"
        if not candidate.is_file():
            refuse_cv_dir(model_path)
            raise DataNotFoundError(
                f"{model_path} has no checkpoints/{name}.pt; give a run directory written by "
                "`ltr train` or a .pt file"
            )
        return candidate
    if not model_path.is_file():
        raise DataNotFoundError(
            f"model {model_path} does not exist (a run directory or a .pt file)"
        )
    return model_path


def refuse_cv_dir(path: Path) -> None:
    """A cv directory holds one run per fold, not a model: name them (every command taking a
    model comes through here)."""
    from ltr.experiments.cv_record import fold_runs, is_cv_dir  # only on this error path

    if not is_cv_dir(path):
        return
    runs = " ".join(shlex.quote(str(run)) for run in fold_runs(path))
    if not runs:
        raise DataNotFoundError(
            f"{path} is a cv directory of `ltr cv` whose folds have no run yet; train them "
            f"with `ltr cv --resume {shlex.quote(str(path))}`"
        )
    # no `ltr ensemble` of the folds: each fold's model was trained on the others' test queries
    raise DataNotFoundError(
        f"{path} is a cv directory of `ltr cv`, not a run; give one of its fold runs ({runs})"
    )


def check_feature_count(
    checkpoint: Mapping[str, Any], n_features: int, source: str, *, model: str = "the model"
) -> None:
    """Refuse data whose feature count differs from the one the scorer was trained on.

    Raises:
        ShapeError: naming both counts (and ``model``, when several are in play).
    """
    expected = int(checkpoint["n_features"])
    if n_features != expected:
        raise ShapeError(f"{model} was trained on {expected} features; {source} has {n_features}")


def _reason(error: BaseException) -> str:
    """The informative line of a loading error (torch's weights-only errors are paragraphs).

    torch's advice to retry with ``weights_only=False`` or to allowlist a global is dropped:
    ltr never unpickles a checkpoint beyond weights-only types (it could run code).
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = [line for line in lines if "weights_only" not in line]
    unpickler = [line for line in lines if line.startswith("WeightsUnpickler error")]
    return (unpickler or lines or [type(error).__name__])[0].split(" Please use ")[0]


def restore_scorer(path: Path, checkpoint: Mapping[str, Any]) -> tuple[nn.Module, Normalizer]:
    """The scorer (weights loaded, eval mode) and the normalizer ``checkpoint`` was saved with.

    Raises:
        LtrError: the checkpoint (read from ``path``) lacks its config or normalizer, or its
            weights do not fit the scorer its config names.
    """
    config, normalizer = checkpoint["config"], checkpoint["normalizer"]
    if not isinstance(config, dict) or "model" not in config or normalizer is None:
        raise LtrError(f"{path}: the checkpoint lacks its config or normalizer")
    params: dict[str, Any] = dict(config["model"])
    name = params.pop("name")
    scorer = build_model(name, int(checkpoint["n_features"]), **params)
    try:
        scorer.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        raise LtrError(f"{path}: the weights do not fit a {name} scorer: {error}") from None
    return scorer.eval(), Normalizer.from_dict(normalizer, source=str(path))
