"""Export a trained run to an ONNX model bundle (DESIGN.md, "Model bundle").

The graph: input ``features`` float32 ``[batch, list_len, n_features]`` (both leading axes
dynamic), output ``scores`` float32 ``[batch, list_len]``, and a ``mask`` input (bool
``[batch, list_len]``, True = real document) only where the scores need one: the transformer
(attention must skip padding) and the per-query normalizers (statistics over real documents).
Linear and MLP scorers with a global normalizer score each document alone, so their graph has no
mask; padded rows get scores that callers ignore. ``metadata.json`` lists the inputs.

The fitted normalization is inside the graph. A global kind (``standard``, ``minmax``,
``log1p_standard``) is ``y = (x - shift) * inv_scale`` per feature after an optional signed log:
its ``inv_scale`` is folded into the columns of the scorer's first Linear layer at export
(``W' = W diag(inv_scale)``, computed in float64, rounded once to float32) and ``shift`` stays a
``Sub`` in front of it. Folding ``shift`` into the bias as well would be exact in real numbers but
not in float32: features with a large mean and a small spread (counts, PageRank) would make the
first layer add large terms that cancel. The folded graph is therefore the eager model up to
float32 rounding of the products, which the parity check bounds (1e-5) on every export.

Exporter: ``torch.onnx.export(..., dynamo=True, dynamic_shapes=...)``. It exports the transformer
with dynamic batch and list length correctly (the TorchScript exporter bakes the example's list
length into the attention reshapes, so other lengths fail) and gives ONNX Runtime the same
``MatMul``/``Add``/``Relu`` chain for the MLP, which it fuses; see BENCHMARKS.md for timings.

:func:`export_bundle` does the whole job in memory: export, ``onnx.checker``, parity
(:mod:`ltr.lifecycle.validate`), the optional int8 variant and its quality gate, latency, the
model card; only then :func:`ltr.lifecycle.bundle.write_bundle` writes the folder atomically. Any
failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import platform
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import Tensor, nn

from ltr import __version__
from ltr.data.letor import LetorData, load_letor
from ltr.data.preprocessing import Normalizer, NormalizerModule
from ltr.errors import BundleError, ConfigError, DataNotFoundError, ExportError, LtrError
from ltr.evaluation import evaluate_scores
from ltr.lifecycle.bundle import (
    MODEL_CARD_FILE,
    MODEL_FILE,
    PREPROCESSOR_FILE,
    parse_version,
    write_bundle,
)
from ltr.lifecycle.model_card import render_model_card
from ltr.lifecycle.validate import (
    LatencyRow,
    ParityReport,
    make_session,
    measure_latency,
    ranking_violations,
    score_with_onnx,
    validate_parity,
)
from ltr.models import ContextAwareScorer, LinearScorer, MLPScorer, build_model
from ltr.training.checkpoint import checkpoint_file, load_checkpoint

__all__ = [
    "INT8_MAX_NDCG_MOVE",
    "ExportReport",
    "OnnxGraph",
    "QuantizationReport",
    "RankingModule",
    "Source",
    "export_bundle",
    "export_onnx",
    "load_source",
    "matmul_chain",
    "quantize_int8",
]

Quantize = Literal["int8"]
# The int8 variant ships only if its test NDCG@10 is within this of the float32 graph's.
INT8_MAX_NDCG_MOVE = 0.002
_GATE_METRIC = "ndcg@10"
_GLOBAL_KINDS = ("standard", "minmax", "log1p_standard")
_EXPORT_LATENCY_SIZES = (10, 100, 1000)
_TEST_FILES = ("test.txt", "test.txt.gz")


class RankingModule(nn.Module):
    """PyTorch eager reference: the normalizer module, then the scorer (both float32, eval).

    ``forward(features [B, L, F], mask [B, L]) -> scores [B, L]`` on raw features.
    """

    def __init__(self, normalizer: nn.Module, scorer: nn.Module) -> None:
        super().__init__()
        self.normalizer, self.scorer = normalizer, scorer

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        scores: Tensor = self.scorer(self.normalizer(features, mask), mask)
        return scores


class _GraphModule(nn.Module):
    """What is exported: the scorer with the normalization folded in where it can be."""

    def __init__(
        self,
        scorer: nn.Module,
        normalizer: NormalizerModule | None,
        shift: Tensor | None,
        signed_log: bool,
    ) -> None:
        super().__init__()
        self.scorer, self.normalizer, self.signed_log = scorer, normalizer, signed_log
        self.shift: Tensor | None
        self.register_buffer("shift", shift)

    def _scores(self, features: Tensor, mask: Tensor) -> Tensor:
        x = features
        if self.normalizer is not None:
            x = self.normalizer(x, mask)
        if self.signed_log:
            x = torch.sign(x) * torch.log1p(torch.abs(x))
        if self.shift is not None:
            x = x - self.shift
        scores: Tensor = self.scorer(x, mask)
        return scores


class _FeaturesOnly(_GraphModule):
    def forward(self, features: Tensor) -> Tensor:
        mask = torch.ones_like(features[..., 0], dtype=torch.bool)  # unused by these scorers
        return self._scores(features, mask)


class _FeaturesAndMask(_GraphModule):
    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        return self._scores(features, mask)


@dataclass
class Source:
    """A trained model as export needs it (:func:`load_source`).

    Attributes:
        checkpoint: the checkpoint file.
        run_dir: its run directory, when it sits in ``<run>/checkpoints/``.
        payload: the checkpoint dict.
        scorer: the scorer, eval mode.
        normalizer: the training set's normalizer.
        n_features: the scorer's feature count.
    """

    checkpoint: Path
    run_dir: Path | None
    payload: dict[str, Any] = field(repr=False)
    scorer: nn.Module = field(repr=False)
    normalizer: Normalizer
    n_features: int

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.payload["config"]
        return config

    @property
    def uses_mask(self) -> bool:
        """True when scores depend on the other documents of a list (graph has ``mask``)."""
        return isinstance(self.scorer, ContextAwareScorer) or self.normalizer.per_query

    def reference(self) -> RankingModule:
        """PyTorch eager normalizer + scorer, the model parity compares with."""
        return RankingModule(self.normalizer.to_module(), self.scorer).eval()

    def run_metrics(self) -> dict[str, Any] | None:
        """The run's ``metrics.json``, when there is one."""
        path = None if self.run_dir is None else self.run_dir / "metrics.json"
        if path is None or not path.is_file():
            return None
        metrics: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return metrics

    def test_file(self) -> Path | None:
        """The run's test file from its config (``data.test``, else ``data.root``'s test.txt)."""
        data = self.config.get("data", {})
        if data.get("test"):
            return Path(data["test"])
        if data.get("root"):
            root = Path(data["root"])
            return next((root / name for name in _TEST_FILES if (root / name).is_file()), None)
        return None


def load_source(model: str | Path) -> Source:
    """Rebuild the scorer and normalizer of a run directory (``checkpoints/best.pt``) or a .pt.

    Raises:
        DataNotFoundError: no such run directory or file.
        LtrError: a corrupt checkpoint or one without its config and normalizer.
    """
    path = checkpoint_file(model)
    payload = load_checkpoint(path)
    config, normalizer = payload["config"], payload["normalizer"]
    if not isinstance(config, dict) or "model" not in config or normalizer is None:
        raise LtrError(f"{path}: the checkpoint lacks its config or normalizer")
    params: dict[str, Any] = dict(config["model"])
    name = params.pop("name")
    n_features = int(payload["n_features"])
    scorer = build_model(name, n_features, **params)
    try:
        scorer.load_state_dict(payload["model"])
    except RuntimeError as error:
        raise LtrError(f"{path}: the weights do not fit a {name} scorer: {error}") from None
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else None
    return Source(
        checkpoint=path.resolve(),
        run_dir=None if run_dir is None else run_dir.resolve(),
        payload=payload,
        scorer=scorer.eval(),
        normalizer=Normalizer.from_dict(normalizer, source=str(path)),
        n_features=n_features,
    )


def _first_linear(scorer: nn.Module) -> nn.Linear | None:
    """The Linear layer that sees the normalized features first, if the scorer has one."""
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
    elif isinstance(scorer, MLPScorer):
        layers = [*scorer.linears, scorer.output]
    else:
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
        return module_cls(scorer, kept, None, signed_log=False).eval(), False
    assert first is not None
    shift, inv_scale = normalizer._affine()  # float64 [F]
    with torch.no_grad():
        weight = first.weight.detach().double() * torch.from_numpy(inv_scale)[None, :]
        first.weight.copy_(weight.float())
    module = module_cls(
        scorer,
        None,
        torch.tensor(shift, dtype=torch.float32),
        signed_log=normalizer.kind == "log1p_standard",
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
    """

    model: bytes
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    opset: int
    normalization_folded: bool


def export_onnx(source: Source, *, opset: int | None = None) -> OnnxGraph:
    """Export normalizer + scorer as one ONNX graph with dynamic batch and list length.

    Raises:
        ExportError: the exporter fails or ``onnx.checker`` rejects the graph.
    """
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
                optimize=True,
                verbose=False,
            )
        assert program is not None
        proto = program.model_proto
        proto.producer_name, proto.producer_version = "ltr", __version__
        onnx.checker.check_model(proto, full_check=True)
    except Exception as error:  # the exporter raises many types; all mean "no graph"
        raise ExportError(f"exporting {source.checkpoint} to ONNX failed: {error}") from error
    return OnnxGraph(
        model=proto.SerializeToString(),
        inputs=[_value_info(value) for value in proto.graph.input],
        outputs=[_value_info(value) for value in proto.graph.output],
        opset=next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
        normalization_folded=folded,
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


def quantize_int8(model: bytes) -> bytes:
    """ONNX Runtime dynamic quantization: int8 weights, activations quantized per call."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="ltr-quantize-") as tmp:
        source, target = Path(tmp) / "float32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(model)
        quantization_logger = logging.getLogger()  # the quantizer logs advice at INFO/WARNING
        level = quantization_logger.level
        quantization_logger.setLevel(logging.ERROR)
        try:
            quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        finally:
            quantization_logger.setLevel(level)
        return target.read_bytes()


@dataclass(frozen=True)
class QuantizationReport:
    """The int8 gate: test metric of both graphs and how their rankings agree."""

    metric: str
    float32: float
    int8: float
    max_move: float
    queries_same_order: int
    queries: int
    max_abs_diff: float

    @property
    def move(self) -> float:
        return self.int8 - self.float32

    @property
    def passed(self) -> bool:
        return abs(self.move) <= self.max_move

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "int8 dynamic (onnxruntime.quantization.quantize_dynamic, QInt8 weights)",
            "metric": self.metric,
            "float32": self.float32,
            "int8": self.int8,
            "move": self.move,
            "max_move": self.max_move,
            "passed": self.passed,
            "queries_same_order": self.queries_same_order,
            "queries": self.queries,
            "max_abs_diff_vs_float32": self.max_abs_diff,
        }


def _quantization_gate(
    float32: ort.InferenceSession,
    int8: ort.InferenceSession,
    data: LetorData,
    conventions: Mapping[str, Any],
) -> QuantizationReport:
    scores32, scores8 = score_with_onnx(float32, data), score_with_onnx(int8, data)
    values = [
        evaluate_scores(data, s, [_GATE_METRIC], **conventions).means[_GATE_METRIC]
        for s in (scores32, scores8)
    ]
    same = 0
    for q in range(data.n_queries):
        rows = slice(data.query_offsets[q], data.query_offsets[q + 1])
        mask = np.ones((1, rows.stop - rows.start), dtype=bool)
        violations = ranking_violations(scores32[None, rows], scores8[None, rows], mask, 1e-6)
        same += int(not violations.any())
    return QuantizationReport(
        metric=_GATE_METRIC,
        float32=values[0],
        int8=values[1],
        max_move=INT8_MAX_NDCG_MOVE,
        queries_same_order=same,
        queries=data.n_queries,
        max_abs_diff=float(np.abs(scores32 - scores8).max(initial=0.0)),
    )


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_bundle` wrote and measured.

    Attributes:
        output: the bundle folder.
        version: its version.
        inputs: the graph inputs (``{name, dtype, shape}``).
        opset: the ONNX opset.
        precision: ``"float32"`` or ``"int8"``.
        parity: the float32 graph against PyTorch eager.
        latency: 1-thread latency of the shipped graph at 10, 100 and 1,000 documents.
        quantization: the int8 gate, when ``quantize="int8"``.
        metadata: the ``metadata.json`` content (without ``files`` and ``created_at``).
    """

    output: Path
    version: str
    inputs: list[dict[str, Any]]
    opset: int
    precision: str
    parity: ParityReport
    latency: list[LatencyRow]
    quantization: QuantizationReport | None
    metadata: dict[str, Any] = field(repr=False)


def export_bundle(
    model: str | Path,
    output: str | Path,
    *,
    version: str = "1.0.0",
    opset: int | None = None,
    quantize: Quantize | None = None,
    test_data: Path | None = None,
) -> ExportReport:
    """Export a trained run to a model bundle folder, checked, or write nothing.

    Args:
        model: a run directory (its ``checkpoints/best.pt``) or a checkpoint file.
        output: the bundle folder to create; must not exist.
        version: the bundle's ``X.Y.Z``.
        opset: ONNX opset; None takes the exporter's default.
        quantize: ``"int8"`` ships ONNX Runtime's dynamic int8 quantization of the graph,
            only if its test NDCG@10 is within :data:`INT8_MAX_NDCG_MOVE` of float32's.
        test_data: the LETOR file parity and the int8 gate use; default: the run's test file.

    Returns:
        :class:`ExportReport`.

    Raises:
        ConfigError: a bad ``version`` or ``quantize``.
        BundleError: ``output`` exists.
        DataNotFoundError: no model, or no test file (give ``test_data``).
        ExportError: the export, parity or the int8 gate failed; nothing was written.
    """
    output = Path(output)
    parse_version(version)
    if quantize not in (None, "int8"):
        raise ConfigError(f"--quantize: must be int8 (or left out); got {quantize!r}")
    if output.exists():
        raise BundleError(f"bundle {output} already exists; a bundle is never overwritten")
    source = load_source(model)
    data_path = _test_data_path(source, test_data)
    data = load_letor(data_path, n_features=source.n_features)
    conventions = _conventions(source)

    graph = export_onnx(source, opset=opset)
    reference = source.reference()
    session = make_session(graph.model)
    parity = validate_parity(
        session, reference, n_features=source.n_features, data=data, conventions=conventions
    )
    if not parity.passed:
        raise ExportError(
            f"ONNX parity check failed for {source.checkpoint}; no bundle written: "
            + "; ".join(parity.problems)
        )
    shipped, quantization = graph.model, None
    if quantize == "int8":
        shipped = quantize_int8(graph.model)
        quantization = _quantization_gate(session, make_session(shipped), data, conventions)
        if not quantization.passed:
            raise ExportError(
                f"int8 variant refused: its test {_GATE_METRIC} moves by "
                f"{quantization.move:+.4f} versus float32 ({quantization.float32:.4f} -> "
                f"{quantization.int8:.4f}); at most {INT8_MAX_NDCG_MOVE} is allowed. Export "
                "without --quantize to ship the float32 graph; no bundle written"
            )
    latency = measure_latency(
        shipped,
        reference,
        n_features=source.n_features,
        list_sizes=_EXPORT_LATENCY_SIZES,
        threads=(1,),
        matmul_weights=matmul_chain(source.scorer),
        seconds=0.3,
        rounds=3,
    )
    precision = "float32" if quantize is None else "int8"
    metadata = _metadata(
        source, graph, version, data_path, parity, latency, quantization, precision
    )
    files = {
        MODEL_FILE: shipped,
        PREPROCESSOR_FILE: _json_bytes(source.normalizer.to_dict()),
        MODEL_CARD_FILE: render_model_card(metadata).encode("utf-8"),
    }
    write_bundle(output, files, metadata)
    return ExportReport(
        output=output,
        version=version,
        inputs=graph.inputs,
        opset=graph.opset,
        precision=precision,
        parity=parity,
        latency=latency,
        quantization=quantization,
        metadata=metadata,
    )


def _test_data_path(source: Source, test_data: Path | None) -> Path:
    path = test_data if test_data is not None else source.test_file()
    if path is None:
        raise DataNotFoundError(
            f"{source.checkpoint}: its config names no test file to check parity on; "
            "pass --test-data FILE"
        )
    if not Path(path).is_file():
        raise DataNotFoundError(
            f"test file {path} does not exist; pass --test-data FILE to check parity on"
        )
    return Path(path)


def _conventions(source: Source) -> dict[str, Any]:
    evaluation = source.config.get("evaluation", {})
    return {key: evaluation[key] for key in ("gain", "no_relevant") if key in evaluation}


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def _finite(obj: Any) -> Any:
    """``obj`` with NaN/inf floats as None (metadata.json is strict JSON)."""
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(value) for value in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def _metadata(
    source: Source,
    graph: OnnxGraph,
    version: str,
    data_path: Path,
    parity: ParityReport,
    latency: Sequence[LatencyRow],
    quantization: QuantizationReport | None,
    precision: str,
) -> dict[str, Any]:
    config = source.config
    model = dict(config["model"])
    payload = source.payload
    metadata = {
        "format": "ltr.bundle",
        "version": version,
        "n_features": source.n_features,
        "feature_names": [f"feature_{i}" for i in range(1, source.n_features + 1)],
        "source_run": None if source.run_dir is None else str(source.run_dir),
        "experiment": config.get("experiment", {}).get("name"),
        "source": {
            "checkpoint": str(source.checkpoint),
            "run_dir": None if source.run_dir is None else str(source.run_dir),
            "epoch": payload.get("epoch"),
            "best_epoch": (payload.get("state") or {}).get("best_epoch"),
            "trained_with": {
                "ltr": payload.get("ltr_version"),
                "torch": payload.get("torch_version"),
            },
        },
        "model": {"name": model.pop("name"), "params": model},
        "training": {
            "loss": config.get("loss"),
            "training": config.get("training"),
            "data": config.get("data"),
        },
        "metrics": source.run_metrics(),
        "conventions": _conventions(source),
        "inputs": graph.inputs,
        "outputs": graph.outputs,
        "normalization": {
            "kind": source.normalizer.kind,
            "in_graph": True,
            "folded_into_first_layer": graph.normalization_folded,
            "file": PREPROCESSOR_FILE,
        },
        "onnx": {
            "file": MODEL_FILE,
            "opset": graph.opset,
            "precision": precision,
            "exporter": "torch.onnx.export(dynamo=True)",
        },
        "parity": {"data": str(data_path.resolve()), **parity.to_dict()},
        "latency": {
            "note": "one query, 1 thread, microseconds; PyTorch eager vs ONNX Runtime",
            "rows": [row.to_dict() for row in latency],
        },
        "quantization": None if quantization is None else quantization.to_dict(),
        "versions": {
            "ltr": __version__,
            "python": platform.python_version(),
            "torch": str(torch.__version__),
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
        },
        "platform": f"{platform.system()} {platform.machine()}; {sys.platform}",
    }
    finite: dict[str, Any] = _finite(metadata)
    return finite
