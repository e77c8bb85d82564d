"""``train.log``: a copy of what a command printed, kept in the run directory it was about.

Everything ``ltr`` shows goes through ``sys.stdout`` and ``sys.stderr`` (rich consoles look
them up at each print; ``warning:`` and progress lines, Python warnings and the closing
``error:`` line write to them), so the copy is taken there, once, instead of beside each print.
:func:`capture_console` (the ``ltr`` command line, on rank 0) puts a tee on both streams for
the whole command and keeps the lines in memory until a run says where they go;
:func:`log_console_to` (the run, once its directory is the one worked on) writes those lines
to its ``train.log`` and then appends each line as it is printed. The file is a log, not an
artifact: appended line by line, never replaced; a resumed run continues it after a separator.
A command that trains several runs keeps its own log beside theirs (``cv.log``,
:func:`log_command_to`): every line it printed, whichever run was going on.

A quiet command (``--quiet``, or ``ltr cv``'s folds, whose epochs it does not show) still logs
what it would have shown: :func:`run_console` gives it a console whose lines go to the log
alone (the run's, or the command's own: ``ltr cv --quiet``'s fold lines and table are in
``cv.log``).

Lines are kept as a terminal ends up showing them, so a live progress bar leaves nothing:
colours and other escape sequences are dropped, a line redrawn in place keeps only what follows
its last carriage return, and a cursor moved up over lines of the same write (how rich takes
a finished bar off the screen) takes them back.
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console

__all__ = [
    "capture_console",
    "log_command_lines",
    "log_command_to",
    "log_console_to",
    "next_run_lines",
    "run_console",
]

# CSI sequences (colours, cursor moves, erase line), OSC sequences (links), other 2-byte escapes
_ESCAPES = re.compile(r"(\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_])")
_CURSOR_UP = re.compile(r"\x1b\[(\d*)A")


class _Capture:
    """The lines of the command so far (until a log takes them), then the run's open log, and
    the command's own log (``cv.log``) when it keeps one.

    Runs that train side by side in threads (``ltr tune --n-jobs 2``) each have their log: a
    thread that opened one writes its lines there. A thread that never opened one (a live
    display's refresh thread) writes to the log opened last.
    """

    def __init__(self) -> None:
        self.pending: list[str] = []  # printed while no run's log was open: the next run's
        self.logs: dict[int, TextIO] = {}  # each thread's open train.log
        self.openers: set[int] = set()  # threads that opened a log, open or closed since
        self.latest: int | None = None  # the thread whose log opened last
        self.command_log: TextIO | None = None  # cv.log: every printed line, to the end
        self._lock = threading.Lock()

    @property
    def log(self) -> TextIO | None:
        """The run's log the calling thread writes to."""
        thread = threading.get_ident()
        if thread in self.openers:
            return self.logs.get(thread)
        return None if self.latest is None else self.logs.get(self.latest)

    def add(self, line: str, *, printed: bool = True) -> None:
        """``printed``: on the screen too, so the command's log takes it (else a quiet run's
        line, for the run's log alone)."""
        with self._lock:
            if printed:
                self._to_command_log(line)
            log = self.log
            if log is not None:
                if _written(log, line) is None:  # a full disk: that log takes no more
                    self.logs = {k: v for k, v in self.logs.items() if v is not log}
            elif printed:
                self.pending.append(line)

    def add_to_command_log(self, line: str) -> None:
        """A line a quiet command leaves off the screen: for its own log alone (``cv.log``)."""
        with self._lock:
            self._to_command_log(line)

    def _to_command_log(self, line: str) -> None:  # under the lock
        if self.command_log is not None:
            self.command_log = _written(self.command_log, line)

    def attach(self, path: Path, *, resumed: bool) -> None:
        self.close()
        with self._lock:
            thread = threading.get_ident()
            self.logs[thread] = _opened(path, resumed, self.pending)
            self.openers.add(thread)
            self.latest = thread
            self.pending = []

    def attach_command_log(self, path: Path, *, resumed: bool) -> None:
        """The command's log takes what was printed so far too; the next run's log keeps it."""
        if self.command_log is not None:
            self.command_log.close()
        self.command_log = _opened(path, resumed, self.pending)

    def close(self) -> None:
        """Close the calling thread's log."""
        with self._lock:
            log = self.logs.pop(threading.get_ident(), None)
        if log is not None:
            log.close()

    def close_all(self) -> None:
        with self._lock:
            logs, self.logs = list(self.logs.values()), {}
        for log in logs:
            log.close()
        if self.command_log is not None:
            self.command_log.close()
            self.command_log = None


def _opened(path: Path, resumed: bool, earlier: list[str]) -> TextIO:
    """``path`` open for appending, after a ``--- resumed`` line if ``resumed`` (earlier
    sessions stay above; a run from before its log has none) and the ``earlier`` lines."""
    log = path.open("a", encoding="utf-8", buffering=1)  # line-buffered: written as it goes
    if resumed:
        log.write(f"--- resumed {datetime.now():%Y-%m-%d %H:%M:%S} ---\n")
    log.writelines(line + "\n" for line in earlier)
    return log


def _written(log: TextIO, line: str) -> TextIO | None:
    """``log`` after writing ``line`` to it; None once it failed (a full disk ends the copy,
    never the command)."""
    try:
        log.write(line + "\n")
    except OSError:
        with contextlib.suppress(OSError):  # closing flushes: the same full disk
            log.close()
        return None
    return log


class _Tee:
    """``stream``, whose complete lines are also handed to the capture while it lasts.

    Each thread's unfinished line is kept apart: ``print`` writes its text and its newline in
    two calls, and threads printing side by side (``ltr tune --n-jobs 2``) would otherwise join
    one thread's text to the other's line, in the other's log.
    """

    def __init__(self, stream: TextIO, capture: _Capture) -> None:
        self._stream, self._capture = stream, capture
        self._partials: dict[int, str] = {}  # each thread's line so far
        self.active = True

    def write(self, text: str) -> int:
        written = self._stream.write(text)
        if self.active:
            for line in self._lines(text):
                self._capture.add(line)
        return written

    def _lines(self, text: str) -> list[str]:
        """The lines ``text`` completes, as they stay on a terminal, in the calling thread's
        output."""
        thread = threading.get_ident()
        partial = self._partials.get(thread, "")
        lines: list[str] = []
        for i, piece in enumerate(_ESCAPES.split(text)):
            if i % 2:  # an escape sequence: only moving up over lines changes what is kept
                if up := _CURSOR_UP.fullmatch(piece):
                    del lines[max(0, len(lines) - int(up[1] or 1)) :]
                    partial = ""
                continue
            *done, partial = (partial + piece).split("\n")
            lines.extend(line.rsplit("\r", 1)[-1] for line in done)  # a redrawn line's end
        self._partials[thread] = partial
        return lines

    def end(self) -> None:
        for partial in self._partials.values():
            last = partial.rsplit("\r", 1)[-1]
            if last:  # a last line without its newline
                self._capture.add(last)
        self.active = False

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding: the stream's
        return getattr(self._stream, name)


_active: list[_Capture] = []


@contextlib.contextmanager
def capture_console(*, enabled: bool = True) -> Iterator[None]:
    """Copy the lines written to ``sys.stdout`` and ``sys.stderr`` inside the block, for the
    run that :func:`log_console_to` names; ``enabled=False`` (a torchrun rank other than 0,
    which writes no file) changes nothing."""
    if not enabled:
        yield
        return
    capture = _Capture()
    tees = {name: _Tee(getattr(sys, name), capture) for name in ("stdout", "stderr")}
    saved = {name: getattr(sys, name) for name in tees}
    for name, tee in tees.items():
        setattr(sys, name, tee)
    _active.append(capture)
    try:
        yield
    finally:
        _active.remove(capture)
        for name, tee in tees.items():
            tee.end()  # a logger may keep the tee: it goes on writing to the stream alone
            if getattr(sys, name) is tee:
                setattr(sys, name, saved[name])
        capture.close_all()


@contextlib.contextmanager
def log_console_to(path: Path, *, resumed: bool = False) -> Iterator[None]:
    """From here on, the captured console goes to ``path`` (appended; after a ``--- resumed``
    line when ``resumed``), starting with the lines printed before that no run took; nothing
    happens outside :func:`capture_console`.

    The block ending normally ends the copy. An error or a stop leaves the log open until the
    command ends (or another run's log opens), so the ``error:`` or ``interrupted by`` line the
    command prints last is in it.
    """
    capture = _active[-1] if _active else None
    if capture is None:
        yield
        return
    capture.attach(path, resumed=resumed)
    yield  # an exception raised here skips the close below, on purpose
    capture.close()


def next_run_lines() -> None:
    """Lines printed from here on, until a run's log opens, are that run's (its warnings before
    its directory exists); those printed before stay the command's alone (``ltr cv``'s line
    about the previous fold)."""
    if _active:
        _active[-1].pending = []


def log_command_to(path: Path, *, resumed: bool = False) -> None:
    """From here to the command's end, every line it prints also goes to ``path`` (appended;
    after a ``--- resumed`` line when ``resumed``), starting with those printed before: the
    log of a command that trains several runs (``cv.log``), beside each run's own ``train.log``,
    which also takes the lines a quiet run does not print. Nothing happens outside
    :func:`capture_console`."""
    if _active:
        _active[-1].attach_command_log(path, resumed=resumed)


def log_command_lines(text: str) -> None:
    """``text``'s lines to the command's own log alone (``cv.log``): what a quiet command leaves
    off the screen, e.g. the table of ``ltr cv --quiet``."""
    _LogOnly(command=True).write(text.rstrip("\n") + "\n")


class _LogOnly:
    """A stream whose complete lines go to the log of the capture in progress, and nowhere
    else (dropped outside a capture: the Python API, a torchrun rank other than 0): the run's
    ``train.log``, or with ``command`` the command's own log (``cv.log``)."""

    def __init__(self, *, command: bool = False) -> None:
        self._partial, self._command = "", command

    def write(self, text: str) -> int:
        *done, self._partial = (self._partial + text).split("\n")
        if _active:
            for line in done:
                line = _ESCAPES.sub("", line)
                if self._command:
                    _active[-1].add_to_command_log(line)
                else:
                    _active[-1].add(line, printed=False)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False  # no live progress bar: the log keeps the epoch lines


def run_console(*, quiet: bool, stderr: bool = False, command: bool = False) -> Console:
    """The console a run prints on: ``sys.stderr`` (progress) or ``sys.stdout`` (results); when
    ``quiet``, one whose lines reach the run's ``train.log`` but not the screen (with
    ``command``, the command's own log: ``ltr cv``'s line per fold goes to ``cv.log``)."""
    if quiet:
        log_only = _LogOnly(command=command)
        return Console(file=log_only, soft_wrap=True, markup=False, color_system=None)  # type: ignore[arg-type]
    return Console(stderr=stderr, soft_wrap=True, markup=False)
