"""Export a trained run to an ONNX model bundle (DESIGN.md, "Model bundle").

:func:`export_bundle` does the whole job in memory: the graph (:mod:`ltr.lifecycle.onnx_graph`),
``onnx.checker``, parity with PyTorch eager (:mod:`ltr.lifecycle.parity`; on the test file also
with the float64-normalized scores ``ltr predict`` and ``metrics.json`` come from), the optional
int8 variant and its quality gate (:mod:`ltr.lifecycle.quantize`), latency
(:mod:`ltr.lifecycle.latency`), the model card (:mod:`ltr.lifecycle.model_card`); only then
:func:`ltr.lifecycle.bundle.write_bundle` writes the folder atomically. Any failure leaves
nothing behind.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ltr import __version__
from ltr._extras import require_extra
from ltr._fs import check_writable
from ltr.data.letor import load_letor, warn_if_narrower
from ltr.errors import BundleError, ConfigError, DataNotFoundError, ExportError
from ltr.lifecycle.bundle import (
    MODEL_CARD_FILE,
    MODEL_FILE,
    PREPROCESSOR_FILE,
    parse_version,
    write_bundle,
)
from ltr.lifecycle.latency import (
    LatencyRow,
    available_cores,
    load_average,
    measure_latency,
    timing_noise,
)
from ltr.lifecycle.model_card import render_model_card
from ltr.lifecycle.onnx_graph import OnnxGraph, check_opset, export_onnx, matmul_chain
from ltr.lifecycle.parity import ParityReport, validate_parity
from ltr.lifecycle.quantize import QuantizationReport, quantization_gate, quantize_int8
from ltr.lifecycle.runtime import make_session
from ltr.lifecycle.source import Source, load_source
from ltr.training.trainer import score_data

with require_extra("export"):
    import onnx
    import onnxruntime as ort

__all__ = ["ExportReport", "Quantize", "export_bundle"]

Quantize = Literal["int8"]
_EXPORT_LATENCY_SIZES = (10, 100, 1000)


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
        latency_noise: why those figures may be inflated (other work on the cores, a wide
            p99/p50 spread: :func:`~ltr.lifecycle.latency.timing_noise`); empty when quiet.
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
    latency_noise: list[str]
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
    validated: Mapping[str, Any] | None = None,
) -> ExportReport:
    """Export a trained run to a model bundle folder, checked, or write nothing.

    Args:
        model: a run directory (its ``checkpoints/best.pt``) or a checkpoint file.
        output: the bundle folder to create; must not exist.
        version: the bundle's ``X.Y.Z``.
        opset: ONNX opset (:data:`~ltr.lifecycle.onnx_graph.MIN_OPSET` up to the onnx
            package's newest); None takes the exporter's default.
        quantize: ``"int8"`` ships ONNX Runtime's dynamic int8 quantization of the graph,
            only if its test NDCG@10 is within
            :data:`ltr.lifecycle.quantize.INT8_MAX_NDCG_MOVE` of float32's.
        test_data: the LETOR file parity and the int8 gate use; default: the run's test file.
        validated: what ``ltr promote --to production`` knows of the validated model (``name``,
            ``model_id``, ``validated_at``, ``status``, ``path``), kept as
            ``metadata["validated"]`` so the store can say which registry name it serves.

    Returns:
        :class:`ExportReport`.

    Raises:
        ConfigError: a bad ``version``, ``opset`` or ``quantize``.
        BundleError: ``output`` exists.
        WriteError: ``output`` cannot be created (checked before any work).
        DataNotFoundError: no model, or no test file (give ``test_data``).
        ExportError: the export, parity or the int8 gate failed; nothing was written.
    """
    output = Path(output)
    parse_version(version)
    if quantize not in (None, "int8"):
        raise ConfigError(f"--quantize: must be int8 (or left out); got {quantize!r}")
    if output.exists():
        raise BundleError(f"bundle {output} already exists; a bundle is never overwritten")
    check_writable(output)
    check_opset(opset)  # before loading anything
    source = load_source(model)
    data_path = _test_data_path(source, test_data)
    data = load_letor(data_path, n_features=source.n_features)
    warn_if_narrower(data, "the model")
    conventions = source.conventions()

    graph = export_onnx(source, opset=opset)
    reference = source.reference()
    try:
        session = make_session(graph.model)
    except Exception as error:  # onnxruntime raises its own untyped errors
        raise ExportError(
            f"ONNX Runtime cannot load the opset {graph.opset} graph; no bundle written "
            f"(try a lower --opset): {error}"
        ) from error
    # the path `ltr predict` and metrics.json use: float64 normalization, eager scorer
    float64_scores = score_data(source.scorer, source.normalizer.transform_data(data))
    parity = validate_parity(
        session,
        reference,
        n_features=source.n_features,
        data=data,
        training_scores=float64_scores,
        conventions=conventions,
    )
    if not parity.passed:
        raise ExportError(
            f"ONNX parity check failed for {source.checkpoint}; no bundle written: "
            + "; ".join(parity.problems)
        )
    shipped, quantization = graph.model, None
    if quantize == "int8":
        shipped = quantize_int8(graph.model)
        quantization = quantization_gate(session, make_session(shipped), data, conventions)
        if not quantization.passed:
            raise ExportError(
                f"int8 variant refused: its test {quantization.metric} moves by "
                f"{quantization.move:+.4f} versus float32 ({quantization.float32:.4f} -> "
                f"{quantization.int8:.4f}); at most {quantization.max_move} is allowed. Export "
                "without --quantize to ship the float32 graph; no bundle written"
            )
    load_before = load_average()
    latency = measure_latency(
        shipped,
        reference,
        n_features=source.n_features,
        list_sizes=_EXPORT_LATENCY_SIZES,
        threads=(1,),
        matmul_weights=matmul_chain(source.scorer),
        seconds=0.3,
        rounds=3,
        data=data,
    )
    # the figures go into the model card: say there when a busy machine may have inflated them
    noise = timing_noise(latency, cores=available_cores(), load_before=load_before)
    precision = "float32" if quantize is None else "int8"
    metadata = _metadata(
        source, graph, version, data_path, parity, latency, noise, quantization, precision
    )
    metadata["validated"] = None if validated is None else dict(validated)
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
        latency_noise=noise,
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
    latency_noise: Sequence[str],
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
            "sha256": source.sha256,
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
        "conventions": source.conventions(),
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
            "accepts_empty": graph.accepts_empty,
        },
        "parity": {"data": str(data_path.resolve()), **parity.to_dict()},
        "latency": {
            "note": "one query, 1 thread, microseconds; PyTorch eager vs ONNX Runtime",
            "rows": [row.to_dict() for row in latency],
            "noise_warnings": list(latency_noise),
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
