"""What a ranking data set holds, at a glance: the facts `ltr data inspect` prints, and the
record of a file a run read (:func:`describe_data`)."""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path
from typing import IO, Any

import numpy as np

from ltr.data._letor_parser import GZIP_MAGIC
from ltr.data.letor import LetorData
from ltr.errors import DataFormatError


@dataclass(frozen=True)
class DataSummary:
    n_queries: int
    n_docs: int
    n_features: int
    label_counts: dict[str, int]  # label (as printed) -> documents
    list_length: dict[str, float]  # min, p10, median, mean, p90, max (min, max: int)
    list_length_histogram: dict[str, int]  # "1", "2-4", "5-9", ... -> queries
    queries_without_relevant: int  # no document with label >= 1
    queries_shorter_than_10: int
    constant_features: list[int]  # 1-based, as LETOR numbers them
    has_doc_ids: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_LENGTH_BINS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10_000)


def summarize(data: LetorData) -> DataSummary:
    """Counts, label histogram, list-length distribution and constant features of ``data``."""
    lengths = data.list_lengths
    labels, counts = np.unique(data.labels, return_counts=True)
    per_query_max = np.maximum.reduceat(data.labels, data.query_offsets[:-1])
    spread = data.features.max(axis=0) - data.features.min(axis=0)
    return DataSummary(
        n_queries=data.n_queries,
        n_docs=data.n_docs,
        n_features=data.n_features,
        label_counts={_label_text(v): int(c) for v, c in zip(labels, counts, strict=True)},
        list_length={
            "min": int(lengths.min()),  # a count: an integer in --json
            "p10": float(np.percentile(lengths, 10)),
            "median": float(np.median(lengths)),
            "mean": float(lengths.mean()),
            "p90": float(np.percentile(lengths, 90)),
            "max": int(lengths.max()),
        },
        list_length_histogram=_length_histogram(lengths),
        queries_without_relevant=int((per_query_max < 1).sum()),
        queries_shorter_than_10=int((lengths < 10).sum()),
        constant_features=[int(i) + 1 for i in np.flatnonzero(spread == 0)],
        has_doc_ids=data.doc_ids is not None,
    )


def _label_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _length_histogram(lengths: np.ndarray) -> dict[str, int]:
    """Queries per list-length bin; empty bins are left out."""
    edges = [*_LENGTH_BINS, None]
    histogram: dict[str, int] = {}
    for low, high in pairwise(edges):
        assert low is not None
        in_bin = lengths >= low if high is None else (lengths >= low) & (lengths < high)
        if count := int(in_bin.sum()):
            histogram[_bin_label(low, high)] = count
    return histogram


def _bin_label(low: int, high: int | None) -> str:
    if high is None:
        return f"{low}+"
    return f"{low}" if high == low + 1 else f"{low}-{high - 1}"


def describe_data(
    path: Path,
    data: LetorData,
    *,
    sha256: str | None = None,
    content: str | None = None,
) -> dict[str, Any]:
    """``{path, sha256, [content_sha256,] queries, documents}`` of the file ``path``, already
    read as ``data``.

    ``content_sha256`` (the sha256 of the text decompressed, :func:`file_digests`) is there for
    a gzip file only; a record without it is of a plain file, whose content is its bytes, or
    from before ltr recorded it: readers take ``content_sha256`` = ``sha256`` for a plain file.

    Args:
        sha256: the file's digest when the caller has it, so the file is not read again; then
            ``content`` is what the caller knows of it (None: nothing is recorded).
        content: the sha256 of a gzip file's text, recorded as ``content_sha256``.
    """
    if sha256 is None:
        sha256, content = file_digests(path)
    record: dict[str, Any] = {"path": str(path.resolve()), "sha256": sha256}
    if content is not None:
        record["content_sha256"] = content
    return record | {"queries": data.n_queries, "documents": data.n_docs}


def file_digests(path: Path) -> tuple[str, str | None]:
    """``(sha256 of the bytes, sha256 of the text decompressed)`` of a data file, in one pass
    over it; the second is None for a plain file (its text is its bytes).

    Raises:
        DataFormatError: the file starts like gzip but its stream is damaged.
    """
    raw = hashlib.sha256()
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == GZIP_MAGIC
        handle.seek(0)
        hashing = _Hashing(handle, raw)
        if not gzipped:
            while hashing.read(1 << 20):
                pass
            return raw.hexdigest(), None
        text = hashlib.sha256()
        try:
            with gzip.GzipFile(fileobj=hashing, mode="rb") as unzipped:
                while chunk := unzipped.read(1 << 20):
                    text.update(chunk)
        except (EOFError, zlib.error, gzip.BadGzipFile) as error:
            raise DataFormatError(path, None, f"truncated or corrupt gzip file ({error})") from None
        while hashing.read(1 << 20):  # whatever gzip left unread still counts in the bytes
            pass
    return raw.hexdigest(), text.hexdigest()


class _Hashing:
    """A binary file read through: ``digest`` sees every byte handed out."""

    def __init__(self, handle: IO[bytes], digest: hashlib._Hash) -> None:
        self.handle, self.digest = handle, digest

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size)
        self.digest.update(chunk)
        return chunk

    def seek(self, offset: int, /) -> int:  # gzip only seeks to rewind, which we never do
        raise io.UnsupportedOperation("a hashed file is read once, front to back")
