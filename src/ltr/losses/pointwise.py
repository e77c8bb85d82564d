"""Pointwise losses: each document's score is regressed on its label independently."""

from __future__ import annotations

from torch import Tensor

from ltr.losses._common import check_inputs, zero_padding


def mse_loss(scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    r"""Mean squared error between scores and graded labels over real documents.

    .. math:: \ell = \frac{1}{|D|} \sum_{i \in D} (s_i - y_i)^2

    The pointwise baseline of the LETOR literature (e.g. Liu, *Learning to Rank for Information
    Retrieval*, 2009, section 2). Unlike the ranking losses it still has a target when all labels
    of a query are equal, so such queries keep their gradient.

    Args:
        scores: ``[queries, list_len]`` model outputs.
        labels: ``[queries, list_len]`` graded relevance, 0 = not relevant.
        mask: ``[queries, list_len]`` True for real documents, False for padding.

    Returns:
        Scalar tensor: mean over real documents in the batch; 0.0 when there are none.

    >>> import torch
    >>> mse_loss(torch.tensor([[1.0, 0.0, 9.0]]), torch.tensor([[2.0, 0.0, -1.0]]),
    ...          torch.tensor([[True, True, False]]))
    tensor(0.5000)
    """
    check_inputs(scores, labels, mask)  # a NaN label makes the loss NaN; no value pass
    scores, labels = zero_padding(scores, labels, mask)  # padding: 0 - 0, no loss, no gradient
    return (scores - labels).square().sum() / mask.sum().clamp(min=1)
