"""Score files and TREC run files: how rankings leave ltr and come back to be evaluated.

Two layouts, both plain text, UTF-8, optionally gzipped (detected by the magic bytes):

- *scores*: one float per line, aligned with the data lines of a LETOR file (the LightGBM and
  RankLib convention). Blank lines are errors except at the end of the file: the alignment is
  the whole point of the format.
- *TREC run*: ``qid Q0 docid rank score tag`` per line (trec_eval's input). A run is evaluated
  as trec_eval evaluates it, whatever the metric preset:

  - the ranking is the run's own: ``score`` descending, ties broken by ``docid`` in descending
    byte order (trec_eval sorts with ``strcmp``); the ``rank`` column is ignored;
  - a retrieved document the data file does not judge counts as non-relevant at its rank;
  - a judged document the run does not list is not retrieved: it holds no rank, but still
    counts in the ideal DCG and the number of relevant documents;
  - a data-file query the run does not list retrieves nothing (every metric 0, as
    ``trec_eval -c``); a run query the data file does not judge is left out, as trec_eval does.

  Documents are matched by ``(qid, docid)``, so a data file listing a docid twice in one query
  cannot be matched and is refused.

  :func:`write_trec_run` writes each query in that order, so the ``rank`` column says what the
  evaluation does. On tied scores this differs from ltr's own metrics over a scores file, which
  keep tied documents in file order; the writer warns once when a query has tied scores.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ltr._fs import atomic_open, missing_file
from ltr.data._letor_parser import open_binary
from ltr.data.letor import LetorData
from ltr.errors import DataFormatError, DataNotFoundError

logger = logging.getLogger(__name__)


def read_scores(path: str | Path, expected: int | None = None) -> np.ndarray:
    """Read one score per line (plain or gzip; trailing blank lines are ignored).

    Args:
        path: the score file.
        expected: the number of scores the caller needs (the data file's documents).

    Returns:
        ``float64 [n]`` scores in file order.

    Raises:
        DataNotFoundError: no such file.
        DataFormatError: undecodable bytes, a line that is not one finite float, or a count
            other than ``expected``.
    """
    path = Path(path)
    lines = _text_lines(path, "score file")
    while lines and not lines[-1].strip():  # editors and `echo >>` leave these
        lines.pop()
    scores: list[float] = []
    for line_no, line in enumerate(lines, start=1):
        token = line.strip()
        try:
            value = float(token)
        except ValueError:
            raise DataFormatError(
                path, line_no, f"a score line must hold one number; got {token!r}"
            ) from None
        if not np.isfinite(value):
            raise DataFormatError(path, line_no, f"scores must be finite; got {token!r}")
        scores.append(value)
    if expected is not None and len(scores) != expected:
        raise DataFormatError(
            path,
            None,
            f"one score per document is needed; got {len(scores)} scores for {expected} documents",
        )
    return np.asarray(scores, dtype=np.float64)


def write_scores(path: str | Path, scores: np.ndarray) -> None:
    """Write one score per line, atomically, with enough digits to read back exactly."""
    with atomic_open(path) as handle:
        for value in np.asarray(scores, dtype=np.float64):
            handle.write(f"{float(value)!r}\n")


@dataclass(frozen=True)
class MatchedRun:
    """A TREC run matched against a judged file, ready for :func:`ltr.evaluation.evaluate_run`.

    Each data-file query lists the run's documents in trec_eval's order, then the judged
    documents the run does not list (module docstring).

    Attributes:
        labels: ``float64 [n]`` the data file's label, 0 for a document it does not judge.
        scores: ``float64 [n]`` distinct, descending in trec_eval's order; ``-inf`` = not
            retrieved.
        query_ids: ``str [n_queries]`` the data file's queries, in its order.
        query_offsets: ``int64 [n_queries + 1]``.
        n_unjudged: retrieved documents the data file does not judge.
        n_missing: judged documents the run does not list, in the queries it lists (a query it
            does not list counts in ``n_queries_absent`` only).
        n_queries_absent: data-file queries the run does not list.
        n_queries_unjudged: run queries the data file does not hold (left out).
        source: the data file's :attr:`~ltr.data.letor.LetorData.source`, for warnings.
    """

    labels: np.ndarray
    scores: np.ndarray
    query_ids: np.ndarray
    query_offsets: np.ndarray
    n_unjudged: int
    n_missing: int
    n_queries_absent: int
    n_queries_unjudged: int
    source: str | None = None


def read_trec_run(
    path: str | Path, data: LetorData, *, data_path: str | Path = "the data file"
) -> MatchedRun:
    """Read a TREC run (plain or gzip) and match it against ``data``'s judgments.

    Args:
        path: the run file.
        data: the judged documents, with doc ids.
        data_path: names the data file in errors.

    Raises:
        DataNotFoundError: no such file.
        DataFormatError: undecodable bytes, a malformed line, a non-finite score, a (qid, docid)
            listed twice; a data file without doc ids or with a docid twice in one query; an
            empty run, or one that matches no judged document.
    """
    path = Path(path)
    lines = _text_lines(path, "run file")
    if data.doc_ids is None:
        raise DataFormatError(
            path,
            None,
            f"a TREC run is matched by docid, but {data_path} has no '#docid =' comments",
        )
    judged = _judgments(data, data_path)
    retrieved: dict[str, dict[str, float]] = {}
    for line_no, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        qid, docid, score = _parse_run_line(path, line_no, parts)
        listed = retrieved.setdefault(qid, {})
        if docid in listed:
            raise DataFormatError(path, line_no, f"qid {qid} docid {docid} is listed twice")
        listed[docid] = score
    if not retrieved:
        raise DataFormatError(
            path, None, "the run file is empty; expected lines 'qid Q0 docid rank score tag'"
        )
    if not any(d in judged.get(q, {}) for q, docs in retrieved.items() for d in docs):
        raise DataFormatError(
            path,
            None,
            f"no (qid, docid) of the run is judged in {data_path}; "
            "check that both files use the same query and document ids",
        )
    return _match(data, judged, retrieved)


def _match(
    data: LetorData, judged: dict[str, dict[str, float]], retrieved: dict[str, dict[str, float]]
) -> MatchedRun:
    labels: list[float] = []
    scores: list[float] = []
    lengths: list[int] = []
    n_unjudged = n_missing = n_absent = 0
    for qid in data.query_ids.tolist():
        run, qrels = retrieved.get(qid, {}), judged[qid]
        ranked = _trec_order(run)
        unranked = [d for d in qrels if d not in run]
        labels += [qrels.get(d, 0.0) for d in ranked] + [qrels[d] for d in unranked]
        scores += [float(len(ranked) - i) for i in range(len(ranked))]
        scores += [-np.inf] * len(unranked)
        n_unjudged += sum(d not in qrels for d in ranked)
        n_missing += len(unranked) if run else 0  # an absent query is counted as one
        n_absent += not run
        lengths.append(len(ranked) + len(unranked))
    return MatchedRun(
        labels=np.asarray(labels, dtype=np.float64),
        scores=np.asarray(scores, dtype=np.float64),
        query_ids=data.query_ids,
        query_offsets=np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]),
        n_unjudged=n_unjudged,
        n_missing=n_missing,
        n_queries_absent=n_absent,
        n_queries_unjudged=len(retrieved.keys() - judged.keys()),
        source=data.source,
    )


def _trec_order(scores: dict[str, float]) -> list[str]:
    """Doc ids as trec_eval ranks them: score descending, then docno descending by strcmp."""
    return sorted(scores, key=lambda d: (scores[d], d.encode()), reverse=True)


def write_trec_run(
    path: str | Path,
    data: LetorData,
    scores: np.ndarray,
    tag: str = "ltr",
    *,
    data_path: str | Path = "the data file",
) -> None:
    """Write ``scores`` as a TREC run, each query in the order trec_eval and
    :func:`read_trec_run` rank it (score descending, tied scores by docid descending), so the
    ``rank`` column matches the evaluation. Logs one warning when some query has tied scores:
    there the run's order differs from the file order ltr's metrics keep for a scores file.

    Raises:
        DataFormatError: ``data`` (named ``data_path``) lacks doc ids or lists one twice in a
            query: a run names documents by docid, so it could not be evaluated.
    """
    doc_ids = _checked_doc_ids(data, data_path, hint="; use --format scores")
    tied_queries = 0
    with atomic_open(path) as handle:
        for q, qid in enumerate(data.query_ids):
            start, end = int(data.query_offsets[q]), int(data.query_offsets[q + 1])
            # float64 values as written (repr round-trips), so the reader sees the same ties
            query = {str(doc_ids[i]): float(scores[i]) for i in range(start, end)}
            tied_queries += len(set(query.values())) < len(query)
            for rank, doc_id in enumerate(_trec_order(query), start=1):
                handle.write(f"{qid} Q0 {doc_id} {rank} {query[doc_id]!r} {tag}\n")
    if tied_queries:
        logger.warning(
            "%s: %d of %d queries have tied scores: the TREC run orders tied documents by docid "
            "descending (as trec_eval does), while a scores file keeps them in file order, so "
            "the two formats can evaluate differently",
            path,
            tied_queries,
            data.n_queries,
        )


def _parse_run_line(path: Path, line_no: int, parts: Sequence[str]) -> tuple[str, str, float]:
    if len(parts) != 6:
        raise DataFormatError(
            path,
            line_no,
            f"a run line must be 'qid Q0 docid rank score tag'; got {len(parts)} fields",
        )
    try:
        score = float(parts[4])
    except ValueError:
        raise DataFormatError(path, line_no, f"score must be a number; got {parts[4]!r}") from None
    if not np.isfinite(score):
        raise DataFormatError(path, line_no, f"score must be finite; got {parts[4]!r}")
    return parts[0], parts[2], score


def _text_lines(path: Path, what: str) -> list[str]:
    """The file's lines, gunzipped when it starts with the gzip magic, decoded as UTF-8."""
    if not path.is_file():
        raise DataNotFoundError(f"{what} {path} {missing_file(path)}")
    with open_binary(path) as handle:  # the data files' reader: gzip by magic, damage named
        raw = handle.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line_no = raw.count(b"\n", 0, error.start) + 1
        raise DataFormatError(
            path, line_no, f"the file must be UTF-8 text; got byte 0x{raw[error.start]:02x}"
        ) from None
    lines = text.split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def _judgments(data: LetorData, data_path: str | Path) -> dict[str, dict[str, float]]:
    """qid -> docid -> label, refusing what a run could not be matched against."""
    doc_ids = _checked_doc_ids(data, data_path, hint="")
    judged: dict[str, dict[str, float]] = {}
    for q, qid in enumerate(data.query_ids.tolist()):
        start, end = int(data.query_offsets[q]), int(data.query_offsets[q + 1])
        labels = data.labels[start:end].tolist()
        judged[qid] = dict(zip(doc_ids[start:end].tolist(), labels, strict=True))
    return judged


def _checked_doc_ids(data: LetorData, data_path: str | Path, hint: str) -> np.ndarray:
    """Doc ids unique within each query, so that a run line names exactly one document."""
    if data.doc_ids is None or not all(data.doc_ids):
        raise DataFormatError(
            data_path,
            None,
            f"a TREC run names documents by docid, but some lines lack a '#docid =' comment{hint}",
        )
    for q, qid in enumerate(data.query_ids.tolist()):
        ids = data.doc_ids[int(data.query_offsets[q]) : int(data.query_offsets[q + 1])]
        unique, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise DataFormatError(
                data_path,
                None,
                f"qid {qid} lists docid {unique[counts > 1][0]} more than once; "
                f"a run cannot name one of them{hint}",
            )
    return data.doc_ids
