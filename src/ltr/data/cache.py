"""Binary cache of parsed ranking files: parse the text once, reload the arrays in milliseconds.

One ``.npz`` (uncompressed, loaded with ``allow_pickle=False``: never pickle) per source file and
parse options, in the cache folder (``$LTR_CACHE_DIR``, else ``~/.cache/ltr``). Its name comes
from the resolved source paths and the options; inside, a ``meta`` entry records the cache format
version, each source's identity (resolved path, size, mtime, inode and ctime; times in ns) and
the CRC-32 of every stored array. The ctime is there because tools restore the mtime of a changed
file (``cp -p``, ``touch -r``, ``tar x``, ``rsync -t``) while nobody can set the ctime: every
write or metadata change moves it (a ``chmod`` too, which only costs a needless parse); the inode
catches a file replaced by another. An entry whose meta does not match the sources now (a source
changed), that cannot be read (truncated, corrupt) or whose arrays fail their CRC (a flipped
bit), is rebuilt silently apart from a log line. Writes are atomic, so readers never see half a
file. The cache is an optimization: when the folder cannot be written, the parsed data is
returned anyway.

Integrity: the arrays are read straight from the file, past :mod:`zipfile` and its own CRC pass
(see :func:`_read_npz`), so the check is ours. ``zlib.crc32`` runs at several GB/s (about 25 ms
for 100 MiB of features), which keeps a reload well over 20x faster than parsing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ltr._fs import atomic_open
from ltr.data.letor import LetorData

logger = logging.getLogger(__name__)

# Bump when the stored arrays or their meaning change, or when the reader starts rejecting
# input it used to accept (2: CRC-32 in meta; 3: no inf from float32 overflow, .gz is gzip;
# 4: ids that are not UTF-8 are refused, a label "-0" is stored as 0.0, a docid on some
# lines only is refused).
FORMAT_VERSION = 4


def default_cache_dir() -> Path:
    """``$LTR_CACHE_DIR`` if set, else ``~/.cache/ltr``."""
    configured = os.environ.get("LTR_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "ltr"


def cache_path(sources: Sequence[Path], *, cache_dir: Path, key_extra: str = "") -> Path:
    """Where the cache entry of ``sources`` parsed with options ``key_extra`` lives."""
    resolved = [str(Path(s).resolve()) for s in sources]
    digest = hashlib.sha256(json.dumps([resolved, key_extra]).encode()).hexdigest()[:20]
    return Path(cache_dir) / f"{Path(sources[0]).name}-{digest}.npz"


def cached_parse(
    sources: Path | Sequence[Path],
    parse: Callable[[], LetorData],
    *,
    cache_dir: Path | None = None,
    key_extra: str = "",
) -> LetorData:
    """The cached arrays of ``sources`` when they are current, else ``parse()`` (then stored).

    Args:
        sources: the file(s) ``parse`` reads; their size, mtime, inode and ctime decide
            freshness.
        parse: builds the data from the text.
        cache_dir: the cache folder; default :func:`default_cache_dir`.
        key_extra: every option that changes the result (layout, ``n_features``).

    Returns:
        The same :class:`LetorData` ``parse()`` returns (doc ids included).
    """
    sources = [Path(sources)] if isinstance(sources, (str, Path)) else [Path(s) for s in sources]
    target = cache_path(sources, cache_dir=cache_dir or default_cache_dir(), key_extra=key_extra)
    meta = _meta(sources, key_extra)  # taken before parsing: a later edit makes the entry stale
    data = _load(target, meta)
    if data is not None:
        return data
    data = parse()
    try:
        save(target, data, meta)
    except OSError as error:  # a read-only or full disk costs speed, not correctness
        logger.warning("could not write the data cache %s: %s", target, error)
    return data


def save(path: Path, data: LetorData, meta: dict[str, object]) -> None:
    """Store ``data`` and ``meta`` (plus the arrays' CRC-32) as an uncompressed ``.npz``,
    atomically."""
    arrays = {
        "features": np.ascontiguousarray(data.features, dtype=np.float32),
        "labels": np.ascontiguousarray(data.labels, dtype=np.float32),
        "query_ids": np.ascontiguousarray(data.query_ids, dtype=str),
        "query_offsets": np.ascontiguousarray(data.query_offsets, dtype=np.int64),
    }
    if data.doc_ids is not None:
        arrays["doc_ids"] = np.ascontiguousarray(data.doc_ids, dtype=str)
    checksums = {name: _crc32(array) for name, array in arrays.items()}
    arrays["meta"] = np.array(json.dumps({**meta, "crc32": checksums}, sort_keys=True))
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]


def _meta(sources: list[Path], key_extra: str) -> dict[str, object]:
    identity = []
    for source in sources:
        stat = source.stat()
        identity.append(
            [
                str(source.resolve()),
                stat.st_size,
                stat.st_mtime_ns,
                stat.st_ino,
                stat.st_ctime_ns,
            ]
        )
    return {"version": FORMAT_VERSION, "sources": identity, "options": key_extra}


def _load(path: Path, meta: dict[str, object]) -> LetorData | None:
    """The entry at ``path`` if it is readable, consistent and made for ``meta``; else None."""
    if not path.is_file():
        return None
    try:
        stored = _read_npz(path)
        stored_meta = json.loads(str(stored.pop("meta")))
        checksums = stored_meta.pop("crc32", None) if isinstance(stored_meta, dict) else None
        if stored_meta != meta:
            logger.info("data cache %s is stale; parsing the source again", path)
            return None
        if checksums != {name: _crc32(array) for name, array in stored.items()}:
            logger.warning("data cache %s fails its CRC check; parsing the source again", path)
            return None
        data = LetorData(
            features=stored["features"],
            labels=stored["labels"],
            query_ids=stored["query_ids"],
            query_offsets=stored["query_offsets"],
            doc_ids=stored.get("doc_ids"),
        )
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        logger.warning("data cache %s is unreadable (%s); parsing the source again", path, error)
        return None
    if not _consistent(data):
        logger.warning("data cache %s is inconsistent; parsing the source again", path)
        return None
    return data


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an uncompressed ``.npz``, each read straight from the file.

    ``np.load`` streams members through :mod:`zipfile` (a copy and a CRC pass), which takes
    longer than parsing a small text; here the zip directory only gives each member's offset.
    Object arrays are refused, as ``np.load(allow_pickle=False)`` would.
    """
    arrays = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as handle:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
                raise ValueError(f"unexpected member {info.filename!r}")
            handle.seek(info.header_offset)
            header = handle.read(30)  # zip local file header; name and extra field follow
            if len(header) != 30 or header[:4] != b"PK\x03\x04":
                raise ValueError(f"bad local header of {info.filename!r}")
            name_length, extra_length = struct.unpack("<HH", header[26:30])
            handle.seek(info.header_offset + 30 + name_length + extra_length)
            arrays[info.filename[: -len(".npy")]] = _read_npy(handle)
    return arrays


def _read_npy(handle: BinaryIO) -> np.ndarray:
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle)
    else:
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(handle)
    if dtype.hasobject or fortran_order:
        raise ValueError("object or Fortran-ordered arrays are not cache entries")
    count = math.prod(shape)
    array = np.fromfile(handle, dtype=dtype, count=count)
    if array.size != count:
        raise ValueError(f"truncated array: {array.size} of {count} items")
    return array.reshape(shape)


def _crc32(array: np.ndarray) -> int:
    """CRC-32 of a C-contiguous array's bytes (any dtype; ``str`` arrays as UCS-4)."""
    return zlib.crc32(array.reshape(-1).view(np.uint8).data)


def _consistent(data: LetorData) -> bool:
    """Dtypes and shapes fit together (guards against a damaged file that still unzips)."""
    n_docs, offsets = data.features.shape[0], data.query_offsets
    return (
        data.features.ndim == 2
        and data.features.dtype == np.float32
        and data.labels.dtype == np.float32
        and data.labels.shape == (n_docs,)
        and offsets.dtype == np.int64
        and offsets.ndim == 1
        and offsets.shape[0] == data.query_ids.shape[0] + 1
        and offsets[0] == 0
        and offsets[-1] == n_docs
        and bool((np.diff(offsets) > 0).all())
        and data.query_ids.dtype.kind == "U"
        and (
            data.doc_ids is None
            or (data.doc_ids.dtype.kind == "U" and data.doc_ids.shape == (n_docs,))
        )
    )
