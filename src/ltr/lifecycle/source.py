"""A trained run as export needs it: the scorer, its normalizer, and the eager reference.

:func:`load_source` rebuilds both from a checkpoint; :meth:`Source.reference` is the PyTorch
eager model (normalizer module, then scorer, float32, eval mode) that every parity and latency
figure compares ONNX Runtime with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ltr._fs import file_sha256, read_json
from ltr.data.layout import config_test_file
from ltr.data.preprocessing import Normalizer
from ltr.errors import BundleError, DataNotFoundError
from ltr.models import uses_context
from ltr.training.checkpoint import checkpoint_file, load_checkpoint, restore_scorer

__all__ = ["RankingModule", "Source", "load_exported_source", "load_source"]


class RankingModule(nn.Module):
    """PyTorch eager reference: the normalizer module, then the scorer (both float32, eval).

    ``forward(features [B, L, F], mask [B, L]) -> scores [B, L]`` on raw features.
    """

    def __init__(self, normalizer: nn.Module, scorer: nn.Module) -> None:
        super().__init__()
        self.normalizer, self.scorer = normalizer, scorer

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        """Scores ``[B, L]`` of raw ``features [B, L, F]``; ``mask [B, L]`` True = real."""
        scores: Tensor = self.scorer(self.normalizer(features, mask), mask)
        return scores


@dataclass
class Source:
    """A trained model as export needs it (:func:`load_source`).

    Attributes:
        checkpoint: the checkpoint file.
        run_dir: its run directory, when it sits in ``<run>/checkpoints/``.
        payload: the checkpoint dict.
        scorer: the scorer, eval mode.
        normalizer: the training set's normalizer.
        n_features: the scorer's feature count.
        sha256: the checkpoint file's, hashed just before it was read.
    """

    checkpoint: Path
    run_dir: Path | None
    payload: dict[str, Any] = field(repr=False)
    scorer: nn.Module = field(repr=False)
    normalizer: Normalizer
    n_features: int
    sha256: str

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.payload["config"]
        return config

    @property
    def uses_mask(self) -> bool:
        """True when scores depend on the other documents of a list (graph has ``mask``)."""
        return uses_context(self.scorer) or self.normalizer.per_query

    def conventions(self) -> dict[str, Any]:
        """The run's metric conventions (``gain``, ``no_relevant``) as configured."""
        evaluation = self.config.get("evaluation", {})
        return {key: evaluation[key] for key in ("gain", "no_relevant") if key in evaluation}

    def reference(self) -> RankingModule:
        """PyTorch eager normalizer + scorer, the model parity compares with."""
        return RankingModule(self.normalizer.to_module(), self.scorer).eval()

    def run_metrics(self) -> dict[str, Any] | None:
        """The run's ``metrics.json``, when there is one."""
        path = None if self.run_dir is None else self.run_dir / "metrics.json"
        if path is None or not path.is_file():
            return None
        metrics: dict[str, Any] = read_json(path)
        return metrics

    def test_file(self) -> Path | None:
        """The run's test file from its config (``data.test``, else ``data.root``'s test.txt)."""
        return config_test_file(self.config.get("data") or {})


def load_source(model: str | Path) -> Source:
    """Rebuild the scorer and normalizer of a run directory (``checkpoints/best.pt``) or a .pt.

    Raises:
        DataNotFoundError: no such run directory or file.
        LtrError: a corrupt checkpoint or one without its config and normalizer.
    """
    path = checkpoint_file(model)
    sha256 = file_sha256(path)
    payload = load_checkpoint(path)
    scorer, normalizer = restore_scorer(path, payload)
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else None
    return Source(
        checkpoint=path.resolve(),
        run_dir=None if run_dir is None else run_dir.resolve(),
        payload=payload,
        scorer=scorer,
        normalizer=normalizer,
        n_features=int(payload["n_features"]),
        sha256=sha256,
    )


def load_exported_source(bundle: Path, metadata: Mapping[str, Any]) -> Source:
    """The checkpoint a bundle was exported from (``metadata.json`` ``source.checkpoint``), as
    it was at the export: its sha256 must be ``source.sha256`` (a bundle exported before ltr
    recorded it is not checked).

    Raises:
        DataNotFoundError: the checkpoint is gone.
        BundleError: the checkpoint changed since the export (a later ``--resume`` rewrites
            ``best.pt``), so comparing the bundle with it would compare two models.
    """
    recorded = metadata["source"]
    path = Path(recorded["checkpoint"])
    other = "give --checkpoint FILE to compare with another checkpoint on purpose"
    if not path.is_file():
        raise DataNotFoundError(
            f"{path}: the checkpoint bundle {bundle} was exported from is gone; re-export the "
            f"bundle from a checkpoint that is there, or {other}"
        )
    source = load_source(path)
    expected = recorded.get("sha256")
    if expected is not None and source.sha256 != expected:
        raise BundleError(
            f"{path} changed since the export of bundle {bundle} (sha256 {expected[:12]} "
            f"recorded, {source.sha256[:12]} now); re-export the bundle from it, or {other}"
        )
    return source
