"""Warnings as the user sees them: one ``warning: <message>`` line each, once per command.

ltr warns through its loggers (constant features, a dropped config field, a skipped file) and
through Python warnings of its own categories (:class:`ltr.metrics.CutoffWarning`). Left alone,
the first print as bare messages and the second as Python's two lines with a source line, and
the same message came again for every cv fold, tune trial and torchrun process.
"""

from __future__ import annotations

import logging
import warnings
from typing import TextIO

from ltr.cli._common import secondary_torchrun_process, warn

__all__ = ["route_warnings"]


class _WarningLines(logging.Handler):
    """Each distinct message once, as a ``warning:`` line on stderr."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.shown: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message not in self.shown:
            self.shown.add(message)
            warn(message)


def route_warnings() -> None:
    """Send ltr's logged warnings and its own Python warnings to ``warning:`` lines; under
    torchrun only rank 0 prints them (every rank would say the same). Other libraries'
    warnings keep Python's format."""
    logger = logging.getLogger("ltr")
    logger.addHandler(_WarningLines())
    logger.propagate = False
    if secondary_torchrun_process():
        logger.setLevel(logging.ERROR)
    show_as_python_does = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if category.__module__.startswith("ltr."):
            logger.warning("%s", message)
        else:
            show_as_python_does(message, category, filename, lineno, file, line)

    warnings.showwarning = show
