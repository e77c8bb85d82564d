"""LETOR / SVMlight ranking files: read, write, cache.

A LETOR line is ``<label> qid:<query id> <index>:<value> ... # comment``. Conventions:

- feature indices start at 1 and may come in any order; an absent feature is 0.0 (sparse lines);
- the lines of one query are contiguous; queries keep file order;
- ``#docid = X`` in the comment gives the document id (MQ2007/MQ2008 carry one on every line);
  every data line has one or none does (a line without one among lines with one is an error);
- query and document ids are UTF-8: an id in another encoding (Latin-1) is an error, never
  replaced by U+FFFD;
- blank lines and comment-only lines are skipped, but still count for line numbers in errors;
- plain text or gzip (detected by the magic bytes; a name ending in ``.gz`` must be gzip),
  LF or CRLF line endings;
- the LightGBM layout has no ``qid:``; a ``<data>.query`` file holds the size of each query.

Values are parsed as float64 and then rounded to float32, as scikit-learn's reader does. The
parser itself (chunked and vectorized, with a line-by-line path for exact errors) lives in
:mod:`ltr.data._letor_parser`; the binary cache in :mod:`ltr.data.cache`.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

import numpy as np

from ltr._fs import atomic_open
from ltr.data._letor_parser import Layout, label_problem, missing_qid, open_binary, read_rows
from ltr.errors import ConfigError, DataFormatError, DataNotFoundError

logger = logging.getLogger(__name__)

__all__ = [
    "Layout",
    "LetorData",
    "default_query_path",
    "load_letor",
    "read_letor",
    "read_lightgbm",
    "warn_if_narrower",
    "write_letor",
]


@dataclass(frozen=True, eq=False)
class LetorData:
    """A ranking data set as flat arrays, documents of one query contiguous.

    Equality is identity (``a == b`` only for the same object) and instances hash by identity:
    comparing array fields element-wise has no single truth value.

    Attributes:
        features: ``float32 [n_docs, n_features]``; a feature absent from a sparse line is 0.
        labels: ``float32 [n_docs]`` graded relevance, 0 = not relevant.
        query_ids: ``str [n_queries]`` in file order.
        query_offsets: ``int64 [n_queries + 1]``; query ``q`` owns rows
            ``query_offsets[q]:query_offsets[q + 1]``.
        doc_ids: ``str [n_docs]`` from ``#docid = X`` comments, or None when the file has none.
        source: what warnings call the data: the file's name (:func:`load_letor`), or None
            (``the batch``) for data made in memory.
    """

    features: np.ndarray
    labels: np.ndarray
    query_ids: np.ndarray
    query_offsets: np.ndarray
    doc_ids: np.ndarray | None = None
    source: str | None = None

    @property
    def n_docs(self) -> int:
        return int(self.features.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    @property
    def n_queries(self) -> int:
        return int(self.query_offsets.shape[0] - 1)

    @property
    def list_lengths(self) -> np.ndarray:
        """``int64 [n_queries]`` documents per query."""
        return np.diff(self.query_offsets)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def read_letor(path: str | Path, *, n_features: int | None = None) -> LetorData:
    """Parse a LETOR file (``label qid:Q idx:val ... # comment``), plain or gzip.

    Args:
        path: the text file; gzip is detected from its first bytes.
        n_features: the exact width; an index above it is an error. None: the largest index.

    Returns:
        :class:`LetorData` with ``features [n_docs, n_features]`` float32 (C-contiguous),
        ``labels [n_docs]`` float32, string ``query_ids`` in file order, ``doc_ids`` from
        ``#docid = X`` comments or None.

    Raises:
        ConfigError: ``n_features`` below 1.
        DataNotFoundError: the file does not exist or is a directory.
        DataFormatError: the first bad line, as ``path:line: problem``; a truncated or corrupt
            gzip file, as ``path: problem``.
    """
    path = Path(path)
    _check_n_features(n_features)
    rows = read_rows(path, "letor", n_features)
    offsets = np.zeros(len(rows.query_sizes) + 1, dtype=np.int64)
    np.cumsum(rows.query_sizes, out=offsets[1:])
    query_ids = np.array(rows.query_ids, dtype=str)
    return LetorData(rows.features, rows.labels, query_ids, offsets, rows.doc_ids)


def read_lightgbm(
    path: str | Path, query_path: str | Path | None = None, *, n_features: int | None = None
) -> LetorData:
    """Parse LightGBM's ranking layout: rows without ``qid:`` plus a file of query sizes.

    Args:
        path: the data file (``label idx:val ...``), plain or gzip.
        query_path: one query size per line, in row order. Default: see
            :func:`default_query_path`.
        n_features: the exact width, as in :func:`read_letor`.

    Returns:
        :class:`LetorData` whose query ids are ``"0", "1", ...`` in order.

    Raises:
        ConfigError: ``n_features`` below 1.
        DataNotFoundError: the data or query file does not exist.
        DataFormatError: a bad line, or query sizes that do not sum to the number of rows.
    """
    path = Path(path)
    _check_n_features(n_features)
    query_path = Path(query_path) if query_path is not None else default_query_path(path)
    if query_path is None:
        raise DataNotFoundError(f"query file not found for {path}: expected {path}.query")
    sizes = _read_query_sizes(query_path)
    rows = read_rows(path, "lightgbm", n_features)
    if int(sizes.sum()) != rows.labels.shape[0]:
        raise DataFormatError(
            query_path,
            None,
            f"query sizes must sum to the number of rows of {path.name}; "
            f"got {int(sizes.sum())} for {rows.labels.shape[0]} rows",
        )
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    query_ids = np.arange(len(sizes)).astype(str)
    return LetorData(rows.features, rows.labels, query_ids, offsets, rows.doc_ids)


def default_query_path(path: str | Path) -> Path | None:
    """LightGBM's query file for ``path``, or None when there is none.

    ``rank.train.gz`` -> ``rank.train.query.gz`` if present, else ``rank.train.query``;
    ``rank.train`` -> ``rank.train.query``.
    """
    path = Path(path)
    candidates = [path.with_name(path.name + ".query")]
    if path.name.endswith(".gz"):
        stem = path.name[: -len(".gz")]
        candidates = [path.with_name(stem + ".query.gz"), path.with_name(stem + ".query")]
    return next((c for c in candidates if c.is_file()), None)


def load_letor(
    path: str | Path,
    *,
    n_features: int | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
) -> LetorData:
    """Read a ranking file in either layout, through the binary cache.

    The layout is taken from the first data line: with ``qid:`` it is LETOR; without, it is
    LightGBM's when a ``.query`` file lies beside the data (:func:`default_query_path`).

    Args:
        path: LETOR or LightGBM data file, plain or gzip.
        n_features: the exact width; None: the largest index in the file.
        cache_dir: where parsed arrays are kept; default ``$LTR_CACHE_DIR`` or ``~/.cache/ltr``.
        use_cache: False parses the text every time and leaves the cache alone.

    Returns:
        :class:`LetorData`, as :func:`read_letor` or :func:`read_lightgbm` return it.

    Raises:
        ConfigError: ``n_features`` below 1.
        DataNotFoundError: the file does not exist.
        DataFormatError: the first bad line; ``missing qid:`` when a line has no qid and
            there is no query file.
    """
    from ltr.data.cache import cached_parse  # cache imports LetorData from here

    path = Path(path)
    _check_n_features(n_features)
    query_path = _detect_query_path(path)
    sources = [path] if query_path is None else [path, query_path]
    layout: Layout = "letor" if query_path is None else "lightgbm"

    def parse() -> LetorData:
        if query_path is None:
            return read_letor(path, n_features=n_features)
        return read_lightgbm(path, query_path, n_features=n_features)

    if use_cache:
        key_extra = f"layout={layout};n_features={n_features}"
        data = cached_parse(sources, parse, cache_dir=cache_dir, key_extra=key_extra)
    else:
        data = parse()
    return replace(data, source=path.name)  # warnings name the file, not "the batch"


def warn_if_narrower(data: LetorData, reader: str) -> None:
    """Warn when the last features of ``data`` are 0 in every line: read zero-padded to the
    width of ``reader`` (``"the model"``, ``"the training file train.txt"``), which is how a
    sparse file leaves out zeros, but also how another data set with fewer features looks."""
    used = np.flatnonzero((data.features != 0).any(axis=0))
    width = int(used[-1]) + 1 if used.size else 0
    if data.n_docs == 0 or width >= data.n_features:
        return
    if width + 1 == data.n_features:
        unused = f"feature {data.n_features} is"
    else:
        unused = f"features {width + 1}-{data.n_features} are"
    logger.warning(
        "%s: %s 0 or absent in every line, while %s has %d features; is it the same kind of data?",
        data.source or "the data",
        unused,
        reader,
        data.n_features,
    )


def write_letor(path: str | Path, data: LetorData, *, sparse: bool = False) -> None:
    """Write ``data`` as a LETOR file, atomically; gzip when the name ends with ``.gz``.

    Floats are written in the shortest form that reads back to the same float32 (``%.9g`` when
    that form would not), labels as integers when integral, ``#docid = X`` when ``doc_ids`` is
    set. The gzip header holds no name or time, so equal data gives equal bytes.

    Args:
        path: target file.
        data: what to write.
        sparse: leave out zero features; the first line always carries the last index, so the
            width reads back unchanged.

    Raises:
        DataFormatError: a query id or doc id contains whitespace (it could not be read back).
    """
    path = Path(path)
    _check_writable_ids(path, data)
    with atomic_open(path, "wb") as handle:
        if path.name.endswith(".gz"):
            with gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0) as zipped:
                _write_lines(zipped, data, sparse)
        else:
            _write_lines(handle, data, sparse)


# --------------------------------------------------------------------------------------------
# Layouts: qid or a LightGBM query file
# --------------------------------------------------------------------------------------------


def _read_query_sizes(path: Path) -> np.ndarray:
    """``int64 [n_queries]`` from a LightGBM ``.query`` file (one positive integer a line)."""
    with open_binary(path) as handle:
        lines = handle.read().decode("utf-8", errors="replace").splitlines()
    sizes = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        if not text.isdigit() or int(text) == 0:
            raise DataFormatError(
                path, number, f"a query size must be a positive integer; got {text!r}"
            )
        sizes.append(int(text))
    if not sizes:
        raise DataFormatError(
            path, None, "the query file has no sizes; expected one integer a line"
        )
    return np.array(sizes, dtype=np.int64)


def _detect_query_path(path: Path) -> Path | None:
    """None for the LETOR layout, else the LightGBM query file (see :func:`load_letor`)."""
    first = _first_data_line(path)
    if first is None:
        return None  # read_letor reports the empty file
    number, tokens = first
    if len(tokens) > 1 and tokens[1].startswith(b"qid:"):
        return None
    query_path = default_query_path(path)
    if query_path is None:
        problem = label_problem(tokens[0])
        if problem is not None:  # not ranking data at all: a missing qid would mislead
            raise DataFormatError(path, number, problem)
        got = tokens[1].decode(errors="replace") if len(tokens) > 1 else "nothing"
        raise DataFormatError(path, number, missing_qid(got, path))
    return query_path


def _first_data_line(path: Path) -> tuple[int, list[bytes]] | None:
    with open_binary(path) as handle:
        for number, line in enumerate(handle, start=1):
            tokens = line.partition(b"#")[0].split()
            if tokens:
                return number, tokens
    return None


def _check_n_features(n_features: int | None) -> None:
    if n_features is not None and n_features < 1:
        raise ConfigError(
            f"n_features must be at least 1 (or None: the widest line); got {n_features}"
        )


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _check_writable_ids(path: Path, data: LetorData) -> None:
    for kind, ids in (("query id", data.query_ids), ("doc id", data.doc_ids)):
        if ids is None:
            continue
        for i, value in enumerate(np.asarray(ids, dtype=str).tolist()):
            if not value or any(c.isspace() for c in value) or "#" in value:
                raise DataFormatError(
                    path,
                    None,
                    f"a {kind} must be non-empty without whitespace or '#' to be written; "
                    f"got {value!r} at position {i}",
                )


def _write_lines(
    handle: IO[bytes] | gzip.GzipFile, data: LetorData, sparse: bool, rows_per_batch: int = 4096
) -> None:
    qid_of_row = np.repeat(np.asarray(data.query_ids, dtype=str), data.list_lengths)
    prefixes = [f"{j}:" for j in range(1, data.n_features + 1)]
    for start in range(0, data.n_docs, rows_per_batch):
        stop = min(start + rows_per_batch, data.n_docs)
        labels = _float_strings(data.labels[start:stop], integers=True)
        values = _float_strings(data.features[start:stop], integers=False).tolist()
        lines = []
        for i, row in enumerate(values):
            if sparse:
                keep = _nonzero_columns(data.features[start + i], force_last=start + i == 0)
                pairs = " ".join(prefixes[j] + row[j] for j in keep)
            else:
                pairs = " ".join(map(str.__add__, prefixes, row))
            line = f"{labels[i]} qid:{qid_of_row[start + i]} {pairs}".rstrip()
            if data.doc_ids is not None:
                line += f" #docid = {data.doc_ids[start + i]}"
            lines.append(line)
        handle.write(("\n".join(lines) + "\n").encode())


def _nonzero_columns(row: np.ndarray, force_last: bool) -> list[int]:
    keep = (row != 0) | np.signbit(row)  # -0.0 is written, so it reads back bit-identical
    if force_last and row.size:
        keep[-1] = True
    return np.flatnonzero(keep).tolist()


def _float_strings(values: np.ndarray, *, integers: bool) -> np.ndarray:
    """Shortest text reading back (via float64) to the same float32; ``%.9g`` otherwise."""
    values = np.asarray(values, dtype=np.float32)
    text = values.astype(str)
    if integers:
        whole = (values == np.round(values)) & (np.abs(values) < 2**31) & ~np.signbit(values)
        text[whole] = values[whole].astype(np.int64).astype(str)
    back = text.astype(np.float64).astype(np.float32)
    wrong = back.view(np.uint32) != values.view(np.uint32)
    if wrong.any():
        text = text.astype(object)
        text[wrong] = [f"{v:.9g}" for v in values[wrong].tolist()]
        text = text.astype(str)
    return text
