"""Listwise losses: one value per query from the whole list of scores.

Each query's value is averaged over the *informative* queries of the batch: those with two real
documents whose labels differ. A query whose real labels are all equal (or that has fewer than two
real documents, or none) has no ranking to learn; it gets the value 0, does not count in the
mean, and receives an exactly-zero gradient. A batch without an informative query gives 0.0.

NDCG-based losses use gain ``2**label - 1`` and discount ``1 / log2(rank + 1)``.
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from ltr.errors import ConfigError
from ltr.losses._common import (
    check_inputs,
    check_k,
    check_label_values,
    exp2_gain,
    ideal_dcg,
    mean_over,
    no_documents_loss,
    rank_discounts,
    require_count,
    require_positive,
    varied_queries,
    zero_padding,
)

Ties = Literal["random", "first"]
Terms = Literal["all", "relevant"]


def listnet_loss(scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    r"""ListNet (Cao et al., ICML 2007): cross entropy of top-one probabilities.

    .. math:: \ell_q = -\sum_{i} \mathrm{softmax}(y)_i \log \mathrm{softmax}(s)_i

    The target is the top-one probability the paper derives with :math:`\varphi = \exp`, i.e.
    the softmax of the labels over the query's real documents (not labels divided by their sum,
    which would give zero-label documents no mass and be undefined for all-zero queries).

    Args:
        scores: ``[queries, list_len]`` model outputs.
        labels: ``[queries, list_len]`` graded relevance, 0 = not relevant.
        mask: ``[queries, list_len]`` True for real documents, False for padding.

    Returns:
        Scalar tensor: mean over informative queries; 0.0 when there are none.

    >>> listnet_loss(torch.tensor([[2.0, 1.0, 5.0]]), torch.tensor([[1.0, 0.0, 3.0]]),
    ...              torch.tensor([[True, True, False]]))
    tensor(0.5822)
    """
    check_inputs(scores, labels, mask)
    if scores.shape[-1] == 0:
        return no_documents_loss(scores)
    # Padding gets the most negative finite value rather than -inf: probability exp(min - max)
    # = 0 exactly, and an all-padding row stays finite (its weight is 0).
    lowest = torch.finfo(scores.dtype).min
    labels = torch.where(mask, labels.to(scores.dtype), lowest)
    # Informative query: some real label lies below the highest one.
    keep = ((labels < labels.amax(dim=-1, keepdim=True)) & mask).any(dim=-1, keepdim=True)
    # Minus the mean's weights, so that the dot product below is the loss itself.
    neg_weights = keep / keep.sum().clamp(min=1).neg()
    target = labels.softmax(dim=-1).mul_(neg_weights)
    # Plain autograd on purpose: these few built-in ops (whose backward is one fused
    # log-softmax step and a `where`) cost less than a Python autograd.Function at [q, n] sizes.
    log_probs = torch.where(mask, scores, lowest).log_softmax(dim=-1)
    return target.reshape(-1) @ log_probs.reshape(-1)


def _exp_floor(dtype: torch.dtype) -> float:
    """Prefix sums of ``exp(x - max)`` above this are normal numbers with room to spare: their
    reciprocals summed over a long list stay finite (e^-74 in float32, e^-602 in float64)."""
    return float(torch.finfo(dtype).tiny ** 0.85)


class _PlackettLuceNLL(torch.autograd.Function):
    """``sum_q w_q sum_{k counted} (log sum_{l <= k} e^{x_l} - x_k)``: Plackett-Luce NLL,
    gradient in forward.

    ``order[q]`` lists the columns of query q in *ascending* order of the target permutation with
    padding last (``padding`` marks those sorted positions), so the Plackett-Luce denominators
    are prefix sums of ``exp(x)``, ``x = scores.gather(-1, order)``, in the scores' dtype (at
    least float32); ``counted`` marks the sorted positions whose factor is in the product (a
    subset of the real ones; None: every real one). The saved gradient, already scattered back
    to the input's columns, is ``w_q (-[p counted] + e^{x_p} sum_{k >= p counted} 1 / T_k)``
    per real position p. Gathering inside (rather than through autograd) leaves one product for
    the backward pass.

    Rows whose prefix sums of ``exp(x - max)`` stay above :func:`_exp_floor` (scores within
    ~74 of the row's maximum in float32, ~600 in float64) use them; wider rows are redone in
    log space (``logcumsumexp``, ~3x slower), because there the prefix sums underflow and the
    loss came out large with a gradient that pointed the wrong way.
    """

    @staticmethod
    def forward(
        ctx: Any,
        scores: Tensor,
        order: Tensor,
        padding: Tensor,
        weights: Tensor,
        counted: Tensor | None,
    ) -> Tensor:
        # Padding gets the most negative finite value: exp(...) = 0 in every prefix sum, and an
        # all-padding row stays finite (its weight is 0).
        dtype = torch.promote_types(scores.dtype, torch.float32)
        x = scores.gather(-1, order).to(dtype).masked_fill_(padding, torch.finfo(dtype).min)
        x.sub_(x.amax(dim=-1, keepdim=True))  # <= 0 at real positions
        exps = x.exp()
        tails = exps.cumsum(dim=-1)
        # prefix sums only grow: the first (a real document's, or 1 for an all-padding row) is
        # the smallest, so one column says whether any row needs log space
        first = tails[:, 0].clone()  # reciprocal_ below reuses tails
        floor = _exp_floor(dtype)
        redo = len(first) > 0 and float(first.min()) < floor
        skipped = padding if counted is None else ~counted
        per_position = tails.log().sub_(x).masked_fill_(skipped, 0.0)
        inverse = tails.reciprocal_().masked_fill_(skipped, 0.0)
        later = inverse.flip(-1).cumsum(dim=-1).flip(-1)  # sum over k >= p of 1 / T_k
        grad = exps.mul_(later).sub_(1.0 if counted is None else counted.to(dtype))
        grad.masked_fill_(padding, 0.0)
        if redo:
            wide = first < floor
            kept = ~padding[wide] if counted is None else counted[wide]
            per_position[wide], grad[wide] = _log_space_terms(x[wide], padding[wide], kept)
        total = per_position.sum(dim=-1) @ weights
        grad.mul_(weights.unsqueeze(-1))
        # `order` is a permutation of every row's columns, so the scatter writes every entry.
        ctx.save_for_backward(torch.empty_like(scores).scatter_(-1, order, grad.to(scores.dtype)))
        return total.to(scores.dtype)

    @staticmethod
    def backward(ctx: Any, grad_total: Tensor) -> tuple[Tensor, None, None, None, None]:
        (grad,) = ctx.saved_tensors
        return grad_total * grad, None, None, None, None


def _log_space_terms(x: Tensor, padding: Tensor, counted: Tensor) -> tuple[Tensor, Tensor]:
    """Per-position NLL terms and unweighted gradients of max-shifted rows of any score gap,
    every sum taken in log space."""
    log_tails = x.logcumsumexp(dim=-1)
    per_position = (log_tails - x).masked_fill_(~counted, 0.0)
    inverse = log_tails.neg().masked_fill_(~counted, -math.inf)
    later = inverse.flip(-1).logcumsumexp(dim=-1).flip(-1)  # log sum_{k >= p} 1 / T_k
    # e^{x_p} / T_k <= 1 for k >= p, so the exponent stays in range
    return per_position, (x + later).exp_().sub_(counted.to(x.dtype)).masked_fill_(padding, 0.0)


def listmle_loss(
    scores: Tensor,
    labels: Tensor,
    mask: Tensor,
    *,
    ties: Ties = "random",
    terms: Terms = "all",
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""ListMLE (Xia et al., ICML 2008): Plackett-Luce likelihood of the label-sorted list.

    .. math:: \ell_q = -\log \prod_{k=1}^{m} \frac{e^{s_{\pi(k)}}}{\sum_{l=k}^{m} e^{s_{\pi(l)}}}
              = \sum_{k=1}^{m} \Big(\log \sum_{l=k}^{m} e^{s_{\pi(l)}} - s_{\pi(k)}\Big)

    where :math:`\pi` sorts the query's :math:`m` real documents by descending label.

    Args:
        scores: ``[queries, list_len]`` model outputs.
        labels: ``[queries, list_len]`` graded relevance, 0 = not relevant.
        mask: ``[queries, list_len]`` True for real documents, False for padding.
        ties: order of documents with equal labels inside :math:`\pi`: ``"random"`` (default;
            a fresh uniform order per call, so no input-order bias is learned) or ``"first"``
            (input order; deterministic).
        terms: which factors of the product count: ``"all"`` (default) or ``"relevant"``, only
            those of documents labelled above the query's lowest label (top-k ListMLE, Xia et
            al. 2009, with k the number of such documents per query). Their denominators still
            hold every document below them; what is dropped is the order *among* the
            lowest-labelled documents, which random ties make noise, and which fills most of
            a long list's factors.
        generator: random source for ``ties="random"``; None = torch's global generator.

    Returns:
        Scalar tensor: mean over informative queries; 0.0 when there are none.

    Raises:
        ConfigError: ``ties`` is neither ``"random"`` nor ``"first"``, or ``terms`` neither
            ``"all"`` nor ``"relevant"``.

    >>> listmle_loss(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]]),
    ...              torch.ones(1, 2, dtype=torch.bool))
    tensor(1.3133)
    """
    if ties not in get_args(Ties):
        raise ConfigError(f"ties must be 'random' or 'first'; got {ties!r}")
    if terms not in get_args(Terms):
        raise ConfigError(f"terms must be 'all' or 'relevant'; got {terms!r}")
    check_inputs(scores, labels, mask)
    if scores.shape[-1] == 0:
        return no_documents_loss(scores)
    key = torch.where(mask, labels.to(scores.dtype), math.inf)  # padding sorts last
    n = key.shape[-1]
    # The likelihood needs the label order descending; sorting ascending makes its
    # denominators prefix sums. Columns are permuted before the sort: reversed for "first"
    # (with a stable sort, ties come out in reversed input order, i.e. input order once the
    # list is read from the top), uniformly at random for "random" (then tied documents come
    # out in a uniformly random order whatever order the sort leaves ties in).
    if ties == "random":
        columns = torch.randperm(n, generator=generator, device=key.device)
    else:
        columns = torch.arange(n - 1, -1, -1, device=key.device)
    ranked_key, positions = key.index_select(-1, columns).sort(dim=-1, stable=ties == "first")
    order = columns.take(positions)
    # from the mask, not the key: a real label of +inf sorts among the padding yet counts
    padding = ~mask.gather(-1, order)
    # None: every real position; otherwise those of documents above the lowest label
    counted = None if terms == "all" else (ranked_key > ranked_key[:, :1]) & ~padding
    # Weight 1 for an informative query (its highest real label exceeds its lowest, the first
    # ascending), 0 for one without an order to learn. A NaN label (which sorts last) gives NaN,
    # and so a NaN loss: this loss has no value check (see check_label_values), and a NaN
    # label must not skip its query unseen.
    top = ranked_key.masked_fill(padding, -math.inf).amax(dim=-1)
    keep = (top - ranked_key[:, 0]).clamp_(0.0, 1.0).ceil_()  # NaN stays NaN, unlike sign
    keep = keep.to(torch.promote_types(scores.dtype, torch.float32))
    weights = keep / keep.sum().clamp(min=1.0)
    total: Tensor = _PlackettLuceNLL.apply(scores, order, padding, weights, counted)  # type: ignore[no-untyped-call]
    return total


def approx_ndcg_loss(
    scores: Tensor, labels: Tensor, mask: Tensor, *, alpha: float = 10.0
) -> Tensor:
    r"""ApproxNDCG (Qin, Liu, Li, Information Retrieval 2010): NDCG with sigmoid-smoothed ranks.

    .. math:: \hat r_i = 1 + \sum_{j \ne i} \sigma(\alpha (s_j - s_i)), \qquad
              \ell_q = -\frac{1}{\mathrm{IDCG}} \sum_i \frac{2^{y_i} - 1}{\log_2(1 + \hat r_i)}

    Args:
        scores: ``[queries, list_len]`` model outputs.
        labels: ``[queries, list_len]`` graded relevance, 0 = not relevant.
        mask: ``[queries, list_len]`` True for real documents, False for padding.
        alpha: inverse temperature of the sigmoid; larger = closer to the true ranks (and to
            its zero gradients).

    Returns:
        Scalar tensor: minus the mean approximate NDCG over informative queries, in [-1, 0);
        0.0 when there are none.

    >>> approx_ndcg_loss(torch.tensor([[3.0, 2.0, 1.0]]), torch.tensor([[2.0, 1.0, 0.0]]),
    ...                  torch.ones(1, 3, dtype=torch.bool))
    tensor(-1.0000)
    """
    require_positive("alpha", alpha)
    check_inputs(scores, labels, mask)
    check_label_values(labels, mask)
    if scores.shape[-1] == 0:
        return no_documents_loss(scores)
    scores, labels = zero_padding(scores, labels, mask)
    gains = exp2_gain(labels)
    approx_ranks: Tensor = _ApproxRanks.apply(scores, mask, alpha)  # type: ignore[no-untyped-call]
    dcg = (gains / torch.log2(approx_ranks + 1.0)).sum(dim=-1)
    keep = varied_queries(labels, mask)
    return -mean_over(dcg / ideal_dcg(gains).clamp(min=1e-12), keep)


def _vec_mat(vectors: Tensor, matrices: Tensor) -> Tensor:
    """``[q, n] x [q, n, n] -> [q, n]``: ``out_j = sum_i vectors_i matrices_ij``.

    Row vector times matrix reads the matrix contiguously; it is several times faster on CPU
    than ``matrices @ vectors[..., None]``.
    """
    return (vectors.unsqueeze(-2) @ matrices).squeeze(-2)


class _ApproxRanks(torch.autograd.Function):
    """``[q, n]`` smoothed ranks ``1/2 + sum_{j real} sigmoid(alpha (s_j - s_i))``.

    The j = i term is sigmoid(0) = 1/2, hence 1/2 rather than 1. Saves one ``[q, n, n]`` tensor
    of sigmoid derivatives, written in place over the sigmoids (autograd would keep several).
    """

    @staticmethod
    def forward(ctx: Any, scores: Tensor, mask: Tensor, alpha: float) -> Tensor:
        # Padding as the other document j gets -inf: sigmoid(-inf) = 0 adds nothing to any rank
        # and has derivative 0.
        others = scores.masked_fill(~mask, -math.inf)
        slopes = (others.unsqueeze(-2) - scores.unsqueeze(-1)).mul_(alpha).sigmoid_()
        ranks = slopes.sum(dim=-1).add_(0.5)
        slopes.addcmul_(slopes, slopes, value=-1.0)  # sigmoid' = sigmoid (1 - sigmoid)
        ctx.save_for_backward(slopes)
        ctx.alpha = alpha
        return ranks

    @staticmethod
    def backward(ctx: Any, grad_ranks: Tensor) -> tuple[Tensor, None, None]:
        (slopes,) = ctx.saved_tensors
        # rank_i rises with s_j (j != i) and falls with s_i.
        grad = _vec_mat(grad_ranks, slopes) - grad_ranks * slopes.sum(dim=-1)
        return grad.mul_(ctx.alpha), None, None


def _abs_deviation_sums(scores: Tensor, mask: Tensor, n_real: Tensor) -> Tensor:
    """``B_j = sum_{k real} |s_j - s_k|`` in O(n log n) from sorted prefix sums: ``[q, n]``.

    Avoids the ``[q, n, n]`` matrix of absolute differences (and its saved copy for backward).
    Padded scores must be 0; padded entries of the result are finite and meaningless.
    """
    order = scores.masked_fill(~mask, math.inf).argsort(dim=-1)  # real ascending, padding last
    ranked = scores.gather(-1, order)
    before = ranked.cumsum(dim=-1) - ranked  # sum of the smaller real scores
    after = ranked.sum(dim=-1, keepdim=True) - before - ranked  # sum of the larger ones
    position = torch.arange(scores.shape[-1], device=scores.device, dtype=scores.dtype)
    ranked_sums = ranked * position - before + after - ranked * (n_real - 1 - position)
    return torch.zeros_like(ranked_sums).scatter(-1, order, ranked_sums)


class _SinkhornSortedDCG(torch.autograd.Function):
    """Relaxed DCG ``[q]`` of NeuralSort + Sinkhorn, with a hand-written backward pass.

    The scaled matrix is ``P = diag(u) K diag(v)``; every Sinkhorn step is a matrix-vector
    product, so forward and backward keep two ``[q, n, n]`` tensors (``K`` and its transpose)
    plus ``[q, n]`` vectors per step, instead of autograd's one matrix per step. The gradient of
    ``K`` is a sum of outer products, gathered into one batched matrix product.
    """

    @staticmethod
    def forward(
        ctx: Any,
        scores: Tensor,
        spread: Tensor,
        slope: Tensor,
        cross: Tensor,
        gains: Tensor,
        discounts: Tensor,
        tau: float,
        iters: int,
    ) -> Tensor:
        # logits[i, j] = (slope_i s_j - B_j) / tau; entries across the real/padding blocks -inf.
        kernel = (slope.unsqueeze(-1) * scores.unsqueeze(-2)).sub_(spread.unsqueeze(-2))
        kernel.div_(tau).masked_fill_(cross, -math.inf)
        # Each row's maximum is subtracted (P is invariant to row scaling) to keep exp in range.
        kernel.sub_(kernel.amax(dim=-1, keepdim=True)).exp_()
        kernel_t = kernel.transpose(-1, -2).contiguous()
        # Each block's rows and columns hold an entry 1 (NeuralSort gives each document its own
        # rank's row maximum), so every product below is positive.
        col_scales = [torch.ones_like(scores)]
        row_scales = [_vec_mat(col_scales[0], kernel_t).reciprocal_()]  # NeuralSort's softmax
        for _ in range(iters):
            col_scales.append(_vec_mat(row_scales[-1], kernel).reciprocal_())
            row_scales.append(_vec_mat(col_scales[-1], kernel_t).reciprocal_())
        weighted = col_scales[-1] * gains
        sorted_gains = _vec_mat(weighted, kernel_t)  # (K diag(v) g)_i; times u_i below
        ctx.save_for_backward(kernel, kernel_t, slope, discounts, gains, sorted_gains, weighted)
        ctx.scales, ctx.tau = (row_scales, col_scales), tau
        return (discounts * row_scales[-1] * sorted_gains).sum(dim=-1)

    @staticmethod
    def backward(ctx: Any, grad_dcg: Tensor) -> tuple[Tensor | None, ...]:
        kernel, kernel_t, slope, discounts, gains, sorted_gains, weighted = ctx.saved_tensors
        row_scales, col_scales = ctx.scales
        grad_dcg = grad_dcg.unsqueeze(-1) * discounts  # [q, n]
        grad_row = grad_dcg * sorted_gains
        grad_sorted = grad_dcg * row_scales[-1]
        lefts, rights = [grad_sorted], [weighted]  # d out / d K = sum of left ⊗ right
        grad_col = _vec_mat(grad_sorted, kernel) * gains
        for step in range(len(col_scales) - 1, 0, -1):
            # u_t = 1 / (K v_t)
            grad_prod = -grad_row * row_scales[step].square()
            lefts.append(grad_prod)
            rights.append(col_scales[step])
            grad_col = grad_col + _vec_mat(grad_prod, kernel)
            # v_t = 1 / (K^T u_{t-1})
            grad_prod = -grad_col * col_scales[step].square()
            lefts.append(row_scales[step - 1])
            rights.append(grad_prod)
            grad_row = _vec_mat(grad_prod, kernel_t)
            grad_col = torch.zeros_like(grad_col)
        lefts.append(-grad_row * row_scales[0].square())  # u_0 = 1 / (K 1)
        rights.append(col_scales[0])
        grad_logits = torch.stack(lefts, dim=-1) @ torch.stack(rights, dim=-2)
        grad_logits.mul_(kernel).div_(ctx.tau)  # through exp; 0 across blocks, where K = 0
        grad_scores = _vec_mat(slope, grad_logits)
        grad_spread = -grad_logits.sum(dim=-2)
        return grad_scores, grad_spread, None, None, None, None, None, None


def neural_ndcg_loss(
    scores: Tensor,
    labels: Tensor,
    mask: Tensor,
    *,
    tau: float = 1.0,
    k: int | None = None,
    sinkhorn_iters: int = 50,
) -> Tensor:
    r"""NeuralNDCG (Pobrotyn & Białobrzeski, 2021): NDCG with a NeuralSort permutation matrix.

    NeuralSort (Grover et al., ICLR 2019) relaxes the sorting permutation of the query's
    :math:`m` real documents to

    .. math:: \hat P_{i,:} = \mathrm{softmax}\big(((m + 1 - 2i)\, s - A_s \mathbf{1}) / \tau\big),
              \quad (A_s)_{jk} = |s_j - s_k|,

    which Sinkhorn scaling (alternate column and row normalization, ``sinkhorn_iters`` rounds,
    ending on rows) makes (nearly) doubly stochastic. Then

    .. math:: \ell_q = -\frac{1}{\mathrm{IDCG@k}} \sum_{i=1}^{k}
              \big(\mathrm{scale}(\hat P)\, g\big)_i \frac{1}{\log_2(1 + i)}, \quad g = 2^y - 1.

    The scaled matrix is never materialized: it is ``diag(u) K diag(v)`` with ``K`` the
    exponentiated logits, so each Sinkhorn step is a matrix-vector product.

    Args:
        scores: ``[queries, list_len]`` model outputs.
        labels: ``[queries, list_len]`` graded relevance, 0 = not relevant.
        mask: ``[queries, list_len]`` True for real documents, False for padding.
        tau: NeuralSort temperature; smaller = closer to the hard permutation.
        k: NDCG truncation; None = whole list.
        sinkhorn_iters: number of Sinkhorn rounds (0 = the row-stochastic NeuralSort matrix).

    Returns:
        Scalar tensor of the scores' dtype (computed in float32 for float16 and bfloat16): minus
        the mean relaxed NDCG over informative queries; 0.0 when there are none.

    >>> neural_ndcg_loss(torch.tensor([[3.0, 2.0, 1.0]]), torch.tensor([[2.0, 1.0, 0.0]]),
    ...                  torch.ones(1, 3, dtype=torch.bool))
    tensor(-0.9385)
    """
    require_positive("tau", tau)
    check_k(k)
    require_count("sinkhorn_iters", sinkhorn_iters)
    check_inputs(scores, labels, mask)
    check_label_values(labels, mask)
    if scores.shape[-1] == 0:
        return no_documents_loss(scores)
    out_dtype = scores.dtype
    if out_dtype in (torch.float16, torch.bfloat16):
        # (m + 1 - 2i) s and its exp overflow float16 (max 65504) for large scores or lists
        scores = scores.float()
    scores, labels = zero_padding(scores, labels, mask)
    n_real = mask.sum(dim=-1, keepdim=True).to(scores.dtype)  # m, [q, 1]
    position = torch.arange(scores.shape[-1], device=scores.device, dtype=scores.dtype)
    slope = n_real - 1.0 - 2.0 * position  # m + 1 - 2i for 1-based rank i
    spread = _abs_deviation_sums(scores, mask, n_real)
    # Rows i < m (real ranks) pair with real documents; padding rows with padding columns.
    # Entries across these blocks are 0, so padding never mixes with real documents.
    cross = (position < n_real).unsqueeze(-1) != mask.unsqueeze(-2)
    gains = exp2_gain(labels)
    discounts = rank_discounts(scores.shape[-1], k, scores).expand_as(scores)
    dcg: Tensor = _SinkhornSortedDCG.apply(  # type: ignore[no-untyped-call]
        scores, spread, slope, cross, gains, discounts, tau, int(sinkhorn_iters)
    )
    keep = varied_queries(labels, mask)
    return -mean_over(dcg / ideal_dcg(gains, k).clamp(min=1e-12), keep).to(out_dtype)
