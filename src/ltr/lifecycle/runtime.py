"""Running a graph and its PyTorch reference the same way for every check and measurement.

ONNX Runtime sessions use :func:`make_session`'s options everywhere (parity, the int8 gate,
latency), so a figure measured in one place holds in the others. Scores come back as NumPy
arrays ``[batch, list_len]``; ``mask`` is fed only to graphs that have that input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ltr._extras import require_extra
from ltr.data.dataset import pad_slates
from ltr.data.letor import LetorData

with require_extra("export"):
    import onnxruntime as ort

__all__ = ["has_mask_input", "make_session", "run_session", "run_torch", "score_with_onnx"]


def make_session(model: bytes | Path, *, threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime CPU session with the options every ltr measurement uses.

    ``ORT_ENABLE_ALL`` graph optimizations (MatMul+Add -> Gemm, constant folding), ``threads``
    intra-op threads, one inter-op thread, sequential execution, memory arena on.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_cpu_mem_arena = True
    options.log_severity_level = 3  # errors only: no banner about saved optimized models
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def has_mask_input(session: ort.InferenceSession) -> bool:
    """True when the graph takes a ``mask`` input (context-aware scorer, per-query normalizer)."""
    return any(node.name == "mask" for node in session.get_inputs())


def run_session(
    session: ort.InferenceSession, features: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """``float32 [B, L]`` scores of ``features [B, L, F]``; ``mask`` is fed if the graph has it.

    An empty batch or list gives empty scores without running the graph: attention graphs
    fail on one (:mod:`ltr.lifecycle.onnx_graph`), the others would return the same.
    """
    if features.shape[0] == 0 or features.shape[1] == 0:
        return np.zeros(features.shape[:2], dtype=np.float32)
    feeds: dict[str, np.ndarray] = {"features": np.ascontiguousarray(features, dtype=np.float32)}
    if has_mask_input(session):
        if mask is None:
            mask = np.ones(features.shape[:2], dtype=bool)
        feeds["mask"] = np.ascontiguousarray(mask, dtype=bool)
    scores: np.ndarray = session.run(["scores"], feeds)[0]
    return scores


def run_torch(reference: nn.Module, features: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``float32 [B, L]`` scores of the PyTorch eager reference (inference mode)."""
    with torch.inference_mode():
        scores = reference(torch.from_numpy(features), torch.from_numpy(mask))
    out: np.ndarray = scores.float().numpy()
    return out


def score_with_onnx(
    session: ort.InferenceSession, data: LetorData, *, batch_size: int = 64
) -> np.ndarray:
    """``float64 [n_docs]`` ONNX Runtime scores of raw ``data``, aligned with its rows."""
    scores = np.zeros(data.n_docs, dtype=np.float64)
    order = np.argsort(data.list_lengths, kind="stable")
    for start in range(0, order.size, batch_size):
        slates = pad_slates(data, order[start : start + batch_size])
        out = run_session(session, slates.features, slates.mask)
        rows = data.query_offsets[slates.query_index][:, None] + np.arange(slates.mask.shape[1])
        scores[rows[slates.mask]] = out[slates.mask]
    return scores
