"""Tiny, real ONNX scorers built without torch, for tests of bundles, stores and parity checks."""

from __future__ import annotations

from collections.abc import Sequence

import onnx
from onnx import TensorProto, helper


def linear_onnx(weights: Sequence[float], bias: float = 0.0) -> bytes:
    """``scores[b, l] = features[b, l, :] @ weights + bias``; features ``[batch, list_len, F]``.

    >>> import numpy as np, onnxruntime as ort
    >>> session = ort.InferenceSession(linear_onnx([1.0, 2.0], bias=0.5))
    >>> session.run(None, {"features": np.ones((1, 3, 2), np.float32)})[0].tolist()
    [[3.5, 3.5, 3.5]]
    """
    n_features = len(weights)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "weight"], ["projected"]),
            helper.make_node("Add", ["projected", "bias"], ["shifted"]),
            helper.make_node("Squeeze", ["shifted", "axes"], ["scores"]),
        ],
        "linear_scorer",
        [
            helper.make_tensor_value_info(
                "features", TensorProto.FLOAT, ["batch", "list_len", n_features]
            )
        ],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", "list_len"])],
        initializer=[
            helper.make_tensor("weight", TensorProto.FLOAT, [n_features, 1], list(weights)),
            helper.make_tensor("bias", TensorProto.FLOAT, [1], [bias]),
            helper.make_tensor("axes", TensorProto.INT64, [1], [-1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # onnxruntime reads IR 8 everywhere it is installed
    onnx.checker.check_model(model)
    return model.SerializeToString()
