"""Score files and TREC run files: how rankings leave ltr and come back to be evaluated.

Two layouts, both plain text:

- *scores*: one float per line, aligned with the data lines of a LETOR file (the LightGBM and
  RankLib convention). Blank lines are errors: the alignment is the whole point of the format.
- *TREC run*: ``qid Q0 docid rank score tag`` per line (trec_eval's input). Documents are matched
  to the data file by ``(qid, docid)``; the ``rank`` column is informational, ``score`` decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ltr._fs import atomic_open
from ltr.data.letor import LetorData
from ltr.errors import DataFormatError, DataNotFoundError


def read_scores(path: str | Path, expected: int | None = None) -> np.ndarray:
    """Read one score per line.

    Args:
        path: the score file.
        expected: the number of scores the caller needs (the data file's documents).

    Returns:
        ``float64 [n]`` scores in file order.

    Raises:
        DataFormatError: a line is not one finite float, or the count differs from ``expected``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"score file {path} does not exist")
    scores: list[float] = []
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
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


def read_trec_run(path: str | Path, data: LetorData) -> tuple[np.ndarray, int]:
    """Read a TREC run and align its scores with ``data``'s documents.

    Documents of ``data`` that the run does not list get ``-inf`` (ranked last, in file order,
    as trec_eval treats unretrieved documents: they never count as retrieved).

    Returns:
        ``(scores float64 [n_docs], n_missing)``.

    Raises:
        DataFormatError: a malformed line, a non-finite score, a (qid, docid) listed twice, or a
            data file without doc ids.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"run file {path} does not exist")
    if data.doc_ids is None:
        raise DataFormatError(
            path,
            None,
            "a TREC run is matched by docid, but the data file has no '#docid =' comments",
        )
    position = _document_positions(data)
    scores = np.full(data.n_docs, -np.inf)
    seen = np.zeros(data.n_docs, dtype=bool)
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            qid, docid, score = _parse_run_line(path, line_no, parts)
            row = position.get((qid, docid))
            if row is None:
                continue  # a document the data file does not judge: trec_eval ignores it too
            if seen[row]:
                raise DataFormatError(path, line_no, f"qid {qid} docid {docid} is listed twice")
            seen[row] = True
            scores[row] = score
    return scores, int((~seen).sum())


def write_trec_run(path: str | Path, data: LetorData, scores: np.ndarray, tag: str = "ltr") -> None:
    """Write ``scores`` as a TREC run (ranks from a stable descending sort per query)."""
    doc_ids = _doc_ids_or_positions(data)
    with atomic_open(path) as handle:
        for q, qid in enumerate(data.query_ids):
            start, end = int(data.query_offsets[q]), int(data.query_offsets[q + 1])
            order = np.argsort(-scores[start:end], kind="stable")
            for rank, i in enumerate(order, start=1):
                handle.write(
                    f"{qid} Q0 {doc_ids[start + i]} {rank} {float(scores[start + i])!r} {tag}\n"
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


def _document_positions(data: LetorData) -> dict[tuple[str, str], int]:
    assert data.doc_ids is not None
    qid_per_doc = np.repeat(data.query_ids, data.list_lengths)
    return {
        (str(q), str(d)): i for i, (q, d) in enumerate(zip(qid_per_doc, data.doc_ids, strict=True))
    }


def _doc_ids_or_positions(data: LetorData) -> np.ndarray:
    """Doc ids from the data file, or ``<row>`` (0-based line among data lines) when it has none."""
    if data.doc_ids is not None:
        return data.doc_ids
    return np.arange(data.n_docs).astype(str)
