"""The ONNX graph of a trained run: normalization inside, dynamic batch and list length.

The graph: input ``features`` float32 ``[batch, list_len, n_features]`` (both leading axes
dynamic), output ``scores`` float32 ``[batch, list_len]``, and a ``mask`` input (bool
``[batch, list_len]``, True = real document) only where the scores need one: the transformer
(attention must skip padding), an MLP with list ranks (ranks among real documents) and the
per-query normalizers (statistics over real documents). Other linear and MLP scorers with a
global normalizer score each document alone, so their graph has no mask; padded rows get scores
that callers ignore. ``metadata.json`` lists the inputs.

The fitted normalization is inside the graph. A global kind (``standard``, ``minmax``,
``log1p_standard``) is ``y = (x - shift) * inv_scale`` per feature after an optional signed log
(:meth:`ltr.data.preprocessing.Normalizer.affine`): its ``inv_scale`` is folded into the columns
of the scorer's first Linear layer at export (``W' = W diag(inv_scale)``, computed in float64,
rounded once to float32) and ``shift`` stays in front of it as
:class:`~ltr.data.preprocessing.ShiftModule` (two float32 ``Sub`` that together subtract the
float64 shift; a log of a ratio for ``log1p_standard``), so the graph's features match the
float64 normalization of training to float32 precision. Folding saves the ``Mul`` over
``[list_len, n_features]``: measured side by side (MLP [512, 256, 128], 1 thread), the unfolded
graph is 10% slower at 10 documents and 4-5% at 100 and 1,000. Folding ``shift``
into the bias as well would be exact in real numbers but not in float32: features with a large
mean and a small spread (counts, PageRank) would make the first layer add large terms that
cancel.

Parity: the folded graph equals the eager model up to float32 rounding, which the parity check
bounds (1e-5 plus 1e-6 of the largest score) on every export. The difference does not
come from folding (folded and unfolded graphs differ from eager by the same 1-2e-6 on trained
512-wide MLPs): both engines are about 2e-6 from a float64 evaluation, each in its own way,
because ONNX Runtime's MLAS and PyTorch's GEMM sum the products in different orders. That is
1-3 float32 ulps of scores near 8.

Empty input: linear and MLP graphs return empty scores for an empty batch or list; a graph with
attention (transformer, or an ensemble holding one) fails in ONNX Runtime instead, because the
exported attention reshapes to shapes computed at run time, where ONNX reads a 0 as "copy this
dimension". Wrapping the graph in an ``If`` on the input size fixes that but cost 16 us per call
at 10 documents (93 -> 109 us, 8 us at 100), so the graph is left as is, ``metadata.json`` says
``onnx.accepts_empty: false``, the card says so, and :func:`ltr.lifecycle.runtime.run_session`
returns empty scores without calling the graph.

Exporter: ``torch.onnx.export(..., dynamo=True, dynamic_shapes=...)``. It exports the transformer
with dynamic batch and list length correctly (the TorchScript exporter bakes the example's list
length into the attention reshapes, so other lengths fail) and gives ONNX Runtime the same
``MatMul``/``Add``/``Relu`` chain for the MLP, which it fuses; see BENCHMARKS.md for timings.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from ltr import __version__
from ltr._extras import require_extra
from ltr.data.preprocessing import NormalizerModule, ShiftModule
from ltr.errors import ConfigError, ExportError
from ltr.lifecycle.source import Source
from ltr.models import ContextAwareScorer, LinearScorer, MLPScorer

with require_extra("export"):
    import onnx
    from onnxscript import INT64
    from onnxscript import opset18 as op

__all__ = ["MIN_OPSET", "OnnxGraph", "check_opset", "export_onnx", "matmul_chain"]

# torch's dynamo exporter writes opset 18; an older opset goes through a best-effort converter
# that keeps 18 when it cannot convert (asked for 7, one gets 18 without a word)
MIN_OPSET = 18

_GLOBAL_KINDS = ("standard", "minmax", "log1p_standard")


class _GraphModule(nn.Module):
    """What is exported: the scorer with the normalization folded in where it can be."""

    def __init__(
        self,
        scorer: nn.Module,
        normalizer: NormalizerModule | None,
        shift: ShiftModule | None,
    ) -> None:
        super().__init__()
        self.scorer, self.normalizer, self.shift = scorer, normalizer, shift

    def _scores(self, features: Tensor, mask: Tensor) -> Tensor:
        x = features
        if self.normalizer is not None:
            x = self.normalizer(x, mask)
        if self.shift is not None:
            x = self.shift(x)
        scores: Tensor = self.scorer(x, mask)
        return scores


class _FeaturesOnly(_GraphModule):
    def forward(self, features: Tensor) -> Tensor:
        mask = torch.ones_like(features[..., 0], dtype=torch.bool)  # unused by these scorers
        return self._scores(features, mask)


class _FeaturesAndMask(_GraphModule):
    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        return self._scores(features, mask)


def _first_linear(scorer: nn.Module) -> nn.Linear | None:
    """The Linear layer that sees the normalized features first, if the scorer has one."""
    # encoded columns or added list ranks: the first layer does not see the plain features
    if any(getattr(scorer, name, None) is not None for name in ("encoding", "ranks")):
        return None
    if isinstance(scorer, LinearScorer):
        return scorer.linear
    if isinstance(scorer, MLPScorer):
        first = scorer.linears[0] if len(scorer.linears) else scorer.output
        return first if isinstance(first, nn.Linear) else None
    if isinstance(scorer, ContextAwareScorer):
        first = scorer.input[0]
        return first if isinstance(first, nn.Linear) else None
    return None


def matmul_chain(scorer: nn.Module) -> list[np.ndarray] | None:
    """float32 ``[in, out]`` weights of a linear or MLP scorer, in order (the latency floor)."""
    if isinstance(scorer, LinearScorer):
        layers = [scorer.linear]
    elif isinstance(scorer, MLPScorer) and _first_linear(scorer) is not None:
        layers = [*scorer.linears, scorer.output]
    else:  # context, ensemble or encoded inputs: no plain chain of products
        return None
    return [
        np.ascontiguousarray(layer.weight.detach().numpy().T, dtype=np.float32)
        for layer in layers
        if isinstance(layer, nn.Linear)
    ]


def _graph_module(source: Source) -> tuple[nn.Module, bool]:
    """The module to export and whether the normalization was folded into the first layer."""
    scorer = copy.deepcopy(source.scorer).eval()
    normalizer = source.normalizer
    first = _first_linear(scorer)
    folded = normalizer.kind in _GLOBAL_KINDS and first is not None
    module_cls = _FeaturesAndMask if source.uses_mask else _FeaturesOnly
    if not folded:
        kept = None if normalizer.kind == "none" else normalizer.to_module()
        return module_cls(scorer, kept, None).eval(), False
    assert first is not None
    shift, inv_scale = normalizer.affine()  # float64 [F]
    with torch.no_grad():
        weight = first.weight.detach().double() * torch.from_numpy(inv_scale)[None, :]
        first.weight.copy_(weight.float())
    module = module_cls(
        scorer, None, ShiftModule(shift, signed_log=normalizer.kind == "log1p_standard")
    )
    return module.eval(), True


@dataclass(frozen=True)
class OnnxGraph:
    """An exported, checked graph in memory.

    Attributes:
        model: the serialized ``onnx.ModelProto``.
        inputs, outputs: ``{name, dtype, shape}`` with axis names for the dynamic axes.
        opset: the default-domain opset.
        normalization_folded: the normalizer's scale lives in the first layer's weights.
        accepts_empty: the graph returns ``[0, L]`` / ``[B, 0]`` scores for an empty batch or
            list. False for attention (see the module docstring): callers must not send one.
    """

    model: bytes
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    opset: int
    normalization_folded: bool
    accepts_empty: bool = True


def _stable_sort(
    values: Any, stable: bool | None = None, dim: int = -1, descending: bool = False
) -> tuple[Any, Any]:
    """``aten.sort.stable`` (list ranks sort with it) as ONNX ``TopK`` over the whole axis.

    The exporter has no translation for the stable overload; ``TopK`` is one, since the ONNX
    spec orders equal values by index, lower first, in either direction.
    """
    axis = cast(INT64, op.Constant(value_ints=[dim]))
    size = op.Gather(op.Shape(values), axis, axis=0)  # [1]: the whole axis
    sorted_values, indices = op.TopK(values, size, axis=dim, largest=descending, sorted=True)
    return sorted_values, indices


def check_opset(opset: int | None) -> None:
    """Refuse an opset the exporter cannot write (None: the exporter's default)."""
    newest = onnx.defs.onnx_opset_version()  # the onnx package knows no later opset
    if opset is not None and not MIN_OPSET <= opset <= newest:
        raise ConfigError(f"--opset: must be between {MIN_OPSET} and {newest}; got {opset}")


def export_onnx(source: Source, *, opset: int | None = None) -> OnnxGraph:
    """Export normalizer + scorer as one ONNX graph with dynamic batch and list length.

    Raises:
        ConfigError: ``opset`` is outside :data:`MIN_OPSET` .. the onnx package's newest.
        ExportError: the exporter fails, ``onnx.checker`` rejects the graph, or the graph has
            another opset than the one asked for.
    """
    check_opset(opset)
    module, folded = _graph_module(source)
    features = torch.zeros(2, 3, source.n_features)
    axes = {0: "batch", 1: "list_len"}
    args: tuple[Tensor, ...] = (features,)
    shapes: dict[str, Any] = {"features": axes}
    names = ["features"]
    if source.uses_mask:
        args += (torch.ones(2, 3, dtype=torch.bool),)
        shapes["mask"] = axes
        names.append("mask")
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                module,
                args,
                None,
                dynamo=True,
                dynamic_shapes=shapes,
                input_names=names,
                output_names=["scores"],
                opset_version=opset,
                custom_translation_table={torch.ops.aten.sort.stable: _stable_sort},
                optimize=True,
                verbose=False,
            )
        assert program is not None
        proto = program.model_proto
        proto.producer_name, proto.producer_version = "ltr", __version__
        onnx.checker.check_model(proto, full_check=True)
    except Exception as error:  # the exporter raises many types; all mean "no graph"
        raise ExportError(f"exporting {source.checkpoint} to ONNX failed: {error}") from error
    written = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if opset is not None and written != opset:
        raise ExportError(
            f"--opset: asked for opset {opset}, the exporter wrote {written}; no bundle written "
            f"(leave --opset out for the exporter's default)"
        )
    return OnnxGraph(
        model=proto.SerializeToString(),
        inputs=[_value_info(value) for value in proto.graph.input],
        outputs=[_value_info(value) for value in proto.graph.output],
        opset=written,
        normalization_folded=folded,
        accepts_empty=not any(isinstance(m, ContextAwareScorer) for m in source.scorer.modules()),
    )


def _value_info(value: onnx.ValueInfoProto) -> dict[str, Any]:
    tensor = value.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
    shape = [dim.dim_param or dim.dim_value for dim in tensor.shape.dim]
    return {"name": value.name, "dtype": str(np.dtype(dtype)), "shape": shape}


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence torch 2.13's exporter noise that is about torch itself, not about the model."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)  # "torchvision is not installed. Skipping ..."
    try:
        with warnings.catch_warnings():
            # torch's own pytree code calls an API it deprecated (torch 2.13)
            warnings.filterwarnings(
                "ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning
            )
            # features and mask share named axes on purpose; the exporter notes it once each
            warnings.filterwarnings(
                "ignore", message=r"# The axis name: .* will not be used", category=UserWarning
            )
            yield
    finally:
        registration.setLevel(level)
