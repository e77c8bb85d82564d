"""Bad usage (an unknown option, a bad choice, a missing value) as one ``error:`` line.

click would print a usage block, a hint line and a boxed message; ltr's errors are one line
naming the option, and bad usage keeps click's exit status 2 so scripts can tell it apart.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import typer

from ltr._messages import closest_hint, plain

# typer re-exports click's BadParameter; its module holds the other usage errors, for whichever
# click typer runs on (its own copy in recent typer, click itself in older ones)
click_errors: Any = sys.modules[typer.BadParameter.__module__]

ClickException = click_errors.ClickException
Abort = typer.Abort


def is_help_without_arguments(error: Exception) -> bool:
    """``ltr`` or ``ltr models`` alone: click has printed the help already."""
    return type(error).__name__ == "NoArgsIsHelpError"  # not exported by every click version


def usage_line(error: Any) -> str:
    """The one line (without ``error:``) for a click usage error."""
    command = error.ctx.command_path if getattr(error, "ctx", None) is not None else "ltr"
    if isinstance(error, click_errors.NoSuchOption):
        hint = closest_hint(error.option_name, error.possibilities or ())
        return f"{error.option_name}: no such option of {command}{hint}"
    if isinstance(error, click_errors.MissingParameter):
        return f"{_param_name(error)}: required"
    if isinstance(error, click_errors.BadParameter):
        return f"{_param_name(error)}: {plain(error.message)}"
    if isinstance(error, click_errors.BadOptionUsage):
        if error.message.endswith("requires an argument."):
            return f"{error.option_name}: needs a value"
        return f"{error.option_name}: {_lowered(error.message)}"
    if unknown := re.match(r"No such command '(.*?)'", error.format_message()):
        commands = getattr(error.ctx.command, "commands", {}) if error.ctx is not None else {}
        hint = closest_hint(unknown[1], commands)  # typer's own hint quotes and punctuates oddly
        return f"{command}: no such command {unknown[1]!r}{hint or f'; see {command} --help'}"
    return f"{command}: {_lowered(error.format_message())}; see {command} --help"


def _param_name(error: Any) -> str:
    """``--device`` for an option (its long name), ``RUN`` for an argument."""
    param = error.param
    if error.param_hint is not None:
        hint = error.param_hint
        return str(hint) if isinstance(hint, str) else " / ".join(hint)
    if param is None:
        return "value"
    if param.param_type_name == "argument":
        return str(param.metavar or param.name.upper())
    return str(max(param.opts, key=len))


def _lowered(message: str) -> str:
    return (message[:1].lower() + message[1:]).rstrip(".")
