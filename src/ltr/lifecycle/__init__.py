"""Model lifecycle: bundles, the model store, export and promotion.

Torch-free (serving and ``ltr models`` import them): ``bundle``, ``store``, ``model_card``,
``gates``, ``provenance``, ``mlflow_registry``. Export needs torch and is never imported from
here; import it where a command needs it: ``export`` (orchestration) over ``source`` (the
trained run), ``onnx_graph`` (the graph), ``runtime`` (sessions), ``parity``, ``latency`` and
``quantize`` (the int8 variant). ``registry`` promotes runs to validated models.
"""

from ltr.lifecycle.bundle import Bundle, parse_version, read_bundle, verify_bundle, write_bundle
from ltr.lifecycle.store import BundleCheck, ModelStore

__all__ = [
    "Bundle",
    "BundleCheck",
    "ModelStore",
    "parse_version",
    "read_bundle",
    "verify_bundle",
    "write_bundle",
]
