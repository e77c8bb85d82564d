"""Ctrl-C and SIGTERM end a command the same way: cleanup runs, one line says what happened.

Python turns SIGINT into :class:`KeyboardInterrupt` but lets SIGTERM (what ``kill``, torchrun,
Kubernetes and systemd send) end the process on the spot: no ``finally`` block runs, so temp
files stay behind and an MLflow run stays RUNNING forever. :func:`stop_on_signals` (installed
by the ``ltr`` command line, once) makes both signals raise :class:`Interrupted` (a
:class:`KeyboardInterrupt`) in the main thread instead; every ``with``/``finally`` on the way
out then runs: atomic writes drop their temp file, a run closes its trackers (MLflow marks the
run KILLED), Optuna fails the trial.

An exception can still land inside a library call that does not survive one: an MLflow SQLite
transaction cut in the middle keeps the database locked, so the run cannot be marked KILLED
(20 s later, "database is locked") and a new store is left half-created. Such calls run in
:func:`deferred_interrupts`: a signal arriving meanwhile is raised when the block ends, or
earlier at a :func:`raise_if_interrupted` inside it, a point the code knows is safe (the trainer
has one before each batch: ``ltr tune`` defers a stop during a whole search, so a trial stops
between batches and never inside Optuna's bookkeeping).

Signals reach the main thread only. Other threads doing the work (``ltr tune --n-jobs``) learn
of a stop at their next :func:`raise_if_interrupted`, which raises :class:`Interrupted` there
too.

Code that knows what an interruption leaves behind adds it with ``error.add_note(...)``
(``ltr train`` notes its last checkpoint and the ``--resume`` command); :func:`interrupted_line`
puts those notes in the command's closing line. The exit status is the shell's convention,
128 + the signal number: 130 for SIGINT, 143 for SIGTERM. A second signal ends the process at
once (the default action), unless it comes within :data:`ECHO_SECONDS` of the first: Ctrl-C
under torchrun reaches every worker from the terminal and again from torchrun.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import NoReturn

__all__ = [
    "ECHO_SECONDS",
    "SIGNALS",
    "Interrupted",
    "default_signals",
    "deferred_interrupts",
    "exit_at_once_on_signal",
    "exit_process",
    "interrupted_line",
    "last_interruption",
    "raise_if_interrupted",
    "stop_on_signals",
]

SIGNALS = (signal.SIGINT, signal.SIGTERM)
ECHO_SECONDS = 1.0
_raised: list[Interrupted] = []  # typer turns a KeyboardInterrupt into exit 130; this keeps it
_deferred = {"depth": 0, "pending": False}


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; ``exit_code`` is 128 + its number."""

    def __init__(self, signal_number: int) -> None:
        self.signal_number = signal_number
        self.signal_name = signal.Signals(signal_number).name
        self.exit_code = 128 + signal_number
        self.monotonic_seconds = time.monotonic()
        super().__init__(self.signal_name)


def stop_on_signals() -> None:
    """From now on, SIGINT and SIGTERM raise :class:`Interrupted` in the main thread."""
    for number in SIGNALS:
        signal.signal(number, _on_signal)


def default_signals() -> None:
    """SIGINT and SIGTERM end the process at once again (nothing is left to clean up)."""
    for number in SIGNALS:
        signal.signal(number, signal.SIG_DFL)


def exit_at_once_on_signal(status: int) -> None:
    """From now on SIGINT or SIGTERM ends the process at once with ``status``, the command's
    own: what it did is done and reported, so a stop now only cuts the exit short (a finished
    run must not look failed to a script or to Kubernetes)."""

    def leave(signal_number: int, frame: FrameType | None) -> None:
        _flush_std_streams()
        os._exit(status)

    for number in SIGNALS:
        signal.signal(number, leave)


def exit_process(status: int) -> NoReturn:
    """End the process with ``status`` after the exit steps that matter, a stop meanwhile
    ending it at once with the same status (:func:`exit_at_once_on_signal`).

    The steps are the interpreter's own, in its order: wait for non-daemon threads (after
    ``concurrent.futures`` told its workers to stop), run the ``atexit`` callbacks (logging's
    flush, MLflow's, ``weakref.finalize`` cleanups such as temporary directories), flush stdout
    and stderr. What is skipped is the interpreter's teardown of every module, a second or two
    with torch and MLflow imported, during which CPython has put the default signal actions back
    (a stop then killed a finished command: exit 143, no line). Teardown closes nothing
    ``ltr`` relies on: its files are written in ``with`` blocks or closed by their owner
    (TensorBoard writers when a run ends, ``train.log`` when the command ends).
    """
    exit_at_once_on_signal(status)
    shutdown_threads = getattr(threading, "_shutdown", None)  # what Python calls at exit
    if shutdown_threads is not None:
        shutdown_threads()
    atexit._run_exitfuncs()
    _flush_std_streams()
    os._exit(status)


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            with contextlib.suppress(Exception):  # a closed pipe: nothing more to say
                stream.flush()


def last_interruption() -> Interrupted | None:
    """The :class:`Interrupted` a signal raised in this process, if any."""
    return _raised[-1] if _raised else None


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Run the block whole: a signal arriving meanwhile raises :class:`Interrupted` at its end.

    Only the main thread defers (signals are handled there); without :func:`stop_on_signals`
    this changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _deferred["depth"] += 1
    try:
        yield
    finally:
        _deferred["depth"] -= 1
        if _deferred["depth"] == 0 and _deferred["pending"]:
            _deferred["pending"] = False
            raise _raised[-1]


def raise_if_interrupted() -> None:
    """A safe point to stop: raise the :class:`Interrupted` a :func:`deferred_interrupts` block
    holds back, or, in a thread other than the main one, once the process got a signal."""
    stop = last_interruption()
    if stop is None:
        return
    if threading.current_thread() is not threading.main_thread():
        raise Interrupted(stop.signal_number)  # its own: threads must not share a traceback
    if _deferred["pending"]:
        _deferred["pending"] = False
        raise stop


def interrupted_line(stop: Interrupted) -> str:
    """``interrupted by SIGTERM; <notes>``: what the command leaves behind, on one line."""
    notes = [note for note in getattr(stop, "__notes__", []) if note]
    said = "; ".join(notes) if notes else "no output was left half-written"
    return f"interrupted by {stop.signal_name}; {said}"


def _on_signal(signal_number: int, frame: FrameType | None) -> None:
    first = last_interruption()
    if first is None:
        stop = Interrupted(signal_number)
        _raised.append(stop)
        if _deferred["depth"]:
            _deferred["pending"] = True
            return
        raise stop
    if time.monotonic() - first.monotonic_seconds < ECHO_SECONDS:
        return  # the same stop, forwarded: let cleanup finish
    default_signals()  # asked again: stop now
    os.kill(os.getpid(), signal_number)
