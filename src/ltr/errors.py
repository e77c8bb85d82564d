"""The one exception tree of ltr.

Every error raised on purpose derives from :class:`LtrError`; the CLI prints those as a single
``error: <message>`` line without a traceback. Each child also derives from the builtin it refines,
so generic handlers (``except ValueError``) keep working::

    LtrError(Exception)
    ├── BundleError(LtrError, ValueError)          a model bundle is incomplete or tampered with
    ├── BusyError(LtrError, RuntimeError)          another process is training the same run,
    │                                              or changed the live model meanwhile
    ├── DataFormatError(LtrError, ValueError)      a data file breaks its format (file:line)
    ├── DataNotFoundError(LtrError, FileNotFoundError)
    ├── ConfigError(LtrError, ValueError)          a config or command-line value is invalid
    │   └── UsageError(ConfigError)                an option's value is not among its choices
    ├── DivergedError(LtrError, ArithmeticError)   training's loss or weights became NaN or
    │                                              infinite; the config has to change
    ├── ExportError(LtrError, RuntimeError)        an ONNX export fails a check; nothing written
    ├── MissingExtraError(LtrError, ModuleNotFoundError)
    │                                              a package of an optional extra is not installed
    ├── PeerLostError(LtrError, RuntimeError)      a process of a distributed job lost another
    ├── PromotionRefused(LtrError)                 a run fails the promotion gate
    ├── ShapeError(LtrError, ValueError)           arrays handed to a public function disagree
    │                                              or hold values it cannot use (NaN scores)
    └── WriteError(LtrError, OSError)              an output cannot be written (permissions,
                                                   a read-only or full disk)
"""

from __future__ import annotations

from pathlib import Path


class LtrError(Exception):
    """Base of every error ltr raises on purpose; the CLI prints these without a traceback."""


class BundleError(LtrError, ValueError):
    """A model bundle is missing, incomplete or altered; the message names the bundle and file."""


class BusyError(LtrError, RuntimeError):
    """Another process holds the run (or cv) directory this one would train in, or replaced the
    live model a promotion was deciding on."""


class DataFormatError(LtrError, ValueError):
    """A data file does not follow its format; the message starts with ``file:line:``."""

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = Path(path), line, problem


class DataNotFoundError(LtrError, FileNotFoundError):
    """A data file or folder that was asked for does not exist."""


class ConfigError(LtrError, ValueError):
    """A configuration value or command-line option is invalid; the message names the field."""


class UsageError(ConfigError):
    """An option's value is not among its choices (``--loss``, ``--metrics``): bad usage, so the
    CLI exits with status 2, as for the choices click checks itself."""


class DivergedError(LtrError, ArithmeticError):
    """Training diverged (its loss or weights became NaN or infinite): the same config would
    diverge again, so a resume cannot help; the message says what to change."""


class ExportError(LtrError, RuntimeError):
    """An ONNX export failed (parity, quantization gate); the bundle was not written."""


class MissingExtraError(LtrError, ModuleNotFoundError):
    """A package of an optional extra is not installed; the message says what to install."""

    def __init__(self, package: str, extra: str, *, alternative: str | None = None) -> None:
        instead = f", or {alternative}" if alternative else ""
        super().__init__(
            f"{package} is not installed; it comes with the {extra} extra: "
            f"pip install 'ltr[{extra}]'{instead}",
            name=package,
        )
        self.package, self.extra = package, extra


class PeerLostError(LtrError, RuntimeError):
    """A process of a distributed job lost the connection to another one, which ended (failed,
    was killed or stopped); that process's own error is the cause worth reading."""


class PromotionRefused(LtrError):
    """A run does not pass the promotion gate; the message lists every failed check."""


class ShapeError(LtrError, ValueError):
    """Arrays passed to a public function do not fit together or hold values it cannot use."""


class WriteError(LtrError, OSError):
    """An output file or folder cannot be written; the message names the output."""
