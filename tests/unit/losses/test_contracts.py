"""Contract tests run over the loss registry: adding a loss means adding one LOSSES entry."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from ltr.losses import LOSSES

Batch = tuple[Tensor, Tensor, Tensor]
RANKING_LOSSES = sorted(set(LOSSES) - {"mse"})  # mse is pointwise: equal labels are a target
# Deterministic tie-breaking wherever two calls must agree.
PARAMS: dict[str, dict[str, object]] = {"listmle": {"ties": "first"}}


def loss_fn(name: str, **extra: object) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    params = {**PARAMS.get(name, {}), **extra}
    return lambda scores, labels, mask: LOSSES[name](scores, labels, mask, **params)


def random_batch(queries: int, list_len: int, seed: int, *, tie_free: bool = False) -> Batch:
    """float64 batch; padding scattered inside lists; every query has >= 2 real documents."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(queries, list_len, generator=generator, dtype=torch.float64)
    if tie_free:
        labels = torch.rand(queries, list_len, generator=generator, dtype=torch.float64) * 4
    else:
        labels = torch.randint(0, 5, (queries, list_len), generator=generator).double()
    mask = torch.rand(queries, list_len, generator=generator) > 0.3
    mask[:, :2] = True
    labels[:, 0], labels[:, 1] = 4.0, 0.0  # every query is informative
    return scores, labels, mask


def pad_with_junk(batch: Batch, extra: int) -> Batch:
    """Append ``extra`` masked documents with wild scores and labels to every list."""
    scores, labels, mask = batch
    queries = scores.shape[0]
    wild_scores = torch.tensor([1e6, -1e6, math.inf, math.nan, 0.0], dtype=scores.dtype)
    wild_labels = torch.tensor([100.0, -1.0, math.nan, 4.0, -math.inf], dtype=labels.dtype)
    junk_scores = wild_scores.repeat(extra)[:extra].expand(queries, extra)
    junk_labels = wild_labels.repeat(extra)[:extra].expand(queries, extra)
    return (
        torch.cat([scores, junk_scores], dim=1),
        torch.cat([labels, junk_labels], dim=1),
        torch.cat([mask, torch.zeros(queries, extra, dtype=torch.bool)], dim=1),
    )


def loss_and_grad(fn: Callable[..., Tensor], batch: Batch) -> tuple[Tensor, Tensor]:
    scores, labels, mask = batch
    scores = scores.clone().requires_grad_()
    loss = fn(scores, labels, mask)
    (grad,) = torch.autograd.grad(loss, scores)
    return loss.detach(), grad


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_padding_changes_neither_loss_nor_gradients(name: str) -> None:
    batch = random_batch(queries=4, list_len=6, seed=0)
    loss, grad = loss_and_grad(loss_fn(name), batch)
    padded_loss, padded_grad = loss_and_grad(loss_fn(name), pad_with_junk(batch, extra=5))
    torch.testing.assert_close(padded_loss, loss)
    torch.testing.assert_close(padded_grad[:, :6], grad)
    assert torch.equal(padded_grad[:, 6:], torch.zeros_like(padded_grad[:, 6:]))
    assert torch.equal(grad[~batch[2]], torch.zeros_like(grad[~batch[2]]))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_permuting_documents_within_lists_keeps_the_loss(name: str) -> None:
    scores, labels, mask = random_batch(queries=3, list_len=7, seed=1, tie_free=True)
    order = torch.stack(
        [torch.randperm(7, generator=torch.Generator().manual_seed(q)) for q in range(3)]
    )
    fn = LOSSES[name]  # default parameters: listmle's random ties cannot matter without ties
    loss = fn(scores, labels, mask)
    permuted = fn(scores.gather(1, order), labels.gather(1, order), mask.gather(1, order))
    torch.testing.assert_close(permuted, loss)


@pytest.mark.parametrize("name", RANKING_LOSSES)
def test_all_equal_labels_give_finite_loss_and_zero_gradient(name: str) -> None:
    scores, _, mask = random_batch(queries=3, list_len=5, seed=2)
    labels = torch.full_like(scores, 2.0)
    loss, grad = loss_and_grad(loss_fn(name), (scores, labels, mask))
    assert torch.isfinite(loss)
    assert torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_all_padding_query_adds_nothing(name: str) -> None:
    scores, labels, mask = random_batch(queries=3, list_len=5, seed=3)
    mask[1] = False
    loss, grad = loss_and_grad(loss_fn(name), (scores, labels, mask))
    keep = torch.tensor([0, 2])
    alone_loss, alone_grad = loss_and_grad(loss_fn(name), (scores[keep], labels[keep], mask[keep]))
    torch.testing.assert_close(loss, alone_loss)
    torch.testing.assert_close(grad[keep], alone_grad)
    assert torch.equal(grad[1], torch.zeros_like(grad[1]))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_batch_of_only_padding_gives_zero_loss_and_gradient(name: str) -> None:
    scores, labels, _ = random_batch(queries=2, list_len=4, seed=4)
    mask = torch.zeros_like(scores, dtype=torch.bool)
    loss, grad = loss_and_grad(loss_fn(name), (scores, labels, mask))
    assert loss.item() == 0.0
    assert torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("shape", [(2, 0), (0, 3)])
def test_batch_without_documents_gives_zero_loss_and_gradient(
    name: str, shape: tuple[int, int]
) -> None:
    scores, labels = torch.zeros(shape, dtype=torch.float64), torch.zeros(shape)
    loss, grad = loss_and_grad(
        loss_fn(name), (scores, labels, torch.zeros(shape, dtype=torch.bool))
    )
    assert loss.item() == 0.0
    assert grad.shape == shape


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradients_pass_gradcheck_in_float64(name: str) -> None:
    scores, labels, mask = random_batch(queries=2, list_len=5, seed=5)
    scores.requires_grad_()
    fn = loss_fn(name)
    assert torch.autograd.gradcheck(lambda s: fn(s, labels, mask), (scores,))


@pytest.mark.parametrize("name", RANKING_LOSSES)
def test_perfect_ordering_has_the_lowest_loss(name: str) -> None:
    labels = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]], dtype=torch.float64)
    perfect = torch.tensor([[2.0, 1.0, 0.0, -1.0, -2.0]], dtype=torch.float64)
    mask = torch.ones_like(labels, dtype=torch.bool)
    fn = loss_fn(name)
    best = fn(perfect, labels, mask)
    generator = torch.Generator().manual_seed(6)
    for _ in range(8):
        shuffled = perfect[:, torch.randperm(5, generator=generator)]
        assert best <= fn(shuffled, labels, mask) + 1e-12


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_long_lists_and_extreme_scores_stay_finite_in_float32(name: str) -> None:
    generator = torch.Generator().manual_seed(7)
    scores = (torch.randn(2, 1000, generator=generator) * 100).requires_grad_()
    labels = torch.randint(0, 5, (2, 1000), generator=generator).float()
    mask = torch.rand(2, 1000, generator=generator) > 0.2
    loss = LOSSES[name](scores, labels, mask)
    (grad,) = torch.autograd.grad(loss, scores)
    assert torch.isfinite(loss)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("name", RANKING_LOSSES)
def test_labels_whose_exp2_overflows_float32_match_float64(name: str) -> None:
    # 2^200 is inf in float32: NDCG-based losses gave a NaN loss and gradient
    scores = torch.tensor([[0.5, 0.1, -0.3], [0.2, 0.4, 0.0]], dtype=torch.float64)
    labels = torch.tensor([[200.0, 0.0, 3.0], [1.0, 130.0, 0.0]], dtype=torch.float64)
    mask = torch.ones(2, 3, dtype=torch.bool)
    fn = loss_fn(name)
    loss64, grad64 = loss_and_grad(fn, (scores, labels, mask))
    loss32, grad32 = loss_and_grad(fn, (scores.float(), labels.float(), mask))
    torch.testing.assert_close(loss32, loss64.float())
    torch.testing.assert_close(grad32, grad64.float())


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_single_document_lists_work(name: str) -> None:
    scores = torch.tensor([[0.3], [-1.0]], requires_grad=True)
    labels = torch.tensor([[1.0], [0.0]])
    loss = LOSSES[name](scores, labels, torch.ones(2, 1, dtype=torch.bool))
    loss.backward()
    assert torch.isfinite(loss)
