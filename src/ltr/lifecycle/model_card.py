"""``model_card.md``: one renderer for validated models and ONNX bundles, from metadata alone.

Torch-free, so anything holding a ``metadata.json`` can render the card again.
:func:`render_model_card` reads either layout: a bundle's (``format: ltr.bundle``, written by
:func:`ltr.lifecycle.export.export_bundle`) or a validated model's (written by
:func:`ltr.lifecycle.registry.promote_to_validated`). Each layout is first read into the facts
the shared sections need, so every section is written once:

- shared: intended use, data, metrics (one column per metric set, conventions below the table),
  training configuration, limitations;
- bundle only: inputs and outputs, export (parity, int8 gate, latency);
- validated only: promotion gate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ltr.metrics import metric_order

__all__ = ["render_model_card"]

BUNDLE_FORMAT = "ltr.bundle"
_PER_QUERY_KINDS = ("query_minmax", "query_zscore")


def render_model_card(metadata: Mapping[str, Any]) -> str:
    """The model card of a bundle or of a validated model, from its ``metadata.json`` content."""
    if metadata.get("format") == BUNDLE_FORMAT:
        sections = _bundle_sections(metadata)
    else:
        sections = _validated_sections(metadata)
    return "\n\n".join(section.rstrip("\n") for section in sections) + "\n"


# -- reading each layout into the facts of the shared sections ----------------------------------


def _bundle_sections(m: Mapping[str, Any]) -> list[str]:
    model = m.get("model") or {}
    config = m.get("training") or {}
    loop, data = config.get("training") or {}, config.get("data") or {}
    run = m.get("metrics") or {}
    normalization = m.get("normalization") or {}
    folded = ""
    if normalization.get("folded_into_first_layer"):
        folded = " (scale folded into the first layer)"
    conventions = dict(m.get("conventions") or {})
    training = {
        **{key: loop.get(key) for key in _LOOP_KEYS},
        "model": model.get("name"),
        "model_params": model.get("params") or {},
        "loss": config.get("loss") or {},
        "epochs": run.get("epochs", (m.get("source") or {}).get("epoch")),
        "best_epoch": run.get("best_epoch", (m.get("source") or {}).get("best_epoch")),
        "stopped_early": run.get("stopped_early"),
        "normalization": normalization.get("kind"),
        "max_list_length": data.get("max_list_length"),
    }
    splits, columns = _bundle_files(m, data, run)
    source = m.get("source") or {}
    header = [
        f"# Model card: {model.get('name', 'ranker')} {m.get('version', '?')}",
        "",
        f"Experiment `{m.get('experiment')}`, exported from "
        f"`{source.get('run_dir') or source.get('checkpoint') or '?'}`.",
    ]
    return [
        "\n".join(header),
        _intended_use(model.get("name"), m.get("n_features"), in_graph=True),
        _inputs(m),
        _data(
            splits,
            [
                f"Features: {m.get('n_features')} (`feature_1` .. `feature_{m.get('n_features')}`)",
                f"Normalization: `{normalization.get('kind')}`, inside the graph{folded}; "
                f"statistics in `{normalization.get('file')}`",
            ],
        ),
        _metrics(
            "Metrics",
            columns,
            {column: conventions for column in columns},
            "Run test and validation from the run's `metrics.json` (PyTorch); the parity file "
            "scored by the exported ONNX graph. Each column names the file it was measured on "
            "(Data above).",
        ),
        _training(training),
        _export(m),
        _limitations(
            scorer=model.get("name"),
            normalization=normalization.get("kind"),
            test_queries=run.get("test_queries"),
            valid_from_train=run.get("valid_from_train"),
        ),
    ]


def _bundle_files(
    m: Mapping[str, Any], data: Mapping[str, Any], run: Mapping[str, Any]
) -> tuple[dict[str, Mapping[str, Any] | None], dict[str, Mapping[str, Any]]]:
    """The Data rows and the Metrics columns of a bundle, each naming the file it is about:
    the run's own files (``metrics.json``, else its config) and the parity file of export."""
    recorded = run.get("data") or {}

    def split(name: str, config_key: str) -> dict[str, Any]:
        info = recorded.get(name) or {}
        if info.get("path"):
            return dict(info)
        path = data.get(config_key) or (f"{data['root']} ({name})" if data.get("root") else None)
        return {"path": path}

    train, valid, test = split("train", "train"), split("valid", "valid"), split("test", "test")
    parity = m.get("parity") or {}
    splits: dict[str, Mapping[str, Any] | None] = {
        "train": train,
        "validation": valid,
        "run test": test,
        "parity, int8 gate (export)": {"path": parity.get("data")},
    }
    columns = {
        f"run test `{_file_name(test.get('path'))}`": run.get("test") or {},
        f"validation, best epoch `{_file_name(valid.get('path'))}`": run.get("valid") or {},
        f"parity file, ONNX `{_file_name(parity.get('data'))}`": parity.get("metrics_onnx") or {},
    }
    return splits, columns


def _file_name(path: Any) -> str:
    """The last part of a path for a column header (the Data table holds the whole path)."""
    return str(path).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] if path else "?"


def _validated_sections(m: Mapping[str, Any]) -> list[str]:
    t = m["training"]
    revision = m.get("code_revision") or "unknown (not a git checkout)"
    if m.get("code_dirty"):
        revision += " (with uncommitted changes)"
    header = [
        f"# Model card: {m['model_id']}",
        "",
        f"- **Status:** {m['status']} (validated {m['validated_at']})",
        f"- **Registered name / version:** {m['name']} / {m['version']}",
        f"- **Source run:** `{m['experiment_id']}` ({m['run_dir']})",
        f"- **MLflow run:** {m.get('mlflow_run_id') or 'none (run not tracked)'}",
        f"- **Code revision:** {revision}",
    ]
    model = dict(t["model"])
    training = {
        **t,
        "model": model.pop("name"),
        "model_params": model,
        "max_epochs": t.get("max_epochs"),
    }
    test = m["data"]["test"]
    return [
        "\n".join(header),
        _intended_use(training["model"], None, in_graph=False),
        _data({split: m["data"].get(split) for split in ("train", "valid", "test")}, []),
        _metrics("Metrics (test set)", m["metrics"], m["conventions"], ""),
        _training(training),
        _gate(m["gate"]),
        _limitations(
            scorer=training["model"],
            normalization=t.get("normalization"),
            test_queries=test.get("queries"),
            queries_without_relevant=test.get("queries_without_relevant"),
            valid_from_train=t.get("valid_from_train"),
            synthetic=m["data"].get("synthetic"),
        ),
    ]


# -- shared sections ----------------------------------------------------------------------------

_LOOP_KEYS = (
    "optimizer",
    "learning_rate",
    "weight_decay",
    "batch_size",
    "early_stopping_metric",
    "seed",
)


def _intended_use(scorer: str | None, n_features: int | None, *, in_graph: bool) -> str:
    inputs = "LETOR features" if n_features is None else f"{n_features} LETOR features"
    if in_graph:
        normalization = "Send raw feature values, as in the training files: the fitted "
        normalization += "normalization is inside the graph."
    else:
        normalization = "The fitted normalizer (`preprocessor.json`) is applied before scoring. "
        normalization += "Offline scoring: `ltr predict`; serving: `ltr promote RUN --to "
        normalization += "production` exports an ONNX bundle."
    return "\n".join(
        [
            "## Intended use",
            "",
            f"Re-ranks the candidate documents of a query: the `{scorer}` scorer gives each "
            f"document a score from its feature vector ({inputs}, the same features in the same "
            "order as the training data), and documents are sorted by it. Higher score = more "
            f"relevant; only the order within a query is meaningful. {normalization}",
            "",
            "Not intended for data with other features or another label scale, for retrieval "
            "from a full collection (it only re-orders given candidates), or for decisions "
            "about individuals.",
        ]
    )


def _data(splits: Mapping[str, Mapping[str, Any] | None], notes: Sequence[str]) -> str:
    lines = [
        "## Data",
        "",
        "| split | file | queries | documents | sha256 |",
        "|---|---|---:|---:|---|",
    ]
    for split, info in splits.items():
        if info is None:
            lines.append(f"| {split} | (none: validated on a split of train) | | | |")
            continue
        sha = f"`{info['sha256']}`" if info.get("sha256") else ""
        lines.append(
            f"| {split} | `{info.get('path')}` | {info.get('queries', '')} "
            f"| {info.get('documents', '')} | {sha} |"
        )
    return "\n".join([*lines, "", *(f"- {note}" for note in notes)])


def _metrics(
    title: str,
    columns: Mapping[str, Mapping[str, Any]],
    conventions: Mapping[str, Mapping[str, Any]],
    note: str,
) -> str:
    lines = [f"## {title}", ""]
    names = sorted({name for column in columns.values() for name in column}, key=metric_order)
    if not names:
        return "\n".join([*lines, "No metrics were recorded for this run."])
    lines += [*([note, ""] if note else []), "| metric | " + " | ".join(columns) + " |"]
    lines.append("|---|" + "---:|" * len(columns))
    for name in names:
        cells = [_number(column.get(name)) for column in columns.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    shown = {column: _pairs(conventions.get(column) or {}) for column in columns}
    if len(set(shown.values())) == 1:
        lines.append(f"Conventions (`ltr.metrics`): {next(iter(shown.values())) or 'defaults'}")
    else:
        lines += ["Conventions (`ltr.metrics`):", ""]
        lines += [f"- **{column}**: {pairs}" for column, pairs in shown.items()]
    return "\n".join(lines)


def _training(t: Mapping[str, Any]) -> str:
    loss = t.get("loss") or {}
    loss_shown = f"{loss.get('name')} ({_pairs(loss.get('params') or {}) or 'defaults'})"
    valid = t.get("valid") or {}
    valid_shown = ", ".join(f"{k} {_number(v)}" for k, v in valid.items() if "[" not in k)
    epochs = f"{t.get('epochs')}" + (
        f" of at most {t['max_epochs']}" if t.get("max_epochs") is not None else ""
    )
    lines = [
        "## Training configuration",
        "",
        f"- **Model:** {t.get('model')} ({_pairs(t.get('model_params') or {}) or 'defaults'})",
    ]
    members = (t.get("model_params") or {}).get("members")
    if t.get("model") == "ensemble" and members:  # built by `ltr ensemble`, not trained
        lines.append(
            f"- **Ensemble:** the mean score of {len(members)} trained runs (`ltr ensemble`; "
            "each member's run and checkpoint sha256 are in the source run's metrics.json), "
            f"trained with {loss_shown}"
        )
        if valid_shown:
            lines.append(f"- **Validation:** {valid_shown}")
    else:
        lines += [
            f"- **Loss:** {loss_shown}",
            f"- **Optimizer:** {t.get('optimizer')}, learning rate {t.get('learning_rate')}, "
            f"weight decay {t.get('weight_decay')}, batch {t.get('batch_size')} queries",
            f"- **Epochs:** {epochs}; best epoch {t.get('best_epoch')} by validation "
            f"{t.get('early_stopping_metric')}"
            + (" (stopped early)" if t.get("stopped_early") else ""),
        ]
        if valid_shown:
            lines.append(f"- **Validation at the best epoch:** {valid_shown}")
    lines.append(
        f"- **Features:** normalization {t.get('normalization')}, max list length "
        f"{t.get('max_list_length')}; seed {t.get('seed')}"
    )
    return "\n".join(lines)


def _limitations(
    *,
    scorer: str | None,
    normalization: str | None,
    test_queries: int | None = None,
    queries_without_relevant: int | None = None,
    valid_from_train: bool | None = None,
    synthetic: bool | None = None,
) -> str:
    lines = [
        "## Limitations",
        "",
        "- Scores are calibrated to nothing: compare them within one query only.",
        "- Quality was measured offline on the test file above; online behaviour can differ "
        "(position bias, feature drift). Inputs must be finite; features outside the training "
        "range are extrapolated.",
        "- LETOR-style data (e.g. MQ2007/MQ2008) is small, with judged candidates from one "
        "retrieval system and many ties; the figures say little about other collections or "
        "unjudged documents.",
    ]
    if test_queries is not None:
        lines.append(
            f"- The test set has {test_queries} queries; differences of a few thousandths "
            "between models are usually within noise: compare runs with a paired test "
            "(`ltr compare`)."
        )
    if queries_without_relevant is not None:
        lines.append(
            f"- {queries_without_relevant} of {test_queries} test queries have no relevant "
            "document. Their NDCG is a convention: 0 by default (trec_eval), 1 under LightGBM's; "
            "the `ndcg@10[no_relevant=...]` rows show how far this moves the figure. Compare "
            "only numbers computed under the same convention."
        )
    if valid_from_train:
        lines.append(
            "- There was no validation file: model selection used a split of the training queries."
        )
    if synthetic:
        lines.append(
            "- Trained and tested on synthetic data (`ltr data synth`): the figures say nothing "
            "about real queries."
        )
    if normalization in _PER_QUERY_KINDS:
        lines.append(
            "- Per-query normalization: a document's score depends on the other documents sent "
            "with it; send the whole candidate list in one request."
        )
    if scorer == "transformer":
        lines.append(
            "- Context-aware scorer: scores depend on the whole list; latency grows with the "
            "square of the list length."
        )
    return "\n".join(lines)


# -- sections of one layout ---------------------------------------------------------------------


def _inputs(m: Mapping[str, Any]) -> str:
    lines = ["## Inputs and outputs", ""]
    for spec in [*m.get("inputs", []), *m.get("outputs", [])]:
        shape = ", ".join(str(dim) for dim in spec.get("shape", []))
        lines.append(f"- `{spec.get('name')}`: {spec.get('dtype')} `[{shape}]`")
    if (m.get("onnx") or {}).get("accepts_empty") is False:
        lines.append(
            "- `batch` and `list_len` must be at least 1: this attention graph fails in ONNX "
            "Runtime on an empty batch or list, so check for one before calling it "
            "(`ltr.lifecycle.runtime.run_session` returns empty scores)."
        )
    return "\n".join(lines)


def _export(m: Mapping[str, Any]) -> str:
    onnx_info, parity = m.get("onnx") or {}, m.get("parity") or {}
    versions = m.get("versions") or {}
    lines = [
        "## Export",
        "",
        f"- `{onnx_info.get('file')}`: {onnx_info.get('precision')}, opset "
        f"{onnx_info.get('opset')}, {onnx_info.get('exporter')}",
        "- Versions: " + ", ".join(f"{key} {value}" for key, value in versions.items()),
        f"- Parity with PyTorch (float32 graph): max |diff| {_number(parity.get('max_abs_diff'))} "
        f"(relative {_number(parity.get('max_relative_diff'))}; limit {parity.get('atol')} + "
        f"{parity.get('rtol')} * max |score|), rankings identical: "
        f"{parity.get('rankings_identical')} (near-tied pairs swapped: "
        f"{parity.get('near_tie_swaps')}), "
        f"largest metric difference {_number(parity.get('metrics_max_diff'))}",
    ]
    q = m.get("quantization")
    if q:
        lines.append(
            f"- int8 ({q['kind']}): test {q['metric']} {_number(q['float32'])} -> "
            f"{_number(q['int8'])} (move {q['move']:+.4f}, limit {q['max_move']}); "
            f"{q['queries_same_order']} of {q['queries']} queries in the same order as float32, "
            f"mean Kendall tau {_number(q.get('kendall_tau'))}"
        )
    rows: Sequence[Mapping[str, Any]] = (m.get("latency") or {}).get("rows") or []
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
        noise = (m.get("latency") or {}).get("noise_warnings") or []
        lines += ["", *(f"Caution: {line}." for line in noise)] if noise else []
    return "\n".join(lines)


def _gate(gate: Mapping[str, Any]) -> str:
    lines = ["## Promotion gate", ""]
    checks = gate["checks"]
    if not checks:
        lines.append("No checks configured (`promotion:` has no floors and no comparison).")
    for check in checks:
        lines.append(f"- {'passed' if check['passed'] else 'FAILED'}: {check['message']}")
    return "\n".join(lines)


# -- formatting ---------------------------------------------------------------------------------


def _pairs(values: Mapping[str, Any]) -> str:
    """``hidden_dims=[512, 256], dropout=0.1``."""
    shown = (json.dumps(v) if isinstance(v, list | dict) else str(v) for v in values.values())
    return ", ".join(f"{key}={value}" for key, value in zip(values, shown, strict=True))


def _number(value: Any) -> str:
    """``0.4713``; ``3.1e-06`` below 1e-3 (parity figures); ``n/a`` for anything not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "n/a"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.1e}"
    return f"{value:.4f}"
