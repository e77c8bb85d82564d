"""Model bundles: the sealed folder that export writes and serving loads.

A bundle is a folder of files plus ``metadata.json`` (DESIGN.md, "Model bundle")::

    <bundle>/model.onnx          required: features [batch, list_len, n_features] -> scores
    <bundle>/preprocessor.json   usual: the fitted scaler, for people and audits
    <bundle>/model_card.md       usual: what the model is, how it was trained and checked
    <bundle>/metadata.json       version, n_features, ..., files {name: sha256}, created_at

Conventions, stated once:

- **Sealed.** ``metadata.json`` lists the sha256 of every other file; verification recomputes
  each one and fails on a mismatch, a listed file that is missing, or a file that is *not*
  listed. A stray file fails rather than warns: onnxruntime resolves external weights
  (``model.onnx.data``) and other side files relative to the model, so an unlisted file can
  change what runs, and a bundle with unexpected content was altered after it was sealed.
- **Atomic.** :func:`write_bundle` fills a hidden temp folder beside the target, fsyncs it,
  then renames it into place: a reader or a crash sees no bundle or the whole bundle. Leftover
  temp folders start with ``.`` and are never mistaken for a bundle.
- **Torch-free.** Serving imports this module; it needs the standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ltr._fs import file_sha256, make_folder
from ltr.errors import BundleError, ConfigError, WriteError

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
PREPROCESSOR_FILE = "preprocessor.json"
MODEL_CARD_FILE = "model_card.md"
REQUIRED_FILES = (MODEL_FILE,)
# keys every metadata.json holds: the first two from the writer, the last two added on writing
REQUIRED_KEYS = ("version", "n_features", "files", "created_at")

_VERSION = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def version_problem(text: object) -> str | None:
    """What keeps ``text`` from being a version (``must look like X.Y.Z (e.g. 1.2.0); got
    '1.0'``), None when it is one: ``X.Y.Z`` with non-negative integers without leading zeros,
    so one version has exactly one folder name. The one wording of the rule, wherever a
    version comes from (``--version`` of ``ltr export`` and ``ltr promote``, a folder name)."""
    if isinstance(text, str) and _VERSION.fullmatch(text):
        return None
    return f"must look like X.Y.Z (e.g. 1.2.0); got {text!r}"


def parse_version(text: str) -> tuple[int, int, int]:
    """``"1.10.0"`` -> ``(1, 10, 0)``, the key that sorts versions semantically.

    Raises:
        ConfigError: ``version <problem>`` when ``text`` is not one (:func:`version_problem`).
    """
    problem = version_problem(text)
    if problem is not None:
        raise ConfigError(f"version {problem}")
    major, minor, patch = (int(part) for part in text.split("."))
    return major, minor, patch


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: where it is and what its ``metadata.json`` says.

    Attributes:
        path: the bundle folder.
        metadata: the whole ``metadata.json``.
        version: ``X.Y.Z``.
        n_features: feature count ``model.onnx`` expects (last axis of ``features``).
        files: ``{file name: sha256}`` of every file besides ``metadata.json``.
        created_at: ISO-8601 UTC time the bundle was written.
        size_bytes: total size of the bundle's files, ``metadata.json`` included.
    """

    path: Path
    metadata: dict[str, Any] = field(repr=False)
    version: str
    n_features: int
    files: dict[str, str] = field(repr=False)
    created_at: str
    size_bytes: int

    @property
    def onnx_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def preprocessor_path(self) -> Path | None:
        return self.path / PREPROCESSOR_FILE if PREPROCESSOR_FILE in self.files else None

    @property
    def model_card_path(self) -> Path | None:
        return self.path / MODEL_CARD_FILE if MODEL_CARD_FILE in self.files else None

    @property
    def feature_names(self) -> list[str] | None:
        names = self.metadata.get("feature_names")
        return [str(name) for name in names] if isinstance(names, list) else None

    @property
    def metrics(self) -> dict[str, Any]:
        metrics = self.metadata.get("metrics")
        return dict(metrics) if isinstance(metrics, dict) else {}

    @property
    def source_run(self) -> str | None:
        source = self.metadata.get("source_run")
        return None if source is None else str(source)

    def read_verified(self, name: str = MODEL_FILE) -> bytes:
        """One file's bytes, checked against ``metadata.json`` in the same read.

        For loaders (``ort.InferenceSession(bundle.read_verified())``): no window between the
        check and the use in which the file could change.

        Raises:
            BundleError: ``name`` is not listed, is missing, or its sha256 does not match.
        """
        if name not in self.files:
            raise BundleError(f"bundle {self.path}: {name} is not listed in metadata.json")
        try:
            content = (self.path / name).read_bytes()
        except OSError as error:
            raise BundleError(f"bundle {self.path}: {name} cannot be read: {error}") from None
        if hashlib.sha256(content).hexdigest() != self.files[name]:
            raise BundleError(f"bundle {self.path}: sha256 of {name} does not match metadata.json")
        return content


def write_bundle(directory: Path, files: Mapping[str, bytes], metadata: Mapping[str, Any]) -> Path:
    """Write a bundle atomically: all of it appears at ``directory`` at once, or nothing does.

    Args:
        directory: where the bundle goes; must not exist yet (its parent is created).
        files: ``{file name: content}``; must hold ``model.onnx``, usually also
            ``preprocessor.json`` and ``model_card.md``. Plain names only, no folders.
        metadata: the caller's keys, written as given; must hold ``version`` (``X.Y.Z``) and
            ``n_features``, and should hold ``source_run``, ``feature_names``, ``metrics`` and
            export parity figures. ``files`` (their sha256) is always computed here;
            ``created_at`` (ISO-8601 UTC) is added unless given.

    Returns:
        ``directory``.

    Raises:
        BundleError: ``directory`` exists, or ``files``/``metadata`` lack something required.
        ConfigError: ``metadata["version"]`` is not ``X.Y.Z``.
        WriteError: the parent of ``directory`` cannot be created or written.
    """
    directory = Path(directory)
    _check_writable(directory, files, metadata)
    sealed = {
        **metadata,
        "files": {name: hashlib.sha256(content).hexdigest() for name, content in files.items()},
        "created_at": metadata.get("created_at") or _utc_now(),
    }
    make_folder(directory.parent, purpose=f"cannot write bundle {directory}")
    try:
        tmp = Path(
            tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent)
        )
    except OSError as error:
        raise WriteError(
            f"cannot write bundle {directory}: folder {directory.parent} is not writable "
            f"({error.strerror})"
        ) from None
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; serving may run as another user
        for name, content in files.items():
            _write_synced(tmp / name, content)
        text = json.dumps(sealed, indent=2, sort_keys=True, allow_nan=False) + "\n"
        _write_synced(tmp / METADATA_FILE, text.encode("utf-8"))
        fsync_dir(tmp)
        move_dir(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful rename
    return directory


def verify_bundle(directory: Path) -> Bundle:
    """Check a bundle against its ``metadata.json`` and return it.

    Every listed sha256 is recomputed; a mismatch, a listed file that is missing, an unlisted
    file, a missing or corrupt ``metadata.json`` and a missing required key all fail.

    Raises:
        BundleError: ``bundle <directory>: <what is wrong with which file>``.
    """
    directory = Path(directory)
    metadata = _read_metadata(directory)
    listed: dict[str, str] = metadata["files"]
    present = {entry.name for entry in directory.iterdir()} - {METADATA_FILE}
    for name in sorted(listed):
        if name not in present:
            raise BundleError(f"bundle {directory}: {name} is listed in metadata.json but missing")
    stray = sorted(present - set(listed))
    if stray:
        raise BundleError(
            f"bundle {directory}: {', '.join(stray)} not listed in metadata.json; a sealed "
            "bundle holds only the files it lists (remove them, or export the bundle again)"
        )
    size_bytes = (directory / METADATA_FILE).stat().st_size
    for name in sorted(listed):
        path = directory / name
        if not path.is_file():
            raise BundleError(f"bundle {directory}: {name} is not a regular file")
        if file_sha256(path) != listed[name]:
            raise BundleError(f"bundle {directory}: sha256 of {name} does not match metadata.json")
        size_bytes += path.stat().st_size
    return _bundle(directory, metadata, size_bytes)


def read_bundle(directory: Path, *, verify: bool = True) -> Bundle:
    """Open a bundle; verifies it (:func:`verify_bundle`) unless ``verify=False``.

    ``verify=False`` reads and checks ``metadata.json`` only (no hashing), for listings; never
    serve a bundle opened that way.
    """
    directory = Path(directory)
    if verify:
        return verify_bundle(directory)
    metadata = _read_metadata(directory)
    size_bytes = sum(entry.stat().st_size for entry in directory.iterdir() if entry.is_file())
    return _bundle(directory, metadata, size_bytes)


def fsync_dir(directory: Path) -> None:
    """Make a folder's entries (new names, renames) durable; a no-op where folders can't sync."""
    with contextlib.suppress(OSError):  # Windows cannot open a folder for fsync
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def move_dir(source: Path, target: Path) -> None:
    """Rename folder ``source`` to ``target`` (same file system), refusing an existing target.

    ``os.rename`` fails on a non-empty target but silently replaces an empty one, so an
    existing target is refused up front too. The parent is fsynced so the rename survives a crash.

    Raises:
        BundleError: ``target`` exists.
    """
    if target.exists() or target.is_symlink():
        raise BundleError(f"bundle {target} already exists; a bundle is never overwritten")
    try:
        os.rename(source, target)
    except OSError as error:
        if target.exists():  # lost a race with another writer
            raise BundleError(
                f"bundle {target} already exists; a bundle is never overwritten"
            ) from error
        raise
    fsync_dir(target.parent)


def _check_writable(
    directory: Path, files: Mapping[str, bytes], metadata: Mapping[str, Any]
) -> None:
    if directory.exists() or directory.is_symlink():
        raise BundleError(f"bundle {directory} already exists; a bundle is never overwritten")
    for name in REQUIRED_FILES:
        if name not in files:
            raise BundleError(f"bundle {directory}: {name} is required; got files {sorted(files)}")
    for name in files:
        if not _is_plain_name(name) or name == METADATA_FILE:
            raise BundleError(
                f"bundle {directory}: file name {name!r} is not allowed; use a plain file name "
                f"other than {METADATA_FILE}"
            )
    missing = [key for key in ("version", "n_features") if key not in metadata]
    if missing:
        raise BundleError(
            f"bundle {directory}: metadata lacks required key(s) {', '.join(missing)}"
        )
    parse_version(metadata["version"])
    _check_n_features(directory, metadata["n_features"])


def _read_metadata(directory: Path) -> dict[str, Any]:
    if not directory.is_dir():
        raise BundleError(f"bundle {directory} does not exist or is not a folder")
    path = directory / METADATA_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if (directory / "config.yaml").is_file() or (directory / "checkpoints").is_dir():
            raise BundleError(
                f"{directory} is a run directory, not a bundle; export it first: "
                f"ltr export --model {directory} --output BUNDLE_DIR"
            ) from None
        raise BundleError(f"bundle {directory}: {METADATA_FILE} is missing") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BundleError(f"bundle {directory}: {METADATA_FILE} cannot be read: {error}") from None
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as error:
        raise BundleError(
            f"bundle {directory}: {METADATA_FILE} is not valid JSON: {error}"
        ) from None
    if not isinstance(metadata, dict):
        raise BundleError(
            f"bundle {directory}: {METADATA_FILE} must hold a JSON object; "
            f"got {type(metadata).__name__}"
        )
    missing = [key for key in REQUIRED_KEYS if key not in metadata]
    if missing:
        raise BundleError(
            f"bundle {directory}: {METADATA_FILE} lacks required key(s) {', '.join(missing)}"
        )
    _check_listing(directory, metadata["files"])
    _check_n_features(directory, metadata["n_features"])
    try:
        parse_version(metadata["version"])
    except ConfigError as error:
        raise BundleError(f"bundle {directory}: {METADATA_FILE}: {error}") from None
    return metadata


def _check_listing(directory: Path, listed: Any) -> None:
    where = f"bundle {directory}: {METADATA_FILE}"
    if not isinstance(listed, dict) or not all(
        isinstance(name, str) and isinstance(digest, str) and _SHA256.fullmatch(digest)
        for name, digest in listed.items()
    ):
        raise BundleError(f"{where}: files must map file names to sha256 hex digests")
    for name in listed:
        if not _is_plain_name(name) or name == METADATA_FILE:
            raise BundleError(f"{where}: file name {name!r} is not allowed")
    for name in REQUIRED_FILES:
        if name not in listed:
            raise BundleError(f"{where}: {name} is required but not listed")


def _check_n_features(directory: Path, n_features: Any) -> None:
    if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
        raise BundleError(
            f"bundle {directory}: n_features must be a positive integer; got {n_features!r}"
        )


def _bundle(directory: Path, metadata: dict[str, Any], size_bytes: int) -> Bundle:
    return Bundle(
        path=directory,
        metadata=metadata,
        version=metadata["version"],
        n_features=metadata["n_features"],
        files=dict(metadata["files"]),
        created_at=str(metadata["created_at"]),
        size_bytes=size_bytes,
    )


def _is_plain_name(name: str) -> bool:
    return bool(name) and name not in {".", ".."} and "/" not in name and "\\" not in name


def _write_synced(path: Path, content: bytes) -> None:
    with open(path, "xb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
