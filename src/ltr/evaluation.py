"""Evaluate scores against a data file: the one code path behind `ltr evaluate`, baselines,
training-time validation and the export check, so their numbers cannot drift apart.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ltr.data.letor import LetorData
from ltr.data.runs import MatchedRun
from ltr.errors import DataFormatError, ShapeError
from ltr.metrics import (
    CutoffWarning,
    conventions_in_force,
    gain_overflows,
    parse_metric_name,
    per_query_metrics,
    reads_gain,
)


@dataclass(frozen=True)
class Evaluation:
    """Per-query metric values and their means.

    Attributes:
        per_query: metric name -> ``float64 [n_queries]`` (NaN where a query is skipped).
        query_ids: ``str [n_queries]``, aligned with every per-query array.
    """

    per_query: dict[str, np.ndarray]
    query_ids: np.ndarray

    @property
    def means(self) -> dict[str, float]:
        """Metric name -> mean over queries, skipping NaN (the ``no_relevant="skip"`` queries)."""
        return {name: _nanmean(values) for name, values in self.per_query.items()}

    @property
    def averaged(self) -> dict[str, int]:
        """Metric name -> the number of queries its mean is over (those not skipped)."""
        return {name: int(np.isfinite(v).sum()) for name, v in self.per_query.items()}


def skipped_queries_note(total: int, averaged: Sequence[int]) -> str:
    """How many of ``total`` queries means over metrics that counted ``averaged`` are over, when
    some were skipped (``no_relevant="skip"``); "" when none was.

    >>> skipped_queries_note(12, [10, 10]), skipped_queries_note(6, [6])
    ('means over 10 (2 skipped: no relevant document)', '')
    """
    low, high = min(averaged, default=total), max(averaged, default=total)
    if low == total:
        return ""
    if low == high:
        return f"means over {low:,} ({total - low:,} skipped: no relevant document)"
    return f"means over {low:,} to {high:,} (the others skipped: no relevant document)"


def pad_per_query(values: np.ndarray, query_offsets: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Scatter a flat per-document array into ``[n_queries, max_list_len]``, padding with ``fill``.

    >>> pad_per_query(np.array([1.0, 2.0, 3.0]), np.array([0, 2, 3]))
    array([[1., 2.],
           [3., 0.]])
    """
    lengths = np.diff(query_offsets)
    n_queries, width = lengths.shape[0], int(lengths.max(initial=0))
    padded = np.full((n_queries, width), fill, dtype=values.dtype)
    rows = np.repeat(np.arange(n_queries), lengths)
    cols = np.arange(values.shape[0]) - np.repeat(query_offsets[:-1], lengths)
    padded[rows, cols] = values
    return padded


def padding_mask(query_offsets: np.ndarray) -> np.ndarray:
    """``bool [n_queries, max_list_len]``: True where a query has a real document."""
    lengths = np.diff(query_offsets)
    return np.arange(int(lengths.max(initial=0))) < lengths[:, None]


def refuse_gain_overflow(
    data: LetorData,
    metrics: Sequence[str],
    fix: str,
    where: str | Path | None = None,
    **conventions: Any,
) -> None:
    """Refuse, when the data is read rather than when NDCG first meets it, a label whose gain
    overflows float64 (:func:`ltr.metrics.gain_overflows`: 1024 and above with exp2).

    Args:
        data: the judged documents.
        metrics: the report names that will be computed; none reading the gain, no check.
        fix: how the caller's user switches to the linear gain (``--gain linear``).
        where: what the message calls the file; default ``data.source``.
        **conventions: ``preset`` and the metric conventions, as for :func:`evaluate_scores`.

    Raises:
        DataFormatError: ``where: label L of query Q overflows ...; fix``.
    """
    gain = conventions_in_force(**conventions)["gain"]
    if not data.n_docs or not reads_gain(metrics):
        return
    row = int(np.argmax(data.labels))
    largest = float(data.labels[row])
    if not gain_overflows(largest, gain):
        return
    query = data.query_ids[int(np.searchsorted(data.query_offsets, row, side="right")) - 1]
    problem = (
        f"label {largest:g} of query {query}: the exp2 gain 2^label - 1 overflows float64; {fix}"
    )
    raise DataFormatError(where or data.source or "the data", None, problem)


def evaluate_scores(
    data: LetorData,
    scores: np.ndarray,
    metrics: Sequence[str],
    **conventions: Any,
) -> Evaluation:
    """Score every query of ``data`` with ``metrics`` (names like ``"ndcg@10"``).

    Args:
        data: the judged documents.
        scores: ``[n_docs]`` one score per document, aligned with ``data``'s rows.
        metrics: metric names understood by :func:`ltr.metrics.parse_metric_name`.
        **conventions: ``preset`` and the metric conventions (``gain``, ``no_relevant``, ...).

    Raises:
        ShapeError: not one score per document, or a score is NaN.
    """
    if hasattr(scores, "detach"):  # a torch tensor, perhaps requiring grad or on a GPU
        scores = scores.detach().cpu()
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (data.n_docs,):
        raise ShapeError(
            f"one score per document is needed; got shape {scores.shape} "
            f"for {data.n_docs} documents"
        )
    return _evaluate(
        scores, data.labels, data.query_offsets, data.query_ids, metrics, conventions, data.source
    )


def evaluate_run(run: MatchedRun, metrics: Sequence[str], **conventions: Any) -> Evaluation:
    """Score a TREC run matched by :func:`ltr.data.runs.read_trec_run`, query by query.

    The run's own ranking is evaluated, as trec_eval does (rules in :mod:`ltr.data.runs`):
    unjudged documents count as non-relevant, judged documents it misses are not retrieved.
    """
    return _evaluate(
        run.scores, run.labels, run.query_offsets, run.query_ids, metrics, conventions, run.source
    )


def _evaluate(
    scores: np.ndarray,
    labels: np.ndarray,
    query_offsets: np.ndarray,
    query_ids: np.ndarray,
    metrics: Sequence[str],
    conventions: dict[str, Any],
    source: str | None,
) -> Evaluation:
    # -inf marks unretrieved documents (TREC runs); padding must still sort below them.
    padded_scores = pad_per_query(scores, query_offsets)
    padded_labels = pad_per_query(labels.astype(np.float64), query_offsets)
    mask = padding_mask(query_offsets)
    with warnings.catch_warnings():
        if source is not None:  # the whole file is one padded batch: say so by its name
            warnings.simplefilter("ignore", CutoffWarning)
        try:
            values = per_query_metrics(padded_scores, padded_labels, mask, metrics, **conventions)
        except ShapeError as error:  # a label or gain it cannot use: say in which file
            if source is None:
                raise
            raise ShapeError(f"{source}: {error}") from None
    if source is not None and mask.shape[0]:
        longest = mask.shape[1]
        for k in sorted({k for _, k in map(parse_metric_name, metrics) if k and k > longest}):
            warnings.warn(CutoffWarning.beyond(k, longest, source), stacklevel=3)
    return Evaluation(per_query=values, query_ids=query_ids)


def _nanmean(values: np.ndarray) -> float:
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else float("nan")
