"""Context-aware scorer: self-attention over the documents of one list.

Pobrotyn, Bartczak, Synowiec, Białobrzeski, Bojar, "Context-Aware Learning to Rank with
Self-Attention" (SIGIR eCom 2020): documents are projected to ``d_model``, passed through
Transformer encoder blocks attending over the other documents of the same list (no positional
encoding: a list is a set), and scored by a per-document output layer.
"""

from __future__ import annotations

from torch import Tensor, nn

from ltr.errors import ConfigError
from ltr.models.inputs import document_inputs, input_modules, zero_padding
from ltr.models.mlp import make_activation


class ContextAwareScorer(nn.Module):
    """Transformer encoder over each list; one score per document.

    Padding is a key padding mask and padded features are zeroed on entry, so real documents
    never attend to padded ones and their scores do not depend on padded features, NaN and inf
    included. Built without nested tensors and with plain tensor ops in ``forward``, so it
    traces to ONNX with dynamic batch and list length.

    Args:
        n_features: length of each document's feature vector.
        d_model: width of the attention blocks.
        n_heads: attention heads; must divide ``d_model``.
        n_layers: number of encoder blocks.
        dim_feedforward: hidden width of each block's feed-forward part.
        dropout: dropout in the encoder blocks.
        activation: ``"relu"`` or ``"gelu"`` inside the blocks; also after the input projection.
        piecewise_bins: None, or encode each input feature piecewise-linearly over this many
            quantile bins of the training data before the input projection
            (:class:`~ltr.models.encoding.PiecewiseLinearEncoding`; the trainer fits it).
        list_ranks: also feed each feature's percentile rank among the real documents of the
            list (:class:`~ltr.models.list_ranks.ListPercentileRanks`), ``F`` more inputs.
            Attention could learn such comparisons; on MQ2008 vali the ranks still lifted
            ListMLE's 5-seed NDCG@10 by 0.004-0.007 (BENCHMARKS.md, "Session 7").

    Raises:
        ConfigError: ``d_model`` not divisible by ``n_heads``, a size below 1, unknown
            activation, fewer than 2 bins, a ``list_ranks`` that is not true or false.
    """

    def __init__(
        self,
        n_features: int,
        d_model: int = 128,
        n_heads: int = 4,
        n_layers: int = 2,
        dim_feedforward: int = 256,
        dropout: float = 0.1,
        activation: str = "gelu",
        piecewise_bins: int | None = None,
        list_ranks: bool = False,
    ) -> None:
        super().__init__()
        for name, value in [
            ("d_model", d_model),
            ("n_heads", n_heads),
            ("n_layers", n_layers),
            ("dim_feedforward", dim_feedforward),
        ]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"model.{name}: must be an integer >= 1; got {value!r}")
        if d_model % n_heads:
            raise ConfigError(
                f"model.n_heads: must divide d_model; got d_model={d_model}, n_heads={n_heads}"
            )
        if activation not in ("relu", "gelu"):
            raise ConfigError(f"model.activation: must be 'relu' or 'gelu'; got {activation!r}")
        self.encoding, self.ranks, width = input_modules(n_features, piecewise_bins, list_ranks)
        self.input = nn.Sequential(nn.Linear(width, d_model), make_activation(activation))
        layer = nn.TransformerEncoderLayer(
            d_model,
            n_heads,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            activation=activation,
            batch_first=True,
            norm_first=True,  # pre-norm blocks train stably without learning-rate warm-up
        )
        # Nested tensors change the output layout and do not export to ONNX.
        self.encoder = nn.TransformerEncoder(
            layer, n_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False
        )
        self.output = nn.Linear(d_model, 1)

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        """Scores ``[B, L]`` from ``features [B, L, F]`` and ``mask [B, L]`` (True = real)."""
        # A list with no real document would make every attention row -inf (NaN); let such a
        # list attend to all its (padded) documents instead, which keeps its scores finite.
        ignore = ~mask & mask.any(dim=-1, keepdim=True)
        features = zero_padding(features, mask)  # attention weighs padding by 0; 0 x NaN = NaN
        x = document_inputs(features, mask, self.encoding, self.ranks)
        x = self.encoder(self.input(x), src_key_padding_mask=ignore)
        scores: Tensor = self.output(x)
        return scores.squeeze(-1)
