from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ltr.data.letor import LetorData, load_letor, write_letor
from ltr.errors import DataFormatError, ShapeError
from ltr.evaluation import evaluate_scores, refuse_gain_overflow
from ltr.metrics import CutoffWarning


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


def test_a_cutoff_beyond_every_list_of_a_file_is_warned_once_naming_the_file(
    tmp_path: Path,
) -> None:
    write_letor(tmp_path / "vali.txt", two_queries())
    data = load_letor(tmp_path / "vali.txt", use_cache=False)

    with pytest.warns(CutoffWarning) as caught:
        evaluate_scores(data, np.zeros(4), ["ndcg@5", "p@5", "ndcg@1"])

    assert [str(w.message) for w in caught] == [
        "k=5 is larger than every list in vali.txt (the longest has 2 documents); check the cutoff"
    ]


def test_data_made_in_memory_keeps_the_batch_wording() -> None:
    with pytest.warns(CutoffWarning, match=r"every list in the batch \(the longest has 2 "):
        evaluate_scores(two_queries(), np.zeros(4), ["ndcg@5"])


def test_a_label_overflowing_the_exp2_gain_is_refused_naming_file_query_and_fix(
    tmp_path: Path,
) -> None:
    data = two_queries()
    data.labels[2] = 1024.0  # the first document of q2
    write_letor(tmp_path / "vali.txt", data)
    read = load_letor(tmp_path / "vali.txt", use_cache=False)

    with pytest.raises(DataFormatError) as caught:
        refuse_gain_overflow(read, ["map", "ndcg@10"], "use --gain linear")

    assert str(caught.value) == (
        "vali.txt: label 1024 of query q2: the exp2 gain 2^label - 1 overflows float64; "
        "use --gain linear"
    )
    # no metric reading the gain, or a gain that cannot overflow: nothing to refuse
    refuse_gain_overflow(read, ["map", "err@10"], "use --gain linear")
    refuse_gain_overflow(read, ["ndcg@10"], "use --gain linear", gain="linear")
    refuse_gain_overflow(read, ["ndcg@10"], "use --gain linear", preset="trec_eval")
    # the metrics themselves, when asked anyway, name the file too
    with pytest.raises(ShapeError, match=r"^vali.txt: the exp2 gain 2\^label - 1 overflows"):
        evaluate_scores(read, np.zeros(4), ["ndcg@10"])
