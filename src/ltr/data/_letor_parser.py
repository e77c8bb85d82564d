"""The LETOR / SVMlight text reader behind :mod:`ltr.data.letor` (private; conventions there).

The text is streamed in chunks of a few MiB cut at line boundaries. Each chunk is parsed with
vectorized numpy byte operations (token boundaries, ``index:value`` pairs, decimal numbers turned
into integer mantissas and exact float64 divisions by powers of ten, which is what ``strtod``
returns). Anything unusual in a chunk (an error, or a number such as ``1e-5``) sends that chunk
through a plain line-by-line parser, which raises the precise error or parses it slowly. Values
are parsed as float64 and then rounded to float32, as scikit-learn's reader does.

Memory: parsed rows go straight into one float32 array sized from the text's length (see
:class:`_Assembler`), so the result is never held twice; positions inside a chunk are int32
and chunk temporaries are dropped as soon as they are used.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal, NamedTuple

import numpy as np

from ltr.data._decimal import PAD, parse_indices, parse_numbers, to_float
from ltr.errors import DataFormatError, DataNotFoundError

Layout = Literal["letor", "lightgbm"]

_CHUNK_BYTES = 4 << 20  # big enough to amortize numpy call overhead, small enough for the cache
_DOC_ID = re.compile(rb"#[^\n]*?\bdocid[ \t]*=[ \t]*([^\s#]+)")
_MAX_INDEX = 1_000_000  # features are stored dense; a bigger index is almost surely a typo
GZIP_MAGIC = b"\x1f\x8b"
_FLOAT32_OVERFLOW = 2.0**128 - 2.0**103  # the smallest float64 that rounds to inf in float32

# --------------------------------------------------------------------------------------------
# Reading: chunks, the query tracker, assembling blocks
# --------------------------------------------------------------------------------------------


class Rows(NamedTuple):
    """Everything :func:`read_rows` found; ``query_ids``/``query_sizes`` are empty for LightGBM."""

    features: np.ndarray  # float32 [rows, width]
    labels: np.ndarray  # float32 [rows]
    query_ids: list[str]
    query_sizes: list[int]
    doc_ids: np.ndarray | None  # str [rows]; None: no row has one (some but not all: an error)


class _Block(NamedTuple):
    """One parsed chunk: ``features [rows, width]`` float32, ``labels [rows]`` float32."""

    features: np.ndarray
    labels: np.ndarray
    runs: list[tuple[str, int, int]]  # (qid, line number of first row, rows), file order
    doc_ids: np.ndarray | None  # [rows] bytes ("S", fast path) or str ("U", slow path)
    id_lines: tuple[int | None, int | None]  # lines of the first row with a docid, without one


def read_rows(path: Path, layout: Layout, n_features: int | None) -> Rows:
    """Parse every line of ``path``; raise :class:`DataFormatError` at the first bad one."""
    tracker = _QueryTracker(path)
    id_lines: tuple[int | None, int | None] = (None, None)
    with open_binary(path) as handle:
        text_bytes = _text_bytes(path)
        assembler = _Assembler(n_features, text_bytes)
        chunk_bytes = min(_CHUNK_BYTES, max(64 << 10, text_bytes // 32))
        for first_line, raw in _iter_chunks(handle, chunk_bytes):
            block = _parse_chunk_fast(raw, first_line, layout, n_features)
            if block is None:
                block = _parse_chunk_slow(raw, first_line, layout, n_features, path, tracker)
            else:
                tracker.add_runs(block.runs)
            id_lines = _join_id_lines(path, id_lines, block.id_lines)
            assembler.add(block, len(raw))
            del raw, block  # not alive while the next chunk is read and parsed
    if not assembler.labels:
        example = "<label> qid:<id> <index>:<value> ..." if layout == "letor" else "<label> ..."
        raise DataFormatError(path, None, f"the file has no data lines; expected '{example}'")
    features, labels, doc_ids = assembler.finish()
    return Rows(features, labels, tracker.query_ids, tracker.sizes, doc_ids)


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


def _join_id_lines(
    path: Path, seen: tuple[int | None, int | None], block: tuple[int | None, int | None]
) -> tuple[int | None, int | None]:
    """The first lines with and without a docid so far; refuse a file that has both."""
    with_id, without_id = seen[0] or block[0], seen[1] or block[1]
    if with_id and without_id:
        raise DataFormatError(
            path,
            without_id,
            f"no docid, while line {with_id} has one; give every data line a '#docid = <id>' "
            "comment, or none",
        )
    return with_id, without_id


class _Assembler:
    """Copies each block's rows into one ``float32 [rows, width]`` array, never held twice.

    The array is sized on the first block: its rows per text byte times the length of the
    text (:func:`_text_bytes`), plus 2 %. A text with more rows than that grows it with
    ``ndarray.resize`` (``realloc``: in place for large blocks), and :meth:`finish` trims it
    the same way. Only a block wider than the array (``n_features`` unset and a larger index
    late in a sparse file) starts a new segment; several segments are copied into one at the
    end, the one case where the features briefly exist twice.
    """

    def __init__(self, n_features: int | None, text_bytes: int) -> None:
        self.n_features, self.text_bytes = n_features, text_bytes
        self.bytes_seen = self.rows_seen = 0
        self.segments: list[tuple[np.ndarray, int]] = []  # (array, rows filled)
        self.labels: list[np.ndarray] = []
        self.doc_ids: list[np.ndarray | None] = []

    def add(self, block: _Block, chunk_bytes: int) -> None:
        rows, width = block.features.shape
        self.bytes_seen += chunk_bytes
        if not rows:
            return
        self.rows_seen += rows
        if not self.segments or width > self.segments[-1][0].shape[1]:
            earlier = sum(filled for _, filled in self.segments)
            capacity = max(self._expected_rows() - earlier, rows)
            segment = np.zeros((capacity, max(width, self.n_features or 0)), np.float32)
            self.segments.append((segment, 0))
        segment, filled = self.segments[-1]
        if filled + rows > segment.shape[0]:
            earlier = self.rows_seen - rows - filled
            grown = self._expected_rows() - earlier
            if self.bytes_seen >= self.text_bytes:  # the length guess was wrong: grow by 1/4
                grown = segment.shape[0] + segment.shape[0] // 4
            segment.resize((max(grown, filled + rows), segment.shape[1]), refcheck=False)
        segment[filled : filled + rows, :width] = block.features
        self.segments[-1] = (segment, filled + rows)
        self.labels.append(block.labels)
        self.doc_ids.append(block.doc_ids)

    def _expected_rows(self) -> int:
        per_byte = self.rows_seen / self.bytes_seen
        return int(per_byte * max(self.text_bytes, self.bytes_seen) * 1.02) + 16

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(features, labels, doc_ids)`` of all rows; the assembler is empty afterwards."""
        labels = np.concatenate(self.labels)
        labels += 0.0  # a label written "-0" is valid; -0.0 + 0.0 is 0.0, so it prints as 0
        doc_ids = _join_doc_ids(self.doc_ids)
        self.labels, self.doc_ids = [], []
        if len(self.segments) == 1:
            features, filled = self.segments.pop()
            features.resize((filled, features.shape[1]), refcheck=False)  # no view exists
            return features, labels, doc_ids
        width = max(segment.shape[1] for segment, _ in self.segments)
        features = np.zeros((labels.shape[0], width), dtype=np.float32)
        start = 0
        while self.segments:
            segment, filled = self.segments.pop(0)
            features[start : start + filled, : segment.shape[1]] = segment[:filled]
            start += filled
            del segment  # freed before the next one is copied
        return features, labels, doc_ids


def _join_doc_ids(parts: list[np.ndarray | None]) -> np.ndarray | None:
    """One ``str [rows]`` array of exact width; bytes from the fast path are decoded once."""
    filled = [part for part in parts if part is not None]
    if not filled:
        return None
    assert len(filled) == len(parts)  # read_rows refused rows without a docid among rows with
    if all(part.dtype.kind == "S" for part in filled):
        joined = np.concatenate(filled)
        if (joined.view(np.uint8) < 128).all():  # ASCII: numpy's decoding equals UTF-8's
            return joined.astype(str)
    return np.concatenate([_decoded(part) for part in filled])


def _decoded(ids: np.ndarray) -> np.ndarray:
    if ids.dtype.kind == "U":
        return ids
    return np.array([i.decode("utf-8") for i in ids.tolist()], dtype=str)  # checked: UTF-8


@contextlib.contextmanager
def open_binary(path: Path) -> Iterator[IO[bytes] | gzip.GzipFile]:
    """The file's bytes, decompressed when it starts with the gzip magic.

    A damaged gzip stream only shows while it is read, so the decompressor's errors raised
    inside the ``with`` block become a :class:`DataFormatError` naming the file.
    """
    if path.is_dir():
        raise DataNotFoundError(f"{path} is a directory; expected a data file")
    if not path.is_file():
        raise DataNotFoundError(f"data file not found: {path}")
    with open(path, "rb") as handle:
        magic = handle.read(2)
        handle.seek(0)
        if magic != GZIP_MAGIC:
            if path.name.endswith(".gz"):  # else it would parse as text and fail on binary junk
                raise DataFormatError(
                    path,
                    None,
                    f"the name ends with .gz but the file is not gzip; it starts with {magic!r}, "
                    f"not {GZIP_MAGIC!r}",
                )
            yield handle
            return
        try:
            with gzip.GzipFile(fileobj=handle, mode="rb") as unzipped:
                yield unzipped
        except (EOFError, zlib.error, gzip.BadGzipFile) as error:
            raise DataFormatError(
                path, None, f"truncated or corrupt gzip file ({error})"
            ) from error


def _iter_chunks(handle: IO[bytes] | gzip.GzipFile, size: int) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line number of the chunk's first line, bytes)``; every chunk ends with LF."""
    first_line, carry = 1, b""
    while data := handle.read(size):
        buffer = carry + data
        del data
        cut = buffer.rfind(b"\n") + 1
        carry, chunk = buffer[cut:], buffer[:cut]
        del buffer  # only the yielded chunk stays alive while it is parsed
        if cut:
            lines = chunk.count(b"\n")
            yield first_line, chunk
            first_line += lines
        del chunk
    if carry.strip():
        yield first_line, carry + b"\n"


def _text_bytes(path: Path) -> int:
    """Length of the (decompressed) text, from gzip's trailer: a guess, exact below 4 GiB.

    It sizes chunks (about 1/32 of the text, within [64 KiB, ``_CHUNK_BYTES``], so chunk
    temporaries stay small next to the parsed arrays) and the output (:class:`_Assembler`).
    """
    text_bytes = path.stat().st_size
    with open(path, "rb") as handle:
        if handle.read(2) == GZIP_MAGIC and text_bytes > 4:  # a shorter file is reported later
            handle.seek(-4, os.SEEK_END)  # gzip's trailer: uncompressed size modulo 2**32
            text_bytes = max(text_bytes, int.from_bytes(handle.read(4), "little"))
    return text_bytes


def missing_qid(got: str, path: Path) -> str:
    """The message for a line without ``qid:`` (both layouts explain the alternative)."""
    return (
        f"missing qid: the label must be followed by qid:<query id>; got {got!r} "
        f"(a file without qid needs a LightGBM query file {path.name}.query)"
    )


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
    """Parse a chunk of whole lines; None when anything needs the line-by-line parser.

    Temporaries are deleted as soon as they are used: they, not the parsed rows, set the peak
    memory of a chunk.
    """
    if b"\x00" in raw:  # "S" arrays (doc ids below) drop trailing NULs; the slow path keeps them
        return None
    a, newlines = _padded_bytes(raw)
    white = _is_whitespace(a)
    comments = _comment_spans(a, newlines, white)
    if comments is None:
        return None
    tokens = _split_tokens(white, newlines, comments)
    del white
    if tokens.first.size == 0:
        return _Block(np.zeros((0, 0), np.float32), np.zeros(0, np.float32), [], None, (None, None))
    label_fields = tokens.starts[tokens.first], tokens.ends[tokens.first]
    pairs = _split_pairs(a, tokens, comments)
    tokens = tokens._replace(starts=label_fields[0], ends=label_fields[1])  # drops the rest
    if pairs is None:
        return None
    keys, values, pairs_per_row = pairs
    del pairs
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
        keys = keys[0][keep], keys[1][keep]
        values = keys[1] + 1, values[1][keep]
        pairs_per_row = pairs_per_row - 1
    labels = parse_numbers(a, *label_fields)
    indices = parse_indices(a, *keys)
    del keys
    numbers = parse_numbers(a, *values)
    del values
    if labels is None or indices is None or numbers is None:
        return None
    features = _place_features(indices, numbers, pairs_per_row, labels, n_features)
    del indices, numbers
    if features is None:
        return None
    doc_ids = _doc_ids_of_rows(*_find_doc_ids(raw, newlines), tokens.line_of_row)
    if doc_ids is not None and not _all_utf8(doc_ids):
        return None  # the line parser names the line of the id that is not UTF-8
    id_lines = _id_lines(doc_ids, tokens.line_of_row + first_line)
    return _Block(features, labels.astype(np.float32), runs, doc_ids, id_lines)


def _padded_bytes(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """``uint8`` copy with ``PAD`` spaces before and after (so fixed-width windows of a field
    never leave the array); positions of LF."""
    a = np.full(len(raw) + 2 * PAD, 32, dtype=np.uint8)
    a[PAD : len(raw) + PAD] = np.frombuffer(raw, dtype=np.uint8)
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
    if width > PAD:
        return None
    fields = np.lib.stride_tricks.sliding_window_view(a, width)[starts]
    fields[np.arange(width) >= lengths[:, None]] = 0  # "S" arrays compare without the zeros
    qids = fields.view(f"S{width}").ravel()
    new_run = np.ones(qids.shape[0], dtype=bool)
    new_run[1:] = qids[1:] != qids[:-1]
    run_starts = np.flatnonzero(new_run)
    sizes = np.diff(np.append(run_starts, qids.shape[0]))
    lines = tokens.line_of_row[run_starts] + first_line
    try:
        names = [q.decode("utf-8") for q in qids[run_starts].tolist()]
    except UnicodeDecodeError:
        return None  # the line parser names the line
    return list(zip(names, lines.tolist(), sizes.tolist(), strict=True))


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
    if (labels >= _FLOAT32_OVERFLOW).any() or (np.abs(values) >= _FLOAT32_OVERFLOW).any():
        return None  # float32 would store inf; the line parser names the line
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


def _find_doc_ids(raw: bytes, newlines: np.ndarray) -> tuple[np.ndarray, list[bytes]]:
    """Lines (indices into ``newlines``) whose comment names a docid, and those ids."""
    found = [(m.start(), m.group(1)) for m in _DOC_ID.finditer(raw)]
    if not found:
        return np.zeros(0, np.int64), []
    lines = np.searchsorted(newlines, np.array([start + PAD for start, _ in found]))
    first = np.ones(len(found), dtype=bool)  # a second docid on one line is ignored
    first[1:] = lines[1:] != lines[:-1]
    ids = [doc for (_, doc), keep in zip(found, first, strict=True) if keep]
    return lines[first], ids


def _id_lines(doc_ids: np.ndarray | None, row_lines: np.ndarray) -> tuple[int | None, int | None]:
    """Line numbers of the first row with a docid and of the first row without one."""
    if row_lines.size == 0:
        return None, None
    if doc_ids is None:
        return None, int(row_lines[0])
    has_id = doc_ids != doc_ids.dtype.type()  # "" where a row has none
    without = None if has_id.all() else int(row_lines[np.argmax(~has_id)])
    return int(row_lines[np.argmax(has_id)]), without


def _all_utf8(ids: np.ndarray) -> bool:
    """Whether every id of an ``S`` array is UTF-8 (ASCII, the usual case, is checked at once)."""
    if ids.tobytes().isascii():
        return True
    try:
        for value in ids.tolist():
            value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _doc_ids_of_rows(
    doc_lines: np.ndarray, doc_values: list[bytes], line_of_row: np.ndarray
) -> np.ndarray | None:
    """``S [rows]``, ``b""`` where a row has no id: one byte a character, no object a row."""
    if not doc_values:
        return None
    if np.array_equal(doc_lines, line_of_row):  # the usual case: every data line has one
        return np.array(doc_values, dtype=bytes)
    row_of_line = {line: row for row, line in enumerate(line_of_row.tolist())}
    ids = [b""] * line_of_row.shape[0]
    for line, value in zip(doc_lines.tolist(), doc_values, strict=True):
        if line in row_of_line:  # a docid on a comment-only line belongs to no row
            ids[row_of_line[line]] = value
    return np.array(ids, dtype=bytes) if any(ids) else None


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
    row_lines: list[int] = []
    runs: list[tuple[str, int, int]] = []
    for number, line in enumerate(raw.split(b"\n")[:-1], start=first_line):
        code, _, comment = line.partition(b"#")
        tokens = code.split()
        if not tokens:
            continue
        try:
            label, qid, features = _parse_line(tokens, layout, n_features, path)
            match = _DOC_ID.search(line) if comment else None
            doc_id = _utf8(match.group(1), "the docid") if match else ""
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
        doc_ids.append(doc_id)
        row_lines.append(number)
    tracker.add_runs(runs)
    width = n_features or max((max(r) for r in rows if r), default=0)
    features_block = np.zeros((len(rows), width), dtype=np.float32)
    for i, row in enumerate(rows):
        for index, value in row.items():
            features_block[i, index - 1] = value
    ids = np.array(doc_ids, dtype=str) if any(doc_ids) else None
    id_lines = _id_lines(ids, np.array(row_lines, np.int64))
    return _Block(features_block, np.array(labels, np.float32), runs, ids, id_lines)


class _LineError(Exception):
    """A problem with one line; the caller adds file and line number."""


def _parse_line(
    tokens: list[bytes], layout: Layout, n_features: int | None, path: Path
) -> tuple[float, str | None, dict[int, float]]:
    """``(label, qid or None, {index: value})`` of one line's tokens."""
    problem = label_problem(tokens[0])
    if problem is not None:
        raise _LineError(problem)
    label = to_float(tokens[0])
    assert label is not None  # label_problem found none
    qid = None
    pairs = tokens[1:]
    if layout == "letor":
        if pairs and pairs[0] == b"qid:":
            raise _LineError(
                "the qid is empty: write the query id right after the colon, qid:<query id>"
            )
        if not pairs or not pairs[0].startswith(b"qid:"):
            raise _LineError(missing_qid(_text(pairs[0]) if pairs else "nothing", path))
        qid, pairs = _utf8(pairs[0][4:], "the qid"), pairs[1:]
    features: dict[int, float] = {}
    for token in pairs:
        index, value = _parse_pair(token, layout, n_features)
        if index in features:
            raise _LineError(
                f"feature index {index} appears twice on this line; each feature may be given once"
            )
        features[index] = value
    return label, qid, features


def label_problem(token: bytes) -> str | None:
    """What is wrong with a label token, or None when it is a valid label."""
    label = to_float(token)
    if label is None:
        return f"the label must be a number; got {_text(token)!r}"
    if not (np.isfinite(label) and label >= 0):
        return f"the label must be a finite number >= 0; got {_text(token)}"
    if label >= _FLOAT32_OVERFLOW:
        return f"the label must fit in float32 (below 3.4e38); got {_text(token)}"
    return None


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
    value = to_float(value_text)
    if value is None:
        raise _LineError(
            f"the value of feature {index} must be a number; got {_text(value_text)!r}"
        )
    if not np.isfinite(value):
        raise _LineError(f"the value of feature {index} must be finite; got {_text(value_text)}")
    if abs(value) >= _FLOAT32_OVERFLOW:
        raise _LineError(
            f"the value of feature {index} must fit in float32 (magnitude below 3.4e38); "
            f"got {_text(value_text)}"
        )
    return index, value


def _utf8(token: bytes, what: str) -> str:
    """A qid or docid as text; an id in another encoding is refused, never garbled."""
    try:
        return token.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _LineError(
            f"{what} must be UTF-8 text; got {token!r} (byte 0x{token[error.start]:02x}); "
            "re-encode the file, e.g. iconv -f latin1 -t utf-8"
        ) from None


def _text(token: bytes) -> str:
    """A token quoted in an error message (undecodable bytes shown as U+FFFD)."""
    return token.decode("utf-8", errors="replace")
