"""ltr: learning to rank from research to production.

The names here are the stable, torch-free core: data files, metrics and evaluation. Training
and export live in their subpackages (``ltr.data.dataset``, ``ltr.losses``, ...).
"""

from ltr.data.letor import LetorData, load_letor, read_letor, read_lightgbm, write_letor
from ltr.errors import (
    ConfigError,
    DataFormatError,
    DataNotFoundError,
    LtrError,
    ShapeError,
    WriteError,
)
from ltr.evaluation import Evaluation, evaluate_scores
from ltr.metrics import (
    METRICS,
    PRESETS,
    average_precision,
    compute_metrics,
    dcg,
    err,
    ndcg,
    per_query_metrics,
    precision,
    recall,
    reciprocal_rank,
)

__version__ = "0.1.0"

__all__ = [
    "METRICS",
    "PRESETS",
    "ConfigError",
    "DataFormatError",
    "DataNotFoundError",
    "Evaluation",
    "LetorData",
    "LtrError",
    "ShapeError",
    "WriteError",
    "__version__",
    "average_precision",
    "compute_metrics",
    "dcg",
    "err",
    "evaluate_scores",
    "load_letor",
    "ndcg",
    "per_query_metrics",
    "precision",
    "read_letor",
    "read_lightgbm",
    "recall",
    "reciprocal_rank",
    "write_letor",
]
