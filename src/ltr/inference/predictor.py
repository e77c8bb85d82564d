"""Offline batch scoring: a trained checkpoint scores every document of a LETOR file.

The output is either one score per line, aligned with the data lines (``fmt="scores"``, the
LightGBM/RankLib convention), or a TREC run (``fmt="trec"``); ``ltr evaluate`` reads both. Scores
come from the same code as training-time validation and the test numbers in ``metrics.json``
(:func:`ltr.training.trainer.score_data`, same normalizer, same batch size), so evaluating a
scores file reproduces those numbers exactly. A TREC run reproduces them too unless a query has
tied scores: a run is ranked as trec_eval ranks it, ties by docid descending, while ltr's metrics
keep tied documents in file order. The run is written in trec_eval's order (its ``rank`` column
is the order it is evaluated in), and writing one warns when some query has tied scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from ltr._fs import check_writable, refuse_directory
from ltr.data.letor import LetorData, load_letor, warn_if_narrower
from ltr.data.preprocessing import Normalizer
from ltr.data.runs import write_scores, write_trec_run
from ltr.errors import ConfigError, ShapeError
from ltr.training.checkpoint import checkpoint_file, load_checkpoint, restore_scorer
from ltr.training.experiment import resolve_device
from ltr.training.trainer import score_data

__all__ = ["OutputFormat", "Predictor", "predict_file"]

OutputFormat = Literal["scores", "trec"]


@dataclass
class Predictor:
    """A trained scorer with its normalizer, ready to score raw LETOR data.

    Attributes:
        model: the scorer, in eval mode.
        normalizer: the training set's feature normalization.
        n_features: the feature count the scorer expects.
        batch_size: queries per forward pass (the training batch size, so scores match the
            numbers computed during training bit for bit).
        source: the checkpoint file.
    """

    model: nn.Module
    normalizer: Normalizer
    n_features: int
    batch_size: int
    source: Path

    @classmethod
    def load(cls, model_path: str | Path, *, device: torch.device | str = "cpu") -> Predictor:
        """Rebuild the scorer of a run directory (its ``checkpoints/best.pt``) or a ``.pt`` file.

        Raises:
            ConfigError: ``device`` is not ``cpu``, ``cuda``, ``cuda:N`` or ``auto``, or
                names an unavailable cuda.
            DataNotFoundError: no such run directory or file.
            LtrError: a corrupt checkpoint, or one without the config it was trained with.
        """
        target = resolve_device(device, field="device")  # before the (slow) checkpoint load
        path = checkpoint_file(model_path)
        checkpoint = load_checkpoint(path)
        model, normalizer = restore_scorer(path, checkpoint)
        model.to(target)
        return cls(
            model=model,
            normalizer=normalizer,
            n_features=int(checkpoint["n_features"]),
            batch_size=int(checkpoint["config"].get("training", {}).get("batch_size", 64)),
            source=path,
        )

    def score(self, data: LetorData, *, source: str | None = None) -> np.ndarray:
        """``float64 [n_docs]`` scores of raw (unnormalized) ``data``, in file order.

        Args:
            data: the documents to score.
            source: what errors call ``data``; None: its file (``data.source``), else
                "the data".

        Raises:
            ShapeError: ``data`` has another feature count than the model (names both, and
                for narrower data how to read the file at the model's width).
        """
        if data.n_features != self.n_features:
            raise ShapeError(self._width_problem(data, source or data.source or "the data"))
        device = next(self.model.parameters()).device
        normalized = self.normalizer.transform_data(data)
        return score_data(self.model, normalized, batch_size=self.batch_size, device=device)

    def _width_problem(self, data: LetorData, source: str) -> str:
        problem = (  # names the model: a command may score several
            f"model {self.source} was trained on {self.n_features} features; "
            f"{source} has {data.n_features}"
        )
        if data.n_features > self.n_features:
            return problem
        # a sparse file omits features that are 0: one whose last features are all 0 reads
        # narrower than the files the model was trained on
        return (
            f"{problem}; a sparse file that leaves out trailing zero features reads narrower: "
            f"load it with load_letor(path, n_features={self.n_features})"
        )


def predict_file(
    model_path: str | Path,
    data_path: str | Path,
    out_path: str | Path,
    fmt: OutputFormat = "scores",
    *,
    device: torch.device | str = "cpu",
) -> Path:
    """Score every document of a LETOR file with a trained model and write the scores.

    Args:
        model_path: a run directory (uses ``checkpoints/best.pt``) or a checkpoint file.
        data_path: the LETOR file to score (plain or gzip).
        out_path: where to write.
        fmt: ``"scores"``: one score per line, aligned with the data lines;
            ``"trec"``: a TREC run (``qid Q0 docid rank score tag``, tag = the run's name).
        device: where to run the model: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.

    Returns:
        ``out_path``.

    Raises:
        ConfigError: an unknown ``fmt``, or ``out_path`` is a directory (checked first).
        WriteError: ``out_path`` cannot be written (checked first too).
        DataFormatError: a line holds a feature index beyond the model's (fewer features are
            fine: a sparse file leaves out features that are 0).
        DataNotFoundError, LtrError: a missing or unreadable model or data file.
    """
    if fmt not in ("scores", "trec"):
        raise ConfigError(f"format must be 'scores' or 'trec'; got {fmt!r}")
    refuse_directory(out_path)
    check_writable(out_path)
    predictor = Predictor.load(model_path, device=device)
    # the model's width, as training reads its test file: a sparse file may leave out the last
    # features (0), and an index beyond the model's is an error naming its file and line
    data = load_letor(data_path, n_features=predictor.n_features)
    warn_if_narrower(data, "the model")
    scores = predictor.score(data, source=str(data_path))
    out = Path(out_path)
    if fmt == "scores":
        write_scores(out, scores)
    else:
        tag = Path(model_path).name if Path(model_path).is_dir() else Path(model_path).stem
        write_trec_run(out, data, scores, tag=tag.replace(" ", "_") or "ltr", data_path=data_path)
    return out
