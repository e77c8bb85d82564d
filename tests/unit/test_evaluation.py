from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ltr.data.letor import LetorData
from ltr.errors import ShapeError
from ltr.evaluation import evaluate_scores


def two_queries() -> LetorData:
    return LetorData(
        features=np.zeros((4, 1), np.float32),
        labels=np.array([0, 1, 2, 0], np.float32),
        query_ids=np.array(["q1", "q2"]),
        query_offsets=np.array([0, 2, 4]),
    )


def test_nan_score_raises_shape_error_counting_the_documents() -> None:
    scores = np.array([1.0, math.nan, 2.0, 0.0])
    with pytest.raises(ShapeError, match=r"scores hold NaN at 1 real documents"):
        evaluate_scores(two_queries(), scores, ["ndcg"])


def test_scores_requiring_grad_are_detached() -> None:
    scores = torch.tensor([1.0, 2.0, 2.0, 0.0], requires_grad=True)

    evaluation = evaluate_scores(two_queries(), scores, ["mrr"])

    np.testing.assert_array_equal(evaluation.per_query["mrr"], [1.0, 1.0])
