"""MSE and the shape checks every loss shares."""

from __future__ import annotations

import pytest
import torch

from ltr.errors import ShapeError
from ltr.losses import LOSSES, mse_loss


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


def test_non_bool_mask_raises_shape_error() -> None:
    with pytest.raises(ShapeError, match=r"mask must be a bool tensor"):
        mse_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2))
