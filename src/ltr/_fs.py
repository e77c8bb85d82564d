"""Atomic file writes: a temp file in the target's folder, fsync, then ``os.replace``.

A reader (or a crash) therefore sees either the old file or the complete new one, never a
half-written one. Every artifact ltr writes goes through here; :func:`read_json` reads the JSON
ones back. :func:`exclusive_lock` lets processes take turns where a rename alone cannot decide
(a model store, a new MLflow database).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from ltr.errors import ConfigError, DataFormatError, WriteError


def _read_umask() -> int:
    """The process's umask; reading it means setting it, so this runs once, at import."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def missing_file(path: Path) -> str:
    """Why ``path``, which is no file, cannot be read: ``is a directory, not a file`` or
    ``does not exist`` (for messages like ``checkpoint PATH does not exist``)."""
    return "is a directory, not a file" if path.is_dir() else "does not exist"


def refuse_directory(path: str | Path) -> None:
    """Raise :class:`ConfigError` when an output ``path`` is an existing directory; commands
    call it before their work, so a typo costs no computation."""
    if Path(path).is_dir():
        raise ConfigError(f"{path} is a directory; the output must be a file path")


def check_writable(path: str | Path) -> None:
    """Raise :class:`WriteError` when ``path`` could not be written: the nearest folder that
    exists on its way must be one this process may create files in. Commands call it before
    their work, like :func:`refuse_directory`."""
    folder = Path(path).absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise WriteError(f"cannot write {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise WriteError(f"cannot write {path}: folder {folder} is not writable")


def make_folder(folder: Path, *, purpose: str) -> None:
    """``folder.mkdir(parents=True, exist_ok=True)``; a failure is a :class:`WriteError`
    starting with ``purpose`` (e.g. ``cannot write <file>``)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WriteError(f"{purpose}: cannot create folder {folder} ({error.strerror})") from None


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed over ``path``.

    For writers that insist on opening the file themselves (``np.savez``, ``torch.save``).

    Raises:
        ConfigError: ``path`` is an existing directory (checked before any temp file exists).
        WriteError: the folder of ``path`` cannot be created or written.
    """
    path = Path(path)
    refuse_directory(path)  # os.replace would fail only after the whole write
    make_folder(path.parent, purpose=f"cannot write {path}")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:  # named for the target: the temp name would only puzzle
        raise WriteError(
            f"cannot write {path}: folder {path.parent} is not writable ({error.strerror})"
        ) from None
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give what open() would have given
        os.close(fd)
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(
    path: str | Path, mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; rename it over ``path`` on success."""
    if "b" in mode:
        encoding = None
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding) as handle:
        yield handle


@contextlib.contextmanager
def exclusive_lock(
    path: str | Path, *, busy: Callable[[int | None], Exception] | None = None
) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created, with its folder, if missing) for the
    block; other processes asking for it wait. No lock on Windows.

    With ``busy``, take the lock only if it is free, else raise ``busy(pid)`` at once, ``pid``
    being the holder's (written in the file; None if not yet). The kernel releases a lock when
    its process ends however it ends, so a lock is never stale.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        if sys.platform != "win32":
            import fcntl

            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (fcntl.LOCK_NB if busy else 0))
            except BlockingIOError:
                assert busy is not None  # only a non-blocking flock refuses
                raise busy(_pid_in(path)) from None
        if busy is not None:  # name the holder for the next process turned away
            handle.truncate(0)
            handle.write(str(os.getpid()).encode())
            handle.flush()
        yield  # closing the file releases the lock


def _pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # the holder has not written it yet
        return None


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically; floats keep full precision."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: str | Path) -> Any:
    """The JSON document in ``path``.

    Raises:
        DataFormatError: the file is not valid JSON (the message names file and line).
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataFormatError(path, error.lineno, f"invalid JSON: {error.msg}") from None


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def same_bytes(a: Path, b: Path) -> str | None:
    """The sha256 both files share when they hold the same bytes, else None. Files of different
    sizes are different data and are never hashed."""
    if a.stat().st_size != b.stat().st_size:
        return None
    digest = file_sha256(a)
    return digest if digest == file_sha256(b) else None
