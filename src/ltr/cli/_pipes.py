"""A reader that goes away ends the output, never the command.

``ltr train ... 2>&1 | head -2`` closes the pipe after two lines; Python ignores SIGPIPE, so the
next print raises :class:`BrokenPipeError` in the middle of training. Output is a courtesy, the
run directory is the result: a stream whose reader is gone is pointed at ``os.devnull`` (as
Python's documentation advises for SIGPIPE) and the command carries on and exits as it would.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

__all__ = ["survive_closed_pipes"]


class _ReaderMayLeave:
    """``stream`` whose writes and flushes cannot fail because its reader left."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._discard_from_now_on()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._discard_from_now_on()

    def _discard_from_now_on(self) -> None:
        # the same file descriptor now leads nowhere: buffered bytes, later writes from any
        # code and the interpreter's final flush all succeed without a reader
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ... as the stream's
        return getattr(self._stream, name)


def survive_closed_pipes() -> None:
    """Guard ``sys.stdout`` and ``sys.stderr`` (file-backed ones only) for this process."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None or isinstance(stream, _ReaderMayLeave):
            continue
        try:
            stream.fileno()
        except (AttributeError, OSError, ValueError):  # captured in memory (tests): no pipe
            continue
        setattr(sys, name, _ReaderMayLeave(stream))
