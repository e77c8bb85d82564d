"""MSE and the input checks every loss shares."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ltr.errors import ShapeError
from ltr.losses import LOSSES, listmle_loss, mse_loss
from ltr.metrics import ndcg

SCORES = torch.tensor([[0.5, 0.2, -0.1], [1.0, 0.0, 3.0]])
LABELS = torch.tensor([[2.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
MASK = torch.tensor([[True, True, True], [True, True, False]])


def test_mse_averages_squared_errors_over_real_documents() -> None:
    scores = torch.tensor([[1.0, 2.0, 7.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([[0.0, 2.0, 1.0], [3.0, 1.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    assert mse_loss(scores, labels, mask).item() == pytest.approx((1 + 0 + 9 + 1 + 0) / 5)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_mismatched_shapes_raise_shape_error(name: str) -> None:
    scores, labels = torch.zeros(2, 3), torch.zeros(2, 4)
    with pytest.raises(
        ShapeError,
        match=r"must share shape \[queries, list_len\]; got \(2, 3\), \(2, 4\), \(2, 3\)",
    ):
        LOSSES[name](scores, labels, torch.ones(2, 3, dtype=torch.bool))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_non_bool_mask_raises_shape_error(name: str) -> None:
    with pytest.raises(ShapeError, match=r"^mask must be a bool tensor .*; got torch\.float32$"):
        LOSSES[name](SCORES, LABELS, MASK.float())


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_numpy_arrays_raise_shape_error(name: str) -> None:
    with pytest.raises(
        ShapeError, match=r"^scores, labels and mask must be torch tensors; got ndarray, "
    ):
        LOSSES[name](SCORES.numpy(), LABELS.numpy(), np.asarray(MASK))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_integer_scores_raise_shape_error(name: str) -> None:
    # listmle returned an int64 loss, mse rounded the labels to integers
    with pytest.raises(
        ShapeError, match=r"^scores must be a floating-point tensor; got torch\.int64$"
    ):
        LOSSES[name](SCORES.long(), LABELS, MASK)


# the losses a bad label would corrupt without a sign; the others skip the value pass for speed
CHECKED = sorted(set(LOSSES) - {"mse", "listnet", "listmle"})


@pytest.mark.parametrize("name", CHECKED)
@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_bad_label_of_a_real_document_raises_the_metrics_error(name: str, bad: float) -> None:
    # NaN gave loss 0 and no gradient (the query silently skipped), -1 a loss of 1e11
    labels = LABELS.clone()
    labels[0, 1] = bad
    with pytest.raises(ShapeError) as metric_error:
        ndcg(SCORES, labels, MASK)
    with pytest.raises(ShapeError, match=r" at 1 real documents$") as loss_error:
        LOSSES[name](SCORES, labels, MASK)
    assert str(loss_error.value) == str(metric_error.value)


@pytest.mark.parametrize("name", sorted(set(LOSSES) - set(CHECKED)))
def test_a_nan_label_makes_an_unchecked_loss_nan_never_a_skipped_query(name: str) -> None:
    # ListMLE gave 0 and no gradient for a query with a NaN label, as if it had none to learn
    labels = LABELS.clone()
    labels[0, 1] = math.nan
    scores = SCORES.clone().requires_grad_()
    loss = LOSSES[name](scores, labels, MASK)
    loss.backward()
    assert loss.isnan()
    assert scores.grad is not None and scores.grad.isnan().any()


def test_listmle_reads_a_real_label_of_inf_as_the_most_relevant_document() -> None:
    # it sorts among the padding, which once made it padding: its document left the list
    scores = torch.tensor([[0.3, 1.0, -0.5, 0.0]], requires_grad=True)
    mask = torch.tensor([[True, True, True, False]])
    loss = listmle_loss(scores, torch.tensor([[0.0, math.inf, 1.0, 0.0]]), mask, ties="first")
    torch.testing.assert_close(
        loss, listmle_loss(scores, torch.tensor([[0.0, 2.0, 1.0, 0.0]]), mask, ties="first")
    )


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_integer_and_bool_labels_are_read_as_numbers(name: str) -> None:
    params = {"ties": "first"} if name == "listmle" else {}
    expected = LOSSES[name](SCORES, LABELS, MASK, **params)
    torch.testing.assert_close(LOSSES[name](SCORES, LABELS.long(), MASK, **params), expected)
    assert torch.isfinite(LOSSES[name](SCORES, LABELS > 0, MASK, **params))
