"""Rankings that need no training, as the floor every learned model must clear.

- *random*: seeded uniform scores; what a ranking worth nothing scores under the convention.
- *best single feature*: the one feature (and direction) that ranks the training queries best,
  chosen on the training file only and then applied to the evaluated file, so it is an honest
  baseline, not an oracle.
- *ideal*: the labels themselves; the ceiling under the convention (below 1 when queries without
  a relevant document count as 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ltr.data.letor import LetorData
from ltr.errors import ShapeError
from ltr.evaluation import Evaluation, evaluate_scores


@dataclass(frozen=True)
class SingleFeature:
    """A feature column used as a ranking; ``sign`` -1 ranks low values first."""

    index: int  # 0-based column; LETOR calls it feature ``index + 1``
    sign: int
    train_value: float  # the selection metric on the training file

    @property
    def name(self) -> str:
        direction = "" if self.sign > 0 else "-"
        return f"{direction}feature {self.index + 1}"

    def scores(self, data: LetorData) -> np.ndarray:
        return self.sign * data.features[:, self.index].astype(np.float64)


def best_single_feature(
    train: LetorData, metric: str = "ndcg@10", **conventions: Any
) -> SingleFeature:
    """The feature and direction with the highest mean ``metric`` on ``train``.

    Ties go to the lower feature index and to the ascending-is-better direction last, so the
    choice is deterministic.
    """
    best: SingleFeature | None = None
    for index in range(train.n_features):
        for sign in (1, -1):
            candidate = SingleFeature(index, sign, float("nan"))
            value = evaluate_scores(train, candidate.scores(train), [metric], **conventions)
            mean = value.means[metric]
            if best is None or mean > best.train_value:
                best = SingleFeature(index, sign, mean)
    assert best is not None, "LetorData always has at least one feature"
    return best


def random_scores(data: LetorData, seed: int = 0) -> np.ndarray:
    """Seeded uniform scores, one per document (tie-free with probability 1)."""
    return np.random.default_rng(seed).random(data.n_docs)


def evaluate_baselines(
    train: LetorData,
    test: LetorData,
    metrics: Sequence[str],
    *,
    selection_metric: str = "ndcg@10",
    seed: int = 0,
    **conventions: Any,
) -> dict[str, Evaluation]:
    """Evaluate the random, best-single-feature and ideal rankings on ``test``.

    Returns:
        Row label -> evaluation, in display order.

    Raises:
        ShapeError: ``train`` and ``test`` have different feature counts.
    """
    if train.n_features != test.n_features:
        raise ShapeError(
            f"train and test must share the feature set; got {train.n_features} and "
            f"{test.n_features} features"
        )
    feature = best_single_feature(train, selection_metric, **conventions)
    rankings = {
        f"random (seed {seed})": random_scores(test, seed),
        f"{feature.name} (best single feature on train)": feature.scores(test),
        "ideal (labels as scores)": test.labels.astype(np.float64),
    }
    return {
        label: evaluate_scores(test, scores, metrics, **conventions)
        for label, scores in rankings.items()
    }
