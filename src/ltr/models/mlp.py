"""A multilayer perceptron scorer applied to each document independently."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ltr.errors import ConfigError
from ltr.models.inputs import document_inputs, input_modules, zero_padding

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
}
NORMS = ("batch", "layer")


def make_activation(name: str) -> nn.Module:
    """The activation module called ``name``; :class:`ConfigError` lists the valid names."""
    if name not in ACTIVATIONS:
        raise ConfigError(
            f"model.activation: unknown activation {name!r}; choose one of: "
            f"{', '.join(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]()


def _is_widths(value: object) -> bool:
    """A list of integer layer widths >= 1 (8.5 is refused, not truncated)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return False
    return all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in value)


class MaskedBatchNorm(nn.Module):
    """Batch normalization over the real documents of a ``[B, L, C]`` batch only.

    Statistics in training come from entries where ``mask`` is True, so the amount of padding
    (which varies with the longest list in a batch) never shifts them; running statistics are
    used in evaluation, which keeps an exported graph free of data-dependent statistics.
    """

    running_mean: Tensor
    running_var: Tensor

    def __init__(self, channels: int, *, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        if self.training:
            weights = mask.unsqueeze(-1).to(x.dtype)  # [B, L, 1]
            count = weights.sum().clamp(min=1.0)
            mean = (x * weights).sum(dim=(0, 1)) / count
            var = ((x - mean).square() * weights).sum(dim=(0, 1)) / count
            with torch.no_grad():
                unbiased = var * count / (count - 1.0).clamp(min=1.0)
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(unbiased, self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class MLPScorer(nn.Module):
    """Feed-forward network ``F -> hidden_dims... -> 1`` shared by all documents.

    Each hidden block is ``Linear -> norm -> activation -> dropout``. A document's score
    depends on its own features only (batch norm uses statistics of real documents in training
    and fixed running statistics in evaluation), unless ``list_ranks`` adds where each of its
    feature values ranks within its list.

    Args:
        n_features: length of each document's feature vector.
        hidden_dims: widths of the hidden layers; empty = a linear model.
        dropout: dropout probability after each hidden activation.
        activation: one of :data:`ACTIVATIONS`.
        norm: None, ``"batch"`` (masked batch norm) or ``"layer"`` (per-document layer norm).
        piecewise_bins: None, or encode each input feature piecewise-linearly over this many
            quantile bins of the training data before the first layer
            (:class:`~ltr.models.encoding.PiecewiseLinearEncoding`; the trainer fits it).
        list_ranks: also feed each feature's percentile rank among the real documents of the
            list (:class:`~ltr.models.list_ranks.ListPercentileRanks`), ``F`` more inputs.

    Raises:
        ConfigError: unknown activation or norm, negative width, dropout outside [0, 1),
            fewer than 2 bins, a ``list_ranks`` that is not true or false.
    """

    def __init__(
        self,
        n_features: int,
        hidden_dims: Sequence[int] = (256, 128),
        dropout: float = 0.1,
        activation: str = "relu",
        norm: str | None = None,
        piecewise_bins: int | None = None,
        list_ranks: bool = False,
    ) -> None:
        super().__init__()
        if norm is not None and norm not in NORMS:
            raise ConfigError(
                f"model.norm: unknown norm {norm!r}; choose one of: None, batch, layer"
            )
        number = isinstance(dropout, (int, float)) and not isinstance(dropout, bool)
        if not (number and 0 <= dropout < 1):
            raise ConfigError(f"model.dropout: must be in [0, 1); got {dropout!r}")
        if not _is_widths(hidden_dims):
            raise ConfigError(
                f"model.hidden_dims: must be a list of integer widths >= 1; got {hidden_dims!r}"
            )
        make_activation(activation)  # fail early, before building layers
        self.encoding, self.ranks, width = input_modules(n_features, piecewise_bins, list_ranks)
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.blocks = nn.ModuleList()  # activation + dropout
        for hidden in (int(h) for h in hidden_dims):
            self.linears.append(nn.Linear(width, hidden))
            if norm == "batch":
                self.norms.append(MaskedBatchNorm(hidden))
            elif norm == "layer":
                self.norms.append(nn.LayerNorm(hidden))
            else:
                self.norms.append(nn.Identity())
            self.blocks.append(nn.Sequential(make_activation(activation), nn.Dropout(dropout)))
            width = hidden
        self.output = nn.Linear(width, 1)

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        """Scores ``[B, L]`` from ``features [B, L, F]`` and ``mask [B, L]``."""
        if self.training:  # keep padded values out of batch statistics and gradients
            features = zero_padding(features, mask)
        x = document_inputs(features, mask, self.encoding, self.ranks)
        for linear, norm, block in zip(self.linears, self.norms, self.blocks, strict=True):
            x = linear(x)
            x = norm(x, mask) if isinstance(norm, MaskedBatchNorm) else norm(x)
            x = block(x)
        scores: Tensor = self.output(x)
        return scores.squeeze(-1)
