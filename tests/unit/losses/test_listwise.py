"""ListNet, ListMLE, ApproxNDCG and NeuralNDCG against explicit small-loop references."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from ltr.errors import ConfigError
from ltr.losses import approx_ndcg_loss, listmle_loss, listnet_loss, neural_ndcg_loss

SCORES = torch.tensor(
    [[0.5, -1.2, 2.0, 0.1, 9.0], [1.5, 0.3, -0.4, 0.8, 0.0], [0.2, 0.9, -0.7, 1.1, -2.0]],
    dtype=torch.float64,
)
LABELS = torch.tensor(  # tie-free among real documents, so ListMLE's permutation is unique
    [[2.0, 0.0, 1.0, 3.0, 1.0], [0.0, 1.0, 2.0, 4.0, 3.0], [1.0, 0.0, 2.0, 3.0, 0.0]],
    dtype=torch.float64,
)
MASK = torch.tensor([[True, True, True, True, False], [True] * 5, [True, True, True, True, False]])


def real(q: int) -> list[int]:
    return [i for i in range(SCORES.shape[1]) if MASK[q, i]]


def ideal_dcg(labels: list[float], k: int | None = None) -> float:
    best = sorted(labels, reverse=True)[:k]
    return sum((2**g - 1) / math.log2(r + 2) for r, g in enumerate(best))


def mean_over_queries(per_query) -> object:
    values = [per_query(q) for q in range(SCORES.shape[0])]
    return sum(values) / len(values)


def listnet_reference(scores: Tensor) -> Tensor:
    def one(q: int) -> Tensor:
        docs = real(q)
        label_norm = sum(math.exp(LABELS[q, d]) for d in docs)
        score_norm = sum(torch.exp(scores[q, d]) for d in docs)
        return -sum(
            math.exp(LABELS[q, i]) / label_norm * torch.log(torch.exp(scores[q, i]) / score_norm)
            for i in docs
        )

    return mean_over_queries(one)


def listmle_reference(scores: Tensor) -> Tensor:
    def one(q: int) -> Tensor:
        order = sorted(real(q), key=lambda d: -LABELS[q, d].item())
        likelihood = 1.0
        for position, doc in enumerate(order):
            rest = sum(torch.exp(scores[q, d]) for d in order[position:])
            likelihood = likelihood * torch.exp(scores[q, doc]) / rest
        return -torch.log(likelihood)

    return mean_over_queries(one)


def approx_ndcg_reference(scores: Tensor, alpha: float) -> Tensor:
    def one(q: int) -> Tensor:
        docs = real(q)
        dcg = 0.0
        for i in docs:
            rank = 1.0
            for j in docs:
                if j != i:
                    rank = rank + 1 / (1 + torch.exp(-alpha * (scores[q, j] - scores[q, i])))
            dcg = dcg + (2 ** LABELS[q, i].item() - 1) / torch.log2(1 + rank)
        return -dcg / ideal_dcg([LABELS[q, d].item() for d in docs])

    return mean_over_queries(one)


def neural_sort_reference(s: list[Tensor], tau: float) -> list[list[Tensor]]:
    """NeuralSort matrix entry by entry: P[i][j] = softmax_j(((n + 1 - 2i) s_j - A_j) / tau)."""
    n = len(s)
    spread = [sum(torch.abs(s[j] - s[k]) for k in range(n)) for j in range(n)]
    rows = []
    for i in range(1, n + 1):
        logits = [((n + 1 - 2 * i) * s[j] - spread[j]) / tau for j in range(n)]
        norm = sum(torch.exp(x) for x in logits)
        rows.append([torch.exp(x) / norm for x in logits])
    return rows


def sinkhorn_reference(p: list[list[Tensor]], iters: int) -> list[list[Tensor]]:
    n = len(p)
    for _ in range(iters):
        cols = [sum(p[i][j] for i in range(n)) for j in range(n)]
        p = [[p[i][j] / cols[j] for j in range(n)] for i in range(n)]
        rows = [sum(p[i]) for i in range(n)]
        p = [[p[i][j] / rows[i] for j in range(n)] for i in range(n)]
    return p


def neural_ndcg_reference(scores: Tensor, tau: float, k: int | None, iters: int) -> Tensor:
    def one(q: int) -> Tensor:
        docs = real(q)
        p = sinkhorn_reference(neural_sort_reference([scores[q, d] for d in docs], tau), iters)
        gains = [2 ** LABELS[q, d].item() - 1 for d in docs]
        cut = len(docs) if k is None else min(k, len(docs))
        dcg = sum(
            sum(p[i][j] * gains[j] for j in range(len(docs))) / math.log2(i + 2) for i in range(cut)
        )
        return -dcg / ideal_dcg([LABELS[q, d].item() for d in docs], k)

    return mean_over_queries(one)


def assert_matches_reference(loss_fn, reference) -> None:
    scores = SCORES.clone().requires_grad_()
    loss = loss_fn(scores, LABELS, MASK)
    (grad,) = torch.autograd.grad(loss, scores)
    ref_scores = SCORES.clone().requires_grad_()
    ref_loss = reference(ref_scores)
    (ref_grad,) = torch.autograd.grad(ref_loss, ref_scores)
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(grad, ref_grad)


def test_listnet_matches_explicit_top_one_cross_entropy() -> None:
    assert_matches_reference(listnet_loss, listnet_reference)


@pytest.mark.parametrize("ties", ["random", "first"])
def test_listmle_matches_explicit_product_over_positions(ties: str) -> None:
    assert_matches_reference(lambda s, y, m: listmle_loss(s, y, m, ties=ties), listmle_reference)


@pytest.mark.parametrize("gap", [50.0, 1_000.0, 1e5])
@pytest.mark.parametrize("direction", [1.0, -1.0])  # lists in label order, or reversed
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_listmle_stays_exact_when_scores_are_far_apart(
    gap: float, direction: float, dtype: torch.dtype
) -> None:
    # a plain prefix sum of exp(score - max) underflows past a gap of ~87 (float32) or ~700
    # (float64) and gave a wrong loss and gradient; the reference sums in log space
    labels = torch.tensor([[0.0, 1.0, 2.0, 3.0]], dtype=dtype)
    scores = direction * gap * torch.tensor([[-1.0, 0.0, 0.5, 1.0]], dtype=dtype)
    scores.requires_grad_()
    mask = torch.ones(1, 4, dtype=torch.bool)

    loss = listmle_loss(scores, labels, mask)
    (grad,) = torch.autograd.grad(loss, scores)
    reference_scores = scores.detach().clone().requires_grad_()
    order = reference_scores[0].flip(0)  # descending label
    reference = sum(torch.logsumexp(order[k:], 0) - order[k] for k in range(4))
    (reference_grad,) = torch.autograd.grad(reference, reference_scores)

    torch.testing.assert_close(loss, reference)
    torch.testing.assert_close(grad, reference_grad)


def test_listmle_mixes_narrow_and_wide_lists_in_one_batch() -> None:
    # narrow rows take the prefix-sum path, wide ones the log-space path; the batch must equal
    # the mean of the rows' references, padding included
    scores = torch.tensor(
        [[3.0, -2.0, 0.5, 0.0], [-900.0, 0.0, 800.0, 0.0]], dtype=torch.float64
    ).requires_grad_()
    labels = torch.tensor([[0.0, 1.0, 2.0, 0.0], [2.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True, False], [True, True, True, False]])

    loss = listmle_loss(scores, labels, mask)
    (grad,) = torch.autograd.grad(loss, scores)
    reference_scores = scores.detach().clone().requires_grad_()
    reference = 0.0
    for q in range(2):
        order = sorted(range(3), key=lambda d: -labels[q, d].item())
        ranked = reference_scores[q, order]
        reference = reference + sum(torch.logsumexp(ranked[k:], 0) - ranked[k] for k in range(3))
    (reference_grad,) = torch.autograd.grad(reference / 2, reference_scores)

    torch.testing.assert_close(loss, reference / 2)
    torch.testing.assert_close(grad, reference_grad)


def listmle_relevant_reference(scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Top-k ListMLE per query, k = documents above the lowest label; ties in input order."""
    losses = []
    for q in range(scores.shape[0]):
        docs = [d for d in range(scores.shape[1]) if mask[q, d]]
        lowest = min(labels[q, d].item() for d in docs)
        if max(labels[q, d].item() for d in docs) == lowest:
            continue  # no order to learn
        order = sorted(docs, key=lambda d: -labels[q, d].item())  # stable: input order in ties
        kept = [p for p, d in enumerate(order) if labels[q, d].item() > lowest]
        ranked = scores[q, order]
        losses.append(sum(torch.logsumexp(ranked[p:], 0) - ranked[p] for p in kept))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("scale", [1.0, 500.0])  # the prefix-sum path and the log-space path
def test_listmle_relevant_terms_keep_only_the_factors_above_the_lowest_label(
    scale: float,
) -> None:
    # ties among the lowest labels (0 here, 1 in the last row), among the relevant ones, padding
    labels = torch.tensor(
        [
            [2.0, 0.0, 1.0, 0.0, 0.0, 1.0],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [3.0, 1.0, 1.0, 2.0, 1.0, 0.0],
        ],
        dtype=torch.float64,
    )
    mask = torch.tensor([[True] * 6, [True] * 6, [True, True, True, True, True, False]])
    generator = torch.Generator().manual_seed(3)
    scores = (scale * torch.randn(3, 6, generator=generator, dtype=torch.float64)).requires_grad_()

    loss = listmle_loss(scores, labels, mask, ties="first", terms="relevant")
    (grad,) = torch.autograd.grad(loss, scores)
    reference_scores = scores.detach().clone().requires_grad_()
    reference = listmle_relevant_reference(reference_scores, labels, mask)
    (reference_grad,) = torch.autograd.grad(reference, reference_scores)

    torch.testing.assert_close(loss, reference)
    torch.testing.assert_close(grad, reference_grad)
    full = listmle_loss(scores.detach(), labels, mask, ties="first")
    assert loss.item() < full.item()  # the dropped factors are each > 0


def test_listmle_relevant_terms_ignore_the_order_among_the_lowest_labels() -> None:
    # random ties reorder the irrelevant documents on every call; with terms="relevant" their
    # order is not in the loss, so the loss and gradient are the same whatever the draw
    labels = torch.tensor([[1.0, 0.0, 0.0, 0.0, 2.0, 0.0]], dtype=torch.float64)
    scores = torch.tensor([[0.3, -1.0, 2.0, 0.5, 1.0, -0.2]], dtype=torch.float64)
    mask = torch.ones(1, 6, dtype=torch.bool)

    def loss_and_grad(seed: int) -> tuple[Tensor, Tensor]:
        s = scores.clone().requires_grad_()
        generator = torch.Generator().manual_seed(seed)
        loss = listmle_loss(s, labels, mask, terms="relevant", generator=generator)
        return loss.detach(), torch.autograd.grad(loss, s)[0]

    first, others = loss_and_grad(0), [loss_and_grad(seed) for seed in range(1, 6)]
    for other in others:
        torch.testing.assert_close(other, first)
    full = [
        listmle_loss(scores, labels, mask, generator=torch.Generator().manual_seed(seed))
        for seed in range(6)
    ]
    assert len({round(value.item(), 12) for value in full}) > 1  # all terms: the draw matters


def test_listmle_relevant_terms_pass_gradcheck_and_ignore_padding() -> None:
    generator = torch.Generator().manual_seed(5)
    scores = torch.randn(4, 7, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 3, (4, 7), generator=generator).double()
    labels[:, 0], labels[:, 1] = 2.0, 0.0
    mask = torch.rand(4, 7, generator=generator) > 0.3
    mask[:, :2] = True

    def fn(s: Tensor) -> Tensor:
        return listmle_loss(s, labels, mask, ties="first", terms="relevant")

    assert torch.autograd.gradcheck(fn, (scores.clone().requires_grad_(),))
    # padding with wild scores and labels changes neither the loss nor the real gradient
    wild_scores = torch.where(mask, scores, 1e4).requires_grad_()
    wild_labels = torch.where(mask, labels, 7.0)
    plain = scores.clone().requires_grad_()
    padded_loss = listmle_loss(wild_scores, wild_labels, mask, ties="first", terms="relevant")
    plain_loss = fn(plain)
    torch.testing.assert_close(padded_loss, plain_loss)
    (padded_grad,) = torch.autograd.grad(padded_loss, wild_scores)
    (plain_grad,) = torch.autograd.grad(plain_loss, plain)
    torch.testing.assert_close(padded_grad[mask], plain_grad[mask])
    assert not padded_grad[~mask].any()


@pytest.mark.parametrize("alpha", [1.0, 10.0])
def test_approx_ndcg_matches_per_document_rank_sums(alpha: float) -> None:
    assert_matches_reference(
        lambda s, y, m: approx_ndcg_loss(s, y, m, alpha=alpha),
        lambda s: approx_ndcg_reference(s, alpha),
    )


@pytest.mark.parametrize(("tau", "k", "iters"), [(1.0, None, 0), (1.0, None, 5), (0.5, 2, 3)])
def test_neural_ndcg_matches_loop_neural_sort_and_sinkhorn(
    tau: float, k: int | None, iters: int
) -> None:
    assert_matches_reference(
        lambda s, y, m: neural_ndcg_loss(s, y, m, tau=tau, k=k, sinkhorn_iters=iters),
        lambda s: neural_ndcg_reference(s, tau, k, iters),
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_neural_ndcg_of_half_inputs_with_large_scores_matches_float32(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(0)
    scores = (torch.randn(4, 50, generator=generator) * 1000).to(dtype).requires_grad_()
    labels = torch.randint(0, 5, (4, 50), generator=generator).to(dtype)
    mask = torch.ones(4, 50, dtype=torch.bool)
    loss = neural_ndcg_loss(scores, labels, mask)
    (grad,) = torch.autograd.grad(loss, scores)
    wide = scores.detach().float().requires_grad_()
    wide_loss = neural_ndcg_loss(wide, labels.float(), mask)
    (wide_grad,) = torch.autograd.grad(wide_loss, wide)

    assert loss.dtype == grad.dtype == dtype
    torch.testing.assert_close(loss.float(), wide_loss, rtol=1e-2, atol=1e-3)
    torch.testing.assert_close(grad.float(), wide_grad.to(dtype).float())


def test_listmle_random_ties_follow_the_generator() -> None:
    scores = torch.tensor([[3.0, 1.0, 0.0, -2.0]])
    labels = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    mask = torch.ones(1, 4, dtype=torch.bool)

    def loss(seed: int) -> float:
        generator = torch.Generator().manual_seed(seed)
        return listmle_loss(scores, labels, mask, generator=generator).item()

    assert loss(0) == loss(0)
    assert len({loss(seed) for seed in range(20)}) > 1  # tied documents take several orders


def test_listmle_first_ties_keep_input_order() -> None:
    scores = torch.tensor([[0.0, 5.0, -1.0]])
    labels = torch.tensor([[1.0, 1.0, 0.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    # pi = (0, 1, 2): -log(e^0 / (e^0 + e^5 + e^-1)) - log(e^5 / (e^5 + e^-1))
    expected = math.log(1 + math.exp(5) + math.exp(-1)) + math.log(1 + math.exp(-6))
    assert listmle_loss(scores, labels, mask, ties="first").item() == pytest.approx(expected)


def test_neural_ndcg_approaches_ndcg_at_low_temperature() -> None:
    scores = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    labels = torch.tensor([[0.0, 2.0, 1.0, 0.0]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    ndcg = ((3 / math.log2(3)) + (1 / 2)) / (3 + 1 / math.log2(3))
    assert -neural_ndcg_loss(scores, labels, mask, tau=0.01).item() == pytest.approx(ndcg, abs=1e-4)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: listmle_loss(SCORES, LABELS, MASK, ties="last"),
            r"ties must be 'random' or 'first'",
        ),
        (
            lambda: listmle_loss(SCORES, LABELS, MASK, terms="top"),
            r"terms must be 'all' or 'relevant'; got 'top'",
        ),
        (
            lambda: approx_ndcg_loss(SCORES, LABELS, MASK, alpha=-1.0),
            r"alpha must be greater than 0",
        ),
        (lambda: neural_ndcg_loss(SCORES, LABELS, MASK, tau=0.0), r"tau must be greater than 0"),
        (lambda: neural_ndcg_loss(SCORES, LABELS, MASK, k=1.5), r"k must be a positive integer"),
        (
            lambda: neural_ndcg_loss(SCORES, LABELS, MASK, sinkhorn_iters=-1),
            r"sinkhorn_iters must be an integer >= 0",
        ),
    ],
)
def test_invalid_parameters_raise_config_error(call, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()
