"""The model store: versioned bundles and a pointer to the live one.

Layout (DESIGN.md)::

    models/versions/<X.Y.Z>/   sealed bundles (ltr.lifecycle.bundle), never changed once added
    models/current             the live version: one line, e.g. ``1.1.0``
    models/history.json        the live versions so far, for rollback, and the switches made

**The pointer is a regular file**, replaced whole with ``os.replace`` (write a temp file beside
it, fsync, rename over). A reader therefore sees the old or the new version, never a missing or
half-written pointer. A symlink could be swapped atomically too, but a pointer file was chosen:

- a reader resolves the pointer *once* to an immutable ``versions/<X.Y.Z>`` folder and reads
  everything from there; with a ``current -> versions/1.1.0`` symlink, a reader opening
  ``current/model.onnx`` then ``current/metadata.json`` can straddle a switch and pair files of
  two versions;
- it survives what copies a store around (``docker cp``, ``kubectl cp``, object-store sync,
  Windows), which drops or flattens symlinks;
- its content is checked (``X.Y.Z``, and the version must exist), so a corrupt pointer is a
  clear error instead of a dangling link.

Writers (:meth:`ModelStore.add`, :meth:`ModelStore.set_current`, :meth:`ModelStore.rollback`)
take an exclusive lock on ``models/.lock``, so two promotions cannot interleave; readers take no
lock. Folders whose name is not ``X.Y.Z`` (e.g. a temp folder left by a crash mid-write) are
not versions, so they are never listed and never become current.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from ltr._fs import atomic_write_text, exclusive_lock
from ltr.errors import BundleError, BusyError, ConfigError, LtrError
from ltr.lifecycle.bundle import (
    Bundle,
    fsync_dir,
    move_dir,
    parse_version,
    read_bundle,
    verify_bundle,
)

VERSIONS_DIR = "versions"
CURRENT_FILE = "current"
HISTORY_FILE = "history.json"
LOCK_FILE = ".lock"
STAGING_PREFIX = ".staging-"
MAX_HISTORY = 100  # live versions kept for rollback, and switch events kept for people


class Unchecked(enum.Enum):
    """``ModelStore.set_current(expected_live=Unchecked.ANY)``: switch whatever is live."""

    ANY = "any"


@dataclass(frozen=True)
class BundleCheck:
    """The outcome of verifying one stored version: its bundle, or the error that refused it."""

    version: str
    bundle: Bundle | None
    error: BundleError | None

    @property
    def ok(self) -> bool:
        return self.error is None


class ModelStore:
    """Versioned model bundles under ``root`` and the pointer to the live one.

    Nothing is created until something is written, so a store can be opened before it exists.

    Raises:
        ConfigError: ``root``, or a folder above it, is a file.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        _refuse_file_in_the_way(self.root)

    def __repr__(self) -> str:
        return f"ModelStore({str(self.root)!r})"

    @property
    def versions_dir(self) -> Path:
        return self.root / VERSIONS_DIR

    def path_of(self, version: str) -> Path:
        """The folder of ``version`` (validated ``X.Y.Z``), whether or not it exists."""
        parse_version(version)
        return self.versions_dir / version

    # -- reading: no locks; safe while a writer switches versions -------------------------------

    def versions(self) -> list[str]:
        """Stored versions, oldest first by semantic order (``1.9.0`` < ``1.10.0``)."""
        if not self.versions_dir.is_dir():
            return []
        names = [entry.name for entry in self.versions_dir.iterdir() if entry.is_dir()]
        return sorted((name for name in names if _is_version(name)), key=parse_version)

    def current(self) -> str | None:
        """The live version named by ``models/current``; None when nothing was promoted yet.

        Raises:
            BundleError: the pointer does not hold an ``X.Y.Z`` version.
        """
        version, problem = self._read_pointer()
        if problem is not None:
            raise BundleError(f"model store {self.root}: {problem}")
        return version

    def pointer_problem(self) -> str | None:
        """What is wrong with ``models/current``, and how to repair it; None when nothing is.

        Wrong: it does not name an ``X.Y.Z`` version, it names one that is not stored, or it is
        missing while ``history.json`` says a version was live.
        """
        version, problem = self._read_pointer()
        if problem is None and version is not None and version not in self.versions():
            problem = f"{self.root / CURRENT_FILE} names {version}, which is not stored"
        if problem is None and version is None:
            with contextlib.suppress(BundleError):  # an unreadable history is its own problem
                if self._live_stack(None):
                    problem = f"{self.root / CURRENT_FILE} is missing"
        if problem is None:
            return None
        return f"model store {self.root}: {problem}; {self._repair_hint()}"

    def show(self, version: str) -> Bundle:
        """The verified bundle of ``version``.

        Raises:
            ConfigError: ``version`` is not ``X.Y.Z``.
            BundleError: the version is not stored, or its bundle fails verification.
        """
        path = self.path_of(version)
        if not path.is_dir():
            known = ", ".join(self.versions()) or "none"
            raise BundleError(
                f"model store {self.root}: version {version} not found; stored versions: {known}"
            )
        bundle = verify_bundle(path)
        if bundle.version != version:
            raise BundleError(
                f"bundle {path}: metadata.json says version {bundle.version}, "
                f"but the bundle is stored as {version}"
            )
        return bundle

    def read(self, version: str) -> Bundle:
        """``version``'s bundle from its ``metadata.json`` only (no hashing); for listings."""
        return read_bundle(self.path_of(version), verify=False)

    def verify(self, version: str | None = None) -> list[BundleCheck]:
        """Verify one version, or every stored version; each result holds a bundle or an error."""
        versions = [version] if version is not None else self.versions()
        checks = []
        for name in versions:
            try:
                checks.append(BundleCheck(name, self.show(name), None))
            except BundleError as error:
                checks.append(BundleCheck(name, None, error))
        return checks

    def load_current(self) -> Bundle:
        """The live bundle, verified: what serving calls on start and on reload.

        A caller that already serves a model keeps it when this raises, e.g.::

            try:
                bundle = store.load_current()
            except BundleError as error:
                log.error("%s; keeping version %s", error, engine.bundle.version)

        Raises:
            BundleError: nothing is live, the pointer is corrupt, or the live bundle is
                incomplete or altered.
        """
        version = self.current()
        if version is None:
            raise BundleError(
                f"model store {self.root}: no live model ({self.root / CURRENT_FILE} is missing); "
                "promote one with `ltr promote RUN --to production`"
            )
        return self.show(version)

    def history(self) -> dict[str, list[Any]]:
        """``{"live": [versions, oldest first], "events": [{at, action, from, to, ...}, ...]}``;
        a promotion's event also holds the ``details`` given to :meth:`set_current`."""
        path = self.root / HISTORY_FILE
        try:
            history = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"live": [], "events": []}
        except (OSError, json.JSONDecodeError) as error:
            raise BundleError(f"model store {self.root}: {path} cannot be read: {error}") from None
        if not isinstance(history, dict):
            raise BundleError(f"model store {self.root}: {path} must hold a JSON object")
        live, events = history.get("live", []), history.get("events", [])
        if not isinstance(live, list):
            raise BundleError(f"model store {self.root}: {path}: live must be a list of versions")
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise BundleError(f"model store {self.root}: {path}: events must be a list of objects")
        return {"live": list(live), "events": list(events)}

    def next_version(self) -> str:
        """The version a promotion gets when none is given: the highest one with minor + 1."""
        versions = self.versions()
        if not versions:
            return "1.0.0"
        major, minor, _ = parse_version(versions[-1])
        return f"{major}.{minor + 1}.0"

    # -- writing: under the store's lock ---------------------------------------------------------

    def add(self, source: Path | Callable[[Path], object], version: str | None = None) -> Bundle:
        """Move a finished bundle into ``versions/<version>`` atomically; never overwrites.

        Args:
            source: a bundle folder (moved, not copied, when on the store's file system), or a
                builder called with a path inside the store that does not exist yet, e.g.
                ``lambda out: export_bundle(run, out, version="1.1.0")``; a builder that fails
                leaves nothing behind.
            version: where it goes; defaults to the bundle's own version, and must match it.

        Returns:
            The verified bundle at its new place.

        Raises:
            ConfigError: ``version`` is not ``X.Y.Z``.
            BundleError: the version exists already, or the bundle fails verification or
                declares another version.
        """
        if version is not None:
            self.path_of(version)  # a bad version fails before any work
        with self._lock(), self.staging() as staged:
            if callable(source):
                source(staged)
                bundle_dir = staged
            else:
                bundle_dir = Path(source)
            bundle = verify_bundle(bundle_dir)
            version = version or bundle.version
            if bundle.version != version:
                raise BundleError(
                    f"bundle {bundle_dir}: metadata.json says version {bundle.version}; "
                    f"it cannot be added as {version}"
                )
            target = self.path_of(version)
            if target.exists():
                raise BundleError(
                    f"model store {self.root}: version {version} exists already; "
                    "versions are never overwritten (choose another --version)"
                )
            self.versions_dir.mkdir(parents=True, exist_ok=True)
            if bundle_dir != staged and not _same_device(bundle_dir, self.root):
                shutil.copytree(bundle_dir, staged)  # then renamed: still atomic in the store
                _fsync_tree(staged)
                move_dir(staged, target)
                shutil.rmtree(bundle_dir)
            else:
                move_dir(bundle_dir, target)
        return self.show(version)

    def set_current(
        self,
        version: str,
        *,
        details: Mapping[str, Any] | None = None,
        expected_live: str | Literal[Unchecked.ANY] | None = Unchecked.ANY,
    ) -> str | None:
        """Make ``version`` live: verify it, then replace ``models/current`` atomically.

        Args:
            version: the stored version to make live.
            details: more facts for the switch's event in ``history.json`` (e.g. how the new
                version compared with the live one).
            expected_live: the version the caller saw live when it decided to switch (None:
                nothing was live). Checked under the store's lock, so a decision made on a live
                model that another process replaced meanwhile is never acted on.

        Returns:
            The version that was live before (None if none).

        Raises:
            ConfigError: ``version`` is not ``X.Y.Z``.
            BundleError: the version is not stored or fails verification; nothing changes.
            BusyError: another version than ``expected_live`` is live; nothing changes.
        """
        with self._lock():
            if expected_live is not Unchecked.ANY:
                self._refuse_changed_live(expected_live)
            return self._switch(version, action="promote", details=details)

    def rollback(self) -> str:
        """Make the previously live version live again; returns it.

        Successive rollbacks walk further back (1.2.0 -> 1.1.0 -> 1.0.0). A corrupt or
        missing pointer is repaired: the history's last live version is taken as the current
        one, and the rollback goes back from it. When there is no version before that one, the
        error says the pointer is broken and names the command that makes the history's last
        live version live again (:meth:`pointer_problem`).

        Raises:
            BundleError: there is no previous live version, or its bundle fails verification.
        """
        if not self.root.is_dir():  # refused without creating the store's lock file
            raise BundleError(
                f"model store {self.root}: nothing to roll back to; no version has been live yet"
            )
        with self._lock():
            current, broken = self._read_pointer()  # broken: the history knows what was live
            live = self._live_stack(current)
            if len(live) < 2 and (broken or (current is None and live)):
                # nowhere to go back to, but the pointer needs repair: say how
                problem = broken or f"{self.root / CURRENT_FILE} is missing"
                raise BundleError(
                    f"model store {self.root}: nothing to roll back to, and {problem}; "
                    f"{self._repair_hint()}"
                )
            if len(live) < 2:
                raise BundleError(
                    f"model store {self.root}: nothing to roll back to; {self._why_not(live)}"
                )
            target = live[-2]
            self._switch(target, action="rollback")
            return target

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A path inside the store (not yet existing) to build a bundle at; cleaned up after.

        The staging folder starts with ``.``, so a crash leaves no folder that looks like a
        version.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.root))
        try:
            yield folder / "bundle"
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    # -- internals --------------------------------------------------------------------------------

    def _refuse_changed_live(self, expected: str | None) -> None:
        live, _ = self._read_pointer()  # a corrupt pointer reads as nothing live, as for the caller
        if live != expected:
            raise BusyError(
                f"model store {self.root}: the live version changed from {expected or 'none'} "
                f"to {live or 'none'} while this promotion ran; nothing was switched"
            )

    def _read_pointer(self) -> tuple[str | None, str | None]:
        """The version ``models/current`` names (None: no pointer), or what is wrong with it."""
        pointer = self.root / CURRENT_FILE
        try:
            text = pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None, None
        if not _is_version(text):
            return None, f"{pointer} must name a version X.Y.Z; got {text!r}"
        return text, None

    def _repair_hint(self) -> str:
        """How to make the version the history says was live last live again: the command that
        rolls forward to a stored version (``ltr promote`` of its source run)."""
        try:
            live = self._live_stack(None)
        except BundleError as error:
            return f"and {error}"
        promote = "ltr promote RUN --to production"
        if not live:
            return f"no version has been live yet: promote one with `{promote} --store {self.root}`"
        version = live[-1]
        try:
            bundle = self.read(version)
        except LtrError:
            return (
                f"{HISTORY_FILE} says {version} was live last, but it cannot be read from "
                f"{self.versions_dir}: promote a run with `{promote} --store {self.root}`"
            )
        name = (bundle.metadata.get("validated") or {}).get("name")
        run = bundle.source_run or "RUN"
        command = f"ltr promote {run} --to production" + (f" --name {name}" if name else "")
        command += f" --version {version} --store {self.root}"
        where = "" if bundle.source_run else f" (RUN: the run {version} was exported from)"
        again = f"make it live again with `{command}`{where}"
        return f"{HISTORY_FILE} says {version} was live last: {again}"

    def _why_not(self, live: list[str]) -> str:
        """Why a rollback has nowhere to go, ``live`` (at most one version) being the stack."""
        if not live:
            return "no version has been live yet"
        current = live[-1]
        went_live = {str(event.get("to")) for event in self.history()["events"]}
        rolled_back = sorted(went_live - {current, "None"}, key=_version_key)
        if rolled_back:
            later = ", ".join(rolled_back)
            return (
                f"no version was live before {current}; the later ones were rolled back ({later})"
            )
        return f"{current} is the only version that has been live"

    def _switch(
        self, version: str, *, action: str, details: Mapping[str, Any] | None = None
    ) -> str | None:
        self.show(version)  # refuse a missing or altered bundle before touching the pointer
        previous, _ = self._read_pointer()  # a corrupt pointer: None, and this switch repairs it
        if previous == version:
            return previous
        history = self.history()  # an unreadable history refuses before the pointer moves
        live = self._live_stack(previous, history)
        if action == "rollback":
            live = live[:-1]  # the version rolled back from leaves the stack
        if not live or live[-1] != version:
            live.append(version)
        event: dict[str, Any] = {
            "at": _utc_now(),
            "action": action,
            "from": previous,
            "to": version,
        }
        event |= details or {}
        history = {
            "live": live[-MAX_HISTORY:],
            "events": [*history["events"], event][-MAX_HISTORY:],
        }
        # pointer first: a crash before the history write loses one history entry, never the
        # switch itself; _live_stack reconciles the two
        atomic_write_text(self.root / CURRENT_FILE, version + "\n")
        fsync_dir(self.root)
        atomic_write_text(self.root / HISTORY_FILE, _history_text(history))
        return previous

    def _live_stack(
        self, current: str | None, history: dict[str, list[Any]] | None = None
    ) -> list[str]:
        """Live versions, oldest first, ending with ``current`` even if the history missed it."""
        live = [str(v) for v in (history or self.history())["live"] if _is_version(str(v))]
        if current is not None and (not live or live[-1] != current):
            live.append(current)
        return live

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        return exclusive_lock(self.root / LOCK_FILE)


def _refuse_file_in_the_way(root: Path) -> None:
    """A store at ``root`` could never be read or written if it, or a folder above it, is a
    file; say so up front instead of failing with an OS error inside a command."""
    for path in (root, *root.parents):
        if path.exists():
            if not path.is_dir():
                where = "is a file" if path == root else f"is inside {path}, a file"
                raise ConfigError(f"model store {root} {where}, not a folder")
            return


def _version_key(name: str) -> tuple[int, ...]:
    return parse_version(name) if _is_version(name) else (-1,)


def _is_version(name: str) -> bool:
    try:
        parse_version(name)
    except LtrError:
        return False
    return True


def _history_text(history: dict[str, list[Any]]) -> str:
    """One event per line: readable with ``cat``, and fast (``indent=`` is pure-Python JSON)."""
    events = ",\n    ".join(json.dumps(event, sort_keys=True) for event in history["events"])
    return f'{{\n  "live": {json.dumps(history["live"])},\n  "events": [\n    {events}\n  ]\n}}\n'


def _same_device(a: Path, b: Path) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb+") as handle:
                os.fsync(handle.fileno())
    fsync_dir(folder)


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
