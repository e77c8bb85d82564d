"""Scorers: ``forward(features [B, L, F], mask [B, L]) -> scores [B, L]``.

Config files pick a scorer by its name in :data:`MODELS`; :func:`build_model` checks the
parameters against the constructor before building it.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from ltr.errors import ConfigError
from ltr.models.encoding import PiecewiseLinearEncoding, fit_input_encodings
from ltr.models.ensemble import EnsembleScorer
from ltr.models.linear import LinearScorer
from ltr.models.list_ranks import ListPercentileRanks
from ltr.models.mlp import MLPScorer
from ltr.models.transformer import ContextAwareScorer

__all__ = [
    "MODELS",
    "ContextAwareScorer",
    "EnsembleScorer",
    "LinearScorer",
    "ListPercentileRanks",
    "MLPScorer",
    "PiecewiseLinearEncoding",
    "build_model",
    "fit_input_encodings",
    "uses_context",
]

MODELS: dict[str, type[nn.Module]] = {
    "linear": LinearScorer,
    "mlp": MLPScorer,
    "transformer": ContextAwareScorer,
    "ensemble": EnsembleScorer,
}


def uses_context(scorer: nn.Module) -> bool:
    """True when a document's score depends on the other documents of its list."""
    context = (ContextAwareScorer, ListPercentileRanks)
    return any(isinstance(module, context) for module in scorer.modules())


def build_model(name: str, n_features: int, **params: Any) -> nn.Module:
    """The scorer registered as ``name`` for ``n_features`` inputs, built with ``params``.

    Raises:
        ConfigError: unknown model name or a parameter its constructor does not take (the
            message lists the valid choices), or an invalid value.

    >>> build_model("mlp", 46, hidden_dims=[64], dropout=0.0).output
    Linear(in_features=64, out_features=1, bias=True)
    """
    if name not in MODELS:
        raise ConfigError(f"model.name: unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    cls = MODELS[name]
    signature = inspect.signature(cls)
    valid = [p for p in signature.parameters if p != "n_features"]
    unknown = next((key for key in params if key not in valid), None)
    if unknown is not None:
        raise ConfigError(
            f"model.{unknown}: {name} has no parameter {unknown!r}; "
            f"valid: {', '.join(valid) or '(none)'}"
        )
    try:
        signature.bind(n_features, **params)
    except TypeError as error:  # a required parameter left out, e.g. an ensemble's members
        raise ConfigError(f"model: {name}: {error}") from None
    if isinstance(n_features, bool) or int(n_features) != n_features or n_features < 1:
        raise ConfigError(f"n_features must be a positive integer; got {n_features!r}")
    return cls(int(n_features), **params)
