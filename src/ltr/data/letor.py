"""LETOR / SVMlight ranking files: read, write, cache.

A LETOR line is ``<label> qid:<query id> <index>:<value> ... # comment``. Conventions:

- feature indices start at 1 and may come in any order; an absent feature is 0.0 (sparse lines);
- the lines of one query are contiguous; queries keep file order;
- ``#docid = X`` in the comment gives the document id (MQ2007/MQ2008 carry one on every line);
- blank lines and comment-only lines are skipped, but still count for line numbers in errors;
- plain text or gzip (detected by the magic bytes), LF or CRLF line endings;
- the LightGBM layout has no ``qid:``; a ``<data>.query`` file holds the size of each query.

Speed: the text is streamed in chunks of a few MiB cut at line boundaries. Each chunk is parsed
with vectorized numpy byte operations (token boundaries, ``index:value`` pairs, decimal numbers
turned into integer mantissas and exact float64 divisions by powers of ten, which is what
``strtod`` returns). Anything unusual in a chunk (an error, or a number such as ``1e-5``) sends that
chunk through a plain line-by-line parser, which raises the precise error or parses it slowly.
Values are parsed as float64 and then rounded to float32, as scikit-learn's reader does.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, NamedTuple

import numpy as np

from ltr._fs import atomic_open
from ltr.errors import DataFormatError, DataNotFoundError

Layout = Literal["letor", "lightgbm"]

_CHUNK_BYTES = 4 << 20  # big enough to amortize numpy call overhead, small enough for the cache
_PAD = 64  # spaces after a chunk, so fixed-width windows never run off its end
_MAX_DIGITS = 15  # integer mantissas up to 15 digits are exact in float64 (< 2**53)
_POW10 = 10.0 ** np.arange(_PAD)
_DOC_ID = re.compile(rb"#[^\n]*?\bdocid[ \t]*=[ \t]*([^\s#]+)")
_MAX_INDEX = 1_000_000  # features are stored dense; a bigger index is almost surely a typo
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class LetorData:
    """A ranking data set as flat arrays, documents of one query contiguous.

    Attributes:
        features: ``float32 [n_docs, n_features]``; a feature absent from a sparse line is 0.
        labels: ``float32 [n_docs]`` graded relevance, 0 = not relevant.
        query_ids: ``str [n_queries]`` in file order.
        query_offsets: ``int64 [n_queries + 1]``; query ``q`` owns rows
            ``query_offsets[q]:query_offsets[q + 1]``.
        doc_ids: ``str [n_docs]`` from ``#docid = X`` comments, or None when the file has none.
    """

    features: np.ndarray
    labels: np.ndarray
    query_ids: np.ndarray
    query_offsets: np.ndarray
    doc_ids: np.ndarray | None = None

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
        DataNotFoundError: the file does not exist.
        DataFormatError: the first bad line, as ``path:line: problem``.
    """
    path = Path(path)
    _check_n_features(n_features)
    rows = _read_rows(path, "letor", n_features)
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
        DataNotFoundError: the data or query file does not exist.
        DataFormatError: a bad line, or query sizes that do not sum to the number of rows.
    """
    path = Path(path)
    _check_n_features(n_features)
    query_path = Path(query_path) if query_path is not None else default_query_path(path)
    if query_path is None:
        raise DataNotFoundError(f"query file not found for {path}: expected {path}.query")
    sizes = _read_query_sizes(query_path)
    rows = _read_rows(path, "lightgbm", n_features)
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

    if not use_cache:
        return parse()
    key_extra = f"layout={layout};n_features={n_features}"
    return cached_parse(sources, parse, cache_dir=cache_dir, key_extra=key_extra)


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
# Reading: chunks, the query tracker, assembling blocks
# --------------------------------------------------------------------------------------------


class _Block(NamedTuple):
    """One parsed chunk: ``features [rows, width]`` float32, ``labels [rows]`` float32."""

    features: np.ndarray
    labels: np.ndarray
    runs: list[tuple[str, int, int]]  # (qid, line number of first row, rows), file order
    doc_ids: list[str] | None  # one per row, "" where a row has none; None: no row has one


class _Rows(NamedTuple):
    features: np.ndarray
    labels: np.ndarray
    query_ids: list[str]
    query_sizes: list[int]
    doc_ids: np.ndarray | None


class _QueryTracker:
    """Joins runs of equal qids across chunks and rejects a query that comes back later."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.first_line: dict[str, int] = {}
        self.query_ids: list[str] = []
        self.sizes: list[int] = []

    def add_runs(self, runs: list[tuple[str, int, int]]) -> None:
        for qid, line, rows in runs:
            if self.query_ids and self.query_ids[-1] == qid:
                self.sizes[-1] += rows
            elif qid in self.first_line:
                raise DataFormatError(
                    self.path,
                    line,
                    f"the lines of a query must be contiguous; qid:{qid} was first seen on "
                    f"line {self.first_line[qid]} and appears again after other queries",
                )
            else:
                self.first_line[qid] = line
                self.query_ids.append(qid)
                self.sizes.append(rows)


def _read_rows(path: Path, layout: Layout, n_features: int | None) -> _Rows:
    tracker = _QueryTracker(path)
    blocks: list[_Block] = []
    for first_line, raw in _iter_chunks(path):
        block = _parse_chunk_fast(raw, first_line, layout, n_features)
        if block is None:
            block = _parse_chunk_slow(raw, first_line, layout, n_features, path, tracker)
        else:
            tracker.add_runs(block.runs)
        if block.labels.shape[0]:
            blocks.append(block)
    if not blocks:
        example = "<label> qid:<id> <index>:<value> ..." if layout == "letor" else "<label> ..."
        raise DataFormatError(path, None, f"the file has no data lines; expected '{example}'")
    doc_ids = _join_doc_ids(blocks)
    labels = np.concatenate([b.labels for b in blocks])
    features = _stack_features(blocks, n_features)
    return _Rows(features, labels, tracker.query_ids, tracker.sizes, doc_ids)


def _stack_features(blocks: list[_Block], n_features: int | None) -> np.ndarray:
    """One ``float32 [rows, width]`` array; each block is dropped once copied (peak memory)."""
    width = n_features if n_features is not None else max(b.features.shape[1] for b in blocks)
    out = np.zeros((sum(b.labels.shape[0] for b in blocks), width), dtype=np.float32)
    start = 0
    while blocks:
        block = blocks.pop(0)
        rows, cols = block.features.shape
        out[start : start + rows, :cols] = block.features
        start += rows
        del block
    return out


def _join_doc_ids(blocks: list[_Block]) -> np.ndarray | None:
    if all(b.doc_ids is None for b in blocks):
        return None
    ids: list[str] = []
    for b in blocks:
        ids.extend(b.doc_ids if b.doc_ids is not None else [""] * b.labels.shape[0])
    return np.array(ids, dtype=str)


def _open_binary(path: Path) -> IO[bytes] | gzip.GzipFile:
    """The file's bytes, decompressed when it starts with the gzip magic."""
    if not path.is_file():
        raise DataNotFoundError(f"data file not found: {path}")
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rb")
    return open(path, "rb")


def _iter_chunks(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line number of the chunk's first line, bytes)``; every chunk ends with LF."""
    first_line, carry = 1, b""
    with _open_binary(path) as handle:
        size = _chunk_size(path)
        while data := handle.read(size):
            buffer = carry + data
            cut = buffer.rfind(b"\n") + 1
            if cut:
                yield first_line, buffer[:cut]
                first_line += buffer.count(b"\n", 0, cut)
            carry = buffer[cut:]
    if carry.strip():
        yield first_line, carry + b"\n"


def _chunk_size(path: Path) -> int:
    """About 1/32 of the text, within [64 KiB, ``_CHUNK_BYTES``]: chunk temporaries then stay
    small next to the parsed arrays, also for small files."""
    text_bytes = path.stat().st_size
    with open(path, "rb") as handle:
        if handle.read(2) == _GZIP_MAGIC:
            handle.seek(-4, os.SEEK_END)  # gzip's trailer: uncompressed size modulo 2**32
            text_bytes = max(text_bytes, int.from_bytes(handle.read(4), "little"))
    return min(_CHUNK_BYTES, max(64 << 10, text_bytes // 32))


def _read_query_sizes(path: Path) -> np.ndarray:
    """``int64 [n_queries]`` from a LightGBM ``.query`` file (one positive integer a line)."""
    with _open_binary(path) as handle:
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
        got = tokens[1].decode(errors="replace") if len(tokens) > 1 else "nothing"
        raise DataFormatError(path, number, _missing_qid(got, path))
    return query_path


def _first_data_line(path: Path) -> tuple[int, list[bytes]] | None:
    with _open_binary(path) as handle:
        for number, line in enumerate(handle, start=1):
            tokens = line.partition(b"#")[0].split()
            if tokens:
                return number, tokens
    return None


def _missing_qid(got: str, path: Path) -> str:
    return (
        f"missing qid: the label must be followed by qid:<query id>; got {got!r} "
        f"(a file without qid needs a LightGBM query file {path.name}.query)"
    )


def _check_n_features(n_features: int | None) -> None:
    if n_features is not None and n_features < 1:
        raise ValueError(f"n_features must be at least 1; got {n_features}")


# --------------------------------------------------------------------------------------------
# Fast path: one chunk with vectorized byte operations
# --------------------------------------------------------------------------------------------


class _Tokens(NamedTuple):
    """Whitespace tokens of a chunk outside comments, positions in the padded byte array."""

    starts: np.ndarray  # int64 [tokens]
    ends: np.ndarray  # int64 [tokens], exclusive
    line_of_row: np.ndarray  # int64 [rows]: index of the line holding each data row
    first: np.ndarray  # int64 [rows]: token index of each row's label


def _parse_chunk_fast(
    raw: bytes, first_line: int, layout: Layout, n_features: int | None
) -> _Block | None:
    """Parse a chunk of whole lines; None when anything needs the line-by-line parser."""
    a, newlines = _padded_bytes(raw)
    white = _is_whitespace(a)
    comments = _comment_spans(a, newlines, white)
    if comments is None:
        return None
    tokens = _split_tokens(white, newlines, comments)
    if tokens.first.size == 0:
        return _Block(np.zeros((0, 0), np.float32), np.zeros(0, np.float32), [], None)
    pairs = _split_pairs(a, tokens, comments)
    if pairs is None:
        return None
    keys, values, pairs_per_row = pairs
    runs: list[tuple[str, int, int]] = []
    if layout == "letor":
        qid_pair = np.cumsum(pairs_per_row) - pairs_per_row  # the first pair of every row
        if (pairs_per_row == 0).any() or not _keys_are_qid(a, keys, qid_pair):
            return None
        qid_runs = _qid_runs(a, values[0][qid_pair], values[1][qid_pair], tokens, first_line)
        if qid_runs is None:
            return None
        runs = qid_runs
        keep = np.ones(keys[0].shape[0], dtype=bool)
        keep[qid_pair] = False
        starts, colons, ends = keys[0][keep], keys[1][keep], values[1][keep]
        keys, values = (starts, colons), (colons + 1, ends)
        pairs_per_row = pairs_per_row - 1
    labels = _parse_numbers(a, tokens.starts[tokens.first], tokens.ends[tokens.first])
    indices = _parse_indices(a, *keys)
    numbers = _parse_numbers(a, *values)
    if labels is None or indices is None or numbers is None:
        return None
    features = _place_features(indices, numbers, pairs_per_row, labels, n_features)
    if features is None:
        return None
    doc_ids = _doc_ids_of_rows(*_find_doc_ids(raw, newlines), tokens.line_of_row)
    return _Block(features, labels.astype(np.float32), runs, doc_ids)


def _padded_bytes(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """``uint8`` copy with ``_PAD`` spaces before and after (so fixed-width windows of a field
    never leave the array); positions of LF."""
    a = np.full(len(raw) + 2 * _PAD, 32, dtype=np.uint8)
    a[_PAD : len(raw) + _PAD] = np.frombuffer(raw, dtype=np.uint8)
    return a, np.flatnonzero(a == 10)


def _is_whitespace(a: np.ndarray) -> np.ndarray:
    """What ``bytes.split()`` splits on: space, TAB, LF, VT, FF, CR (9..13)."""
    white: np.ndarray = ((a - np.uint8(9)) <= 4) | (a == 32)
    return white


def _comment_spans(
    a: np.ndarray, newlines: np.ndarray, white: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(start, end)`` of each line's comment (first ``#`` to LF); None if a ``#`` touches
    a token (``1:0.5#x``), which the line parser handles."""
    hashes = np.flatnonzero(a == ord("#"))
    if hashes.size == 0:
        return hashes, hashes
    line = np.searchsorted(newlines, hashes)
    first = np.ones(hashes.size, dtype=bool)
    first[1:] = line[1:] != line[:-1]
    starts = hashes[first]
    if not white[starts - 1].all():
        return None
    return starts, newlines[line[first]]


def _outside(sorted_positions: np.ndarray, spans: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Bool mask of the positions that fall in none of the (disjoint, sorted) spans."""
    low = np.searchsorted(sorted_positions, spans[0])
    high = np.searchsorted(sorted_positions, spans[1])
    keep = np.ones(sorted_positions.shape[0], dtype=bool)
    counts = high - low
    if counts.sum():
        inside = np.repeat(low - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        keep[inside] = False
    return keep


def _split_tokens(
    white: np.ndarray, newlines: np.ndarray, comments: tuple[np.ndarray, np.ndarray]
) -> _Tokens:
    edges = np.flatnonzero(white[:-1] != white[1:]) + 1  # the bytes start and end in white
    starts, ends = edges[0::2], edges[1::2]
    if comments[0].size:
        keep = _outside(starts, comments)
        starts, ends = starts[keep], ends[keep]
    per_line = np.diff(np.searchsorted(starts, newlines), prepend=0)
    line_of_row = np.flatnonzero(per_line)
    first = np.cumsum(per_line)[line_of_row] - per_line[line_of_row]
    return _Tokens(starts, ends, line_of_row, first)


def _split_pairs(
    a: np.ndarray, tokens: _Tokens, comments: tuple[np.ndarray, np.ndarray]
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], np.ndarray] | None:
    """``(key starts, ends), (value starts, ends), pairs per row``; None unless every token
    after a label holds exactly one ``:`` with text on both sides."""
    colons = np.flatnonzero(a == ord(":"))
    if comments[0].size:
        colons = colons[_outside(colons, comments)]
    is_pair = np.ones(tokens.starts.shape[0], dtype=bool)
    is_pair[tokens.first] = False
    starts, ends = tokens.starts[is_pair], tokens.ends[is_pair]
    # As many colons as pair tokens, the k-th strictly inside the k-th token: as both are
    # sorted and tokens are disjoint, no token holds two colons and no label holds one.
    if colons.shape[0] != starts.shape[0] or not ((starts < colons) & (colons + 1 < ends)).all():
        return None
    row_ends = np.append(tokens.first[1:], tokens.starts.shape[0])
    pairs_per_row = row_ends - tokens.first - 1
    return (starts, colons), (colons + 1, ends), pairs_per_row


def _keys_are_qid(a: np.ndarray, keys: tuple[np.ndarray, np.ndarray], picked: np.ndarray) -> bool:
    starts, ends = keys[0][picked], keys[1][picked]
    return bool(
        (ends - starts == 3).all()
        and (a[starts] == ord("q")).all()
        and (a[starts + 1] == ord("i")).all()
        and (a[starts + 2] == ord("d")).all()
    )


def _qid_runs(
    a: np.ndarray, starts: np.ndarray, ends: np.ndarray, tokens: _Tokens, first_line: int
) -> list[tuple[str, int, int]] | None:
    """Runs of equal qids in row order: ``(qid, line number of the run's first row, rows)``."""
    lengths = ends - starts
    width = int(lengths.max())
    if width > _PAD:
        return None
    fields = np.lib.stride_tricks.sliding_window_view(a, width)[starts]
    fields[np.arange(width) >= lengths[:, None]] = 0  # "S" arrays compare without the zeros
    qids = fields.view(f"S{width}").ravel()
    new_run = np.ones(qids.shape[0], dtype=bool)
    new_run[1:] = qids[1:] != qids[:-1]
    run_starts = np.flatnonzero(new_run)
    sizes = np.diff(np.append(run_starts, qids.shape[0]))
    lines = tokens.line_of_row[run_starts] + first_line
    names = [q.decode("utf-8", errors="replace") for q in qids[run_starts].tolist()]
    return list(zip(names, lines.tolist(), sizes.tolist(), strict=True))


def _parse_indices(a: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray | None:
    """``int64 [n]`` of fields made of 1 to 9 digits; None if any field is something else.

    Digits are read right to left, one column (place value) at a time, for all fields at once.
    """
    lengths = ends - starts
    width = int(lengths.max()) if lengths.size else 0
    if width > 9:
        return None
    base = ends - _PAD  # a[_PAD - 1 - k:][base] is the k-th character from a field's end
    number = np.zeros(starts.shape[0], dtype=np.int64)
    worst = np.zeros(starts.shape[0], dtype=np.uint8)
    for k in range(width):
        digit = a[_PAD - 1 - k :][base] - np.uint8(48)
        if k:
            digit *= lengths > k  # left of a shorter field: not part of it
        np.maximum(worst, digit, out=worst)
        number += digit * np.int64(10**k)  # int64: uint8 arithmetic would wrap
    return number if not (worst > 9).any() else None


def _parse_numbers(
    a: np.ndarray, starts: np.ndarray, ends: np.ndarray, *, integer: bool = False
) -> np.ndarray | None:
    """``float64 [n]`` of the number fields ``a[starts:ends]``; None on a bad field.

    ``integer``: only plain digit strings are accepted. Fields are handled in groups of
    equal width, so each group is a fixed-width ``uint8`` matrix (see :func:`_parse_width`).
    """
    out = np.empty(starts.shape[0], dtype=np.float64)
    lengths = ends - starts
    for width in np.flatnonzero(np.bincount(lengths)).tolist():
        rows = None if lengths[0] == width and lengths.min() == lengths.max() else lengths == width
        group = starts if rows is None else starts[rows]
        values = _parse_width(a, group, width, integer)
        if values is None:
            return None
        if rows is None:
            return values
        out[rows] = values
    return out


def _parse_width(a: np.ndarray, starts: np.ndarray, width: int, integer: bool) -> np.ndarray | None:
    """Numbers of ``width`` characters each, equal to what ``strtod`` returns.

    ``[+-]digits[.digits]`` with at most 15 digits is ``mantissa / 10**decimals``: both are
    exact in float64 and IEEE division rounds once, so the result is correctly rounded.
    Other spellings (``1e-5``, ``nan``, long digit strings) go through ``float()``.
    """
    if width > _MAX_DIGITS:
        return None if integer else _parse_one_by_one(a, starts, width)
    first = a[starts[0] : starts[0] + width].tobytes()
    dot = width if integer or b"." not in first else first.index(b".")
    values = _parse_unsigned(a, starts, width, dot)  # the common case: fields like the first
    if values is not None or integer:
        return values
    fields = np.lib.stride_tricks.sliding_window_view(a, width)[starts]
    return _parse_mixed(a, starts, fields)


def _parse_unsigned(a: np.ndarray, starts: np.ndarray, width: int, dot: int) -> np.ndarray | None:
    """Values of fields ``width`` wide that all are digits with a ``.`` at column ``dot``
    (``width``: no dot); None if any field differs. One column at a time, all fields at once:
    ``mantissa = mantissa * 10 + digit``."""
    if dot < width and not (a[dot:][starts] == ord(".")).all():
        return None
    mantissa = np.zeros(starts.shape[0], dtype=np.int64)
    worst = np.zeros(starts.shape[0], dtype=np.uint8)
    for k in range(width):
        if k != dot:
            digit = a[k:][starts] - np.uint8(48)
            np.maximum(worst, digit, out=worst)
            mantissa *= 10
            mantissa += digit
    if (worst > 9).any():
        return None
    values: np.ndarray = mantissa / _POW10[max(width - 1 - dot, 0)]
    return values


def _parse_mixed(a: np.ndarray, starts: np.ndarray, fields: np.ndarray) -> np.ndarray | None:
    """Fields of one width with signs, dots in different columns, or odd spellings."""
    width = fields.shape[1]
    digits = fields - np.uint8(48)
    is_digit = digits <= 9
    is_dot = fields == ord(".")
    sign = (fields[:, 0] == ord("-")) | (fields[:, 0] == ord("+"))
    odd = ~(is_digit | is_dot)
    odd[:, 0] &= ~sign
    simple = ~odd.any(axis=1) & (is_dot.sum(axis=1) <= 1) & is_digit.any(axis=1)
    dot = np.where(is_dot.any(axis=1), is_dot.argmax(axis=1), width)  # width: no dot
    mantissa = np.zeros(starts.shape[0], dtype=np.int64)
    for column, in_number in zip(digits.T, is_digit.T, strict=True):
        mantissa = np.where(in_number, mantissa * 10 + column, mantissa)
    values: np.ndarray = mantissa / _POW10[np.maximum(width - 1 - dot, 0)]
    values[fields[:, 0] == ord("-")] *= -1.0
    if not simple.all():
        odd_rows = np.flatnonzero(~simple)
        parsed = _parse_one_by_one(a, starts[odd_rows], width)
        if parsed is None:
            return None
        values[odd_rows] = parsed
    return values


def _parse_one_by_one(a: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray | None:
    out = np.empty(starts.shape[0], dtype=np.float64)
    for i, start in enumerate(starts.tolist()):
        value = _to_float(a[start : start + width].tobytes())
        if value is None:
            return None
        out[i] = value
    return out


def _place_features(
    indices: np.ndarray,
    values: np.ndarray,
    pairs_per_row: np.ndarray,
    labels: np.ndarray,
    n_features: int | None,
) -> np.ndarray | None:
    """``float32 [rows, width]`` with every value at its index; None if a check fails."""
    if not (np.isfinite(labels).all() and (labels >= 0).all() and np.isfinite(values).all()):
        return None
    rows = pairs_per_row.shape[0]
    if _is_dense(indices, pairs_per_row, n_features):  # every row lists 1..width in order
        return values.reshape(rows, -1).astype(np.float32)
    width = int(indices.max()) if indices.size else 0
    if indices.size and (indices.min() < 1 or width > _MAX_INDEX):
        return None
    if n_features is not None:
        if width > n_features:
            return None
        width = n_features
    flat = np.repeat(np.arange(rows, dtype=np.int64) * width - 1, pairs_per_row) + indices
    if _has_duplicates(flat, pairs_per_row):
        return None
    features = np.zeros((rows, width), dtype=np.float32)
    features.reshape(-1)[flat] = values
    return features


def _is_dense(indices: np.ndarray, pairs_per_row: np.ndarray, n_features: int | None) -> bool:
    width = int(pairs_per_row[0])
    if width == 0 or (n_features is not None and width != n_features):
        return False
    if not (pairs_per_row == width).all():
        return False
    return bool((indices.reshape(-1, width) == np.arange(1, width + 1)).all())


def _has_duplicates(flat: np.ndarray, pairs_per_row: np.ndarray) -> bool:
    """Whether a row repeats an index; ``flat`` only increases when indices come in order."""
    if (flat[1:] > flat[:-1]).all():  # rows never overlap in ``flat``: row * width + index
        return False
    ordered = np.sort(flat)
    return bool((ordered[1:] == ordered[:-1]).any())


def _find_doc_ids(raw: bytes, newlines: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Lines (indices into ``newlines``) whose comment names a docid, and those ids."""
    found = [(m.start(), m.group(1)) for m in _DOC_ID.finditer(raw)]
    if not found:
        return np.zeros(0, np.int64), []
    lines = np.searchsorted(newlines, np.array([start + _PAD for start, _ in found]))
    first = np.ones(len(found), dtype=bool)  # a second docid on one line is ignored
    first[1:] = lines[1:] != lines[:-1]
    ids = [
        doc.decode("utf-8", errors="replace")
        for (_, doc), keep in zip(found, first, strict=True)
        if keep
    ]
    return lines[first], ids


def _doc_ids_of_rows(
    doc_lines: np.ndarray, doc_values: list[str], line_of_row: np.ndarray
) -> list[str] | None:
    if not doc_values:
        return None
    if np.array_equal(doc_lines, line_of_row):  # the usual case: every data line has one
        return doc_values
    row_of_line = {line: row for row, line in enumerate(line_of_row.tolist())}
    ids = [""] * line_of_row.shape[0]
    for line, value in zip(doc_lines.tolist(), doc_values, strict=True):
        if line in row_of_line:  # a docid on a comment-only line belongs to no row
            ids[row_of_line[line]] = value
    return ids if any(ids) else None


# --------------------------------------------------------------------------------------------
# Slow path: line by line, exact errors
# --------------------------------------------------------------------------------------------


def _parse_chunk_slow(
    raw: bytes,
    first_line: int,
    layout: Layout,
    n_features: int | None,
    path: Path,
    tracker: _QueryTracker,
) -> _Block:
    """Parse line by line; raise :class:`DataFormatError` at the first bad line.

    Queries of the lines before a bad one go to ``tracker`` first, so a non-contiguous query
    above the bad line is the error reported.
    """
    labels: list[float] = []
    rows: list[dict[int, float]] = []
    doc_ids: list[str] = []
    runs: list[tuple[str, int, int]] = []
    for number, line in enumerate(raw.split(b"\n")[:-1], start=first_line):
        code, _, comment = line.partition(b"#")
        tokens = code.split()
        if not tokens:
            continue
        try:
            label, qid, features = _parse_line(tokens, layout, n_features, path)
        except _LineError as error:
            tracker.add_runs(runs)
            raise DataFormatError(path, number, str(error)) from None
        if qid is not None:
            if runs and runs[-1][0] == qid:
                runs[-1] = (qid, runs[-1][1], runs[-1][2] + 1)
            else:
                runs.append((qid, number, 1))
        labels.append(label)
        rows.append(features)
        match = _DOC_ID.search(line) if comment else None
        doc_ids.append(match.group(1).decode("utf-8", errors="replace") if match else "")
    tracker.add_runs(runs)
    width = n_features or max((max(r) for r in rows if r), default=0)
    features_block = np.zeros((len(rows), width), dtype=np.float32)
    for i, row in enumerate(rows):
        for index, value in row.items():
            features_block[i, index - 1] = value
    return _Block(
        features_block, np.array(labels, np.float32), runs, doc_ids if any(doc_ids) else None
    )


class _LineError(Exception):
    """A problem with one line; the caller adds file and line number."""


def _parse_line(
    tokens: list[bytes], layout: Layout, n_features: int | None, path: Path
) -> tuple[float, str | None, dict[int, float]]:
    """``(label, qid or None, {index: value})`` of one line's tokens."""
    label = _to_float(tokens[0])
    if label is None:
        raise _LineError(f"the label must be a number; got {_text(tokens[0])!r}")
    if not (np.isfinite(label) and label >= 0):
        raise _LineError(f"the label must be a finite number >= 0; got {_text(tokens[0])}")
    qid = None
    pairs = tokens[1:]
    if layout == "letor":
        if not pairs or not pairs[0].startswith(b"qid:") or len(pairs[0]) == 4:
            raise _LineError(_missing_qid(_text(pairs[0]) if pairs else "nothing", path))
        qid, pairs = _text(pairs[0][4:]), pairs[1:]
    features: dict[int, float] = {}
    for token in pairs:
        index, value = _parse_pair(token, layout, n_features)
        if index in features:
            raise _LineError(
                f"feature index {index} appears twice on this line; each feature may be given once"
            )
        features[index] = value
    return label, qid, features


def _parse_pair(token: bytes, layout: Layout, n_features: int | None) -> tuple[int, float]:
    key, colon, value_text = token.partition(b":")
    if not colon or not key or not value_text:
        raise _LineError(f"a feature must be written index:value; got {_text(token)!r}")
    if layout == "lightgbm" and key == b"qid":
        raise _LineError(
            f"unexpected {_text(token)!r}; in the LightGBM layout queries come from the .query file"
        )
    try:
        index = int(key)
    except ValueError:
        raise _LineError(f"a feature index must be an integer; got {_text(key)!r}") from None
    if index < 1 or not key.isdigit():
        raise _LineError(f"feature index {_text(key)} is invalid; LETOR feature indices start at 1")
    if index > _MAX_INDEX:
        raise _LineError(
            f"feature index {index} is too large; at most {_MAX_INDEX} features are supported "
            "(they are stored dense)"
        )
    if n_features is not None and index > n_features:
        raise _LineError(
            f"feature index {index} is beyond n_features={n_features}; "
            f"indices must be in 1..{n_features}"
        )
    value = _to_float(value_text)
    if value is None:
        raise _LineError(
            f"the value of feature {index} must be a number; got {_text(value_text)!r}"
        )
    if not np.isfinite(value):
        raise _LineError(f"the value of feature {index} must be finite; got {_text(value_text)}")
    return index, value


def _to_float(text: bytes) -> float | None:
    """``float(text)``, or None; Python's underscores (``1_0``) are not numbers here."""
    if b"_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _text(token: bytes) -> str:
    return token.decode("utf-8", errors="replace")


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
