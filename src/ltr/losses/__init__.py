"""Ranking losses with one signature: ``loss(scores, labels, mask, **params) -> scalar``.

``scores`` and ``labels`` are float ``[queries, list_len]``, ``mask`` is bool ``[queries,
list_len]`` (True = real document). Every loss is vectorized over the batch, ignores padding
completely (value and gradient), and is lower-is-better. Labels of real documents must be
finite and >= 0: the pairwise and NDCG-based losses raise :class:`~ltr.errors.ShapeError`
otherwise, with the metrics' message; MSE, ListNet and ListMLE, the cheapest, skip that pass:
a NaN label makes their loss NaN, and a +inf one makes MSE inf and ListNet NaN (ListMLE only
sorts by label, so it ranks that document first). :class:`~ltr.data.dataset.QueryDataset` refuses
such labels once per data set, before training. Config files pick a loss by its
name in :data:`LOSSES`; :func:`build_loss` binds its keyword parameters and checks their names
and values early (:func:`check_loss_params`, which the config reader calls too).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from typing import Any, Protocol

import torch
from torch import Tensor

from ltr.errors import ConfigError
from ltr.losses.listwise import approx_ndcg_loss, listmle_loss, listnet_loss, neural_ndcg_loss
from ltr.losses.pairwise import lambdarank_loss, ndcgloss2pp_loss, ranknet_loss
from ltr.losses.pointwise import mse_loss

__all__ = [
    "LOSSES",
    "LossFn",
    "approx_ndcg_loss",
    "build_loss",
    "check_loss_params",
    "lambdarank_loss",
    "listmle_loss",
    "listnet_loss",
    "mse_loss",
    "ndcgloss2pp_loss",
    "neural_ndcg_loss",
    "ranknet_loss",
]


class LossFn(Protocol):
    """A loss with its parameters bound: ``(scores, labels, mask) -> scalar tensor``."""

    def __call__(self, scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor: ...


LOSSES: dict[str, LossFn] = {
    "mse": mse_loss,
    "ranknet": ranknet_loss,
    "lambdarank": lambdarank_loss,
    "ndcgloss2pp": ndcgloss2pp_loss,
    "listnet": listnet_loss,
    "listmle": listmle_loss,
    "approx_ndcg": approx_ndcg_loss,
    "neural_ndcg": neural_ndcg_loss,
}


def build_loss(name: str, params: Mapping[str, Any] | None = None) -> LossFn:
    """The loss registered as ``name`` with keyword parameters ``params`` bound.

    Args:
        name: a key of :data:`LOSSES`, e.g. ``"lambdarank"``.
        params: keyword parameters of that loss, e.g. ``{"sigma": 1.0, "k": 10}``.

    Returns:
        A callable ``(scores, labels, mask) -> scalar tensor``.

    Raises:
        ConfigError: unknown loss name, a parameter the loss does not take (the message
            lists the valid choices), or a value it refuses (:func:`check_loss_params`).

    >>> loss_fn = build_loss("ranknet", {"sigma": 2.0})
    >>> try:
    ...     build_loss("ranknet", {"sigm": 2.0})
    ... except ConfigError as error:
    ...     print(error)
    loss.params.sigm: ranknet has no parameter 'sigm'; valid: pair_weight, reduction, sigma
    """
    params = dict(params or {})
    if name not in LOSSES:
        raise ConfigError(f"loss.name: unknown loss {name!r}; choose one of: {', '.join(LOSSES)}")
    fn = LOSSES[name]
    signature = inspect.signature(fn)
    keyword_only = sorted(
        p.name for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY
    )
    try:
        signature.bind_partial(**params)
        bad = next((key for key in params if key not in keyword_only), None)  # e.g. "scores"
    except TypeError:
        bad = next(key for key in params if key not in signature.parameters)
    if bad is not None:
        valid = ", ".join(keyword_only) or "(none)"
        raise ConfigError(f"loss.params.{bad}: {name} has no parameter {bad!r}; valid: {valid}")
    check_loss_params(name, params)
    return functools.partial(fn, **params) if params else fn


def check_loss_params(name: str, params: Mapping[str, Any]) -> None:
    """Call the loss ``name`` on a two-document query with ``params``, so that a bad value
    (``sigma: 0``, ``sigma: "1"``) fails when the loss is built or the config read, naming the
    parameter, rather than at the first batch. Names must already be valid (:func:`build_loss`).

    Raises:
        ConfigError: ``loss.params.<key>: <problem>``, for the first parameter whose value the
            loss refuses (each is tried alone, so the message names one).

    >>> check_loss_params("ranknet", {"sigma": 0})
    Traceback (most recent call last):
    ...
    ltr.errors.ConfigError: loss.params.sigma: must be greater than 0; got 0
    """
    fn = LOSSES[name]
    batch = (torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]), torch.ones(1, 2, dtype=torch.bool))
    with torch.random.fork_rng(devices=[]):  # ListMLE's random ties must not move the seed
        for key, value in params.items():
            try:
                fn(*batch, **{key: value})
            except TypeError as error:  # e.g. a string where a number belongs
                problem = f"has a value of the wrong type ({value!r}): {error}"
                raise ConfigError(f"loss.params.{key}: {problem}") from None
            except ValueError as error:  # the loss's own check: "sigma must be greater than 0"
                problem = str(error).removeprefix(f"{key} ")
                raise ConfigError(f"loss.params.{key}: {problem}") from None
        fn(*batch, **params)
