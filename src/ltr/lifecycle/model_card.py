"""The bundle's ``model_card.md``, written from its ``metadata.json`` content alone.

Torch-free, so anything holding a bundle's metadata can render the card again. Sections: intended
use, data, metrics, training, export (parity, latency), limitations.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["render_model_card"]


def render_model_card(metadata: Mapping[str, Any]) -> str:
    """The model card of a bundle from its metadata (as ``ltr.lifecycle.export`` writes it)."""
    model = metadata.get("model") or {}
    lines = [
        f"# Model card: {model.get('name', 'ranker')} {metadata.get('version', '?')}",
        "",
        f"Experiment `{metadata.get('experiment')}`, exported from `{_source(metadata)}`.",
        "",
        "## Intended use",
        "",
        "Ranks the documents of one query: each document is a vector of "
        f"{metadata.get('n_features')} LETOR features (raw values, as in the training files; "
        "the fitted normalization is inside the graph). Higher score = more relevant; only the "
        "order within a query is meaningful, not the score's scale. Not meant for documents whose "
        "features come from another extraction pipeline than the training data's.",
        "",
        "## Inputs and outputs",
        "",
        *(_tensor_line(spec) for spec in metadata.get("inputs", [])),
        *(_tensor_line(spec) for spec in metadata.get("outputs", [])),
        "",
        *_data_section(metadata),
        *_metrics_section(metadata.get("metrics") or {}, metadata.get("conventions") or {}),
        *_training_section(metadata),
        *_export_section(metadata),
        "## Limitations",
        "",
        "- Scores are calibrated to nothing: compare them within one query only.",
        "- Quality was measured offline on the test file above; online behaviour can differ "
        "(position bias, feature drift).",
        "- Inputs must be finite; features outside the training range are extrapolated.",
    ]
    if metadata.get("normalization", {}).get("kind") in ("query_minmax", "query_zscore"):
        lines.append(
            "- Per-query normalization: a document's score depends on the other documents sent "
            "with it; send the whole candidate list in one request."
        )
    if (metadata.get("model") or {}).get("name") == "transformer":
        lines.append(
            "- Context-aware scorer: scores depend on the whole list; latency grows with the "
            "square of the list length."
        )
    return "\n".join(lines) + "\n"


def _source(metadata: Mapping[str, Any]) -> str:
    source = metadata.get("source") or {}
    return str(source.get("run_dir") or source.get("checkpoint") or "?")


def _tensor_line(spec: Mapping[str, Any]) -> str:
    shape = ", ".join(str(dim) for dim in spec.get("shape", []))
    return f"- `{spec.get('name')}`: {spec.get('dtype')} `[{shape}]`"


def _data_section(metadata: Mapping[str, Any]) -> list[str]:
    data = (metadata.get("training") or {}).get("data") or {}
    normalization = metadata.get("normalization") or {}
    folded = (
        " (scale folded into the first layer)"
        if normalization.get("folded_into_first_layer")
        else ""
    )
    return [
        "## Data",
        "",
        f"- Training data: `{data.get('train') or data.get('root')}`",
        f"- Test file (parity): `{(metadata.get('parity') or {}).get('data')}`",
        f"- Features: {metadata.get('n_features')} (`feature_1` .. "
        f"`feature_{metadata.get('n_features')}`)",
        f"- Normalization: `{normalization.get('kind')}`, inside the graph{folded}; "
        f"statistics in `{normalization.get('file')}`",
        "",
    ]


def _metrics_section(metrics: Mapping[str, Any], conventions: Mapping[str, Any]) -> list[str]:
    lines = ["## Metrics", ""]
    groups = {name: metrics.get(name) for name in ("test", "valid")}
    names = sorted({key for group in groups.values() if isinstance(group, dict) for key in group})
    if not names:
        return [*lines, "No metrics.json was found for this run.", ""]
    shown = ", ".join(f"{key}={value}" for key, value in conventions.items())
    lines += [
        f"From the run's `metrics.json` ({shown or 'default conventions'}).",
        "",
        "| metric | test | validation (best epoch) |",
        "|---|---:|---:|",
    ]
    for name in names:
        cells = [_number((groups[group] or {}).get(name)) for group in ("test", "valid")]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return [*lines, ""]


def _training_section(metadata: Mapping[str, Any]) -> list[str]:
    training = metadata.get("training") or {}
    loop = training.get("training") or {}
    loss = training.get("loss") or {}
    model = metadata.get("model") or {}
    source = metadata.get("source") or {}
    keys = ("batch_size", "num_epochs", "learning_rate", "weight_decay", "optimizer", "seed")
    return [
        "## Training",
        "",
        f"- Scorer: `{model.get('name')}` {json.dumps(model.get('params') or {}, sort_keys=True)}",
        f"- Loss: `{loss.get('name')}` {json.dumps(loss.get('params') or {}, sort_keys=True)}",
        "- " + ", ".join(f"{key}={loop[key]}" for key in keys if key in loop),
        f"- Best epoch {source.get('best_epoch')} of {source.get('epoch')} trained",
        "",
    ]


def _export_section(metadata: Mapping[str, Any]) -> list[str]:
    onnx_info = metadata.get("onnx") or {}
    parity = metadata.get("parity") or {}
    versions = metadata.get("versions") or {}
    lines = [
        "## Export",
        "",
        f"- `{onnx_info.get('file')}`: {onnx_info.get('precision')}, opset "
        f"{onnx_info.get('opset')}, {onnx_info.get('exporter')}",
        "- Versions: " + ", ".join(f"{key} {value}" for key, value in versions.items()),
        f"- Parity with PyTorch (float32 graph): max |diff| {_number(parity.get('max_abs_diff'))} "
        f"(limit {parity.get('atol')}), rankings identical: {parity.get('rankings_identical')}, "
        f"largest metric difference {_number(parity.get('metrics_max_diff'))}",
    ]
    quantization = metadata.get("quantization")
    if quantization:
        lines.append(
            f"- int8: test {quantization['metric']} {_number(quantization['float32'])} -> "
            f"{_number(quantization['int8'])} (move {quantization['move']:+.4f}, limit "
            f"{quantization['max_move']}); {quantization['queries_same_order']} of "
            f"{quantization['queries']} queries in the same order"
        )
    rows: Sequence[Mapping[str, Any]] = (metadata.get("latency") or {}).get("rows") or []
    if rows:
        lines += [
            "",
            "Latency at export (one query, 1 thread, p50 microseconds, this machine):",
            "",
            "| documents | PyTorch | ONNX Runtime | speed-up |",
            "|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {row['list_size']} | {row['torch_p50_us']:,.0f} | {row['onnx_p50_us']:,.0f} | "
            f"{row['speedup']:.1f}x |"
            for row in rows
        ]
    return [*lines, ""]


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "n/a"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.1e}"
    return f"{value:.4f}"
