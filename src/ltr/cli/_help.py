"""How ``--help`` names the value an option or argument takes.

Recent typer labels values with Python types (``--quiet <bool>``, ``--set <list[str]>``) and
writes required arguments as ``{run}``. ltr's help shows no value for a flag, a word for the
value (``PATH``, ``TEXT``, ``INTEGER``, the choices ``cpu|cuda|auto``, or the option's own
metavar such as ``KEY=VALUE``, ``RUN_DIR``) and arguments as ``RUN``, ``[RUN]``, ``RUNS...``.
:func:`install` adjusts typer's parameter classes once; on a typer without these methods (older
versions already print click's words) it changes nothing.
"""

from __future__ import annotations

import re
from typing import Any

import typer.core

_WORDS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "path": "PATH", "file": "FILE"}


def install() -> None:
    option: Any = getattr(typer.core, "TyperOption", None)
    argument: Any = getattr(typer.core, "TyperArgument", None)
    if not all(hasattr(cls, "display_type_rich") for cls in (option, argument)):
        return
    if getattr(option, "_ltr_help", False):
        return
    plain_type = option.display_type  # shared by options and arguments

    def display_type(self: Any, ctx: Any) -> str:
        return _value_word(plain_type(self, ctx))

    def option_type(self: Any, ctx: Any) -> str | None:
        if self.is_flag or self.count:  # a flag takes no value
            return None
        return self.metavar if self.metavar is not None else display_type(self, ctx)

    def argument_type(self: Any, ctx: Any) -> str | None:
        return None if self.metavar is not None else display_type(self, ctx)  # named already

    def usage_name(self: Any) -> str:
        name = self.metavar or self.name.upper()
        name = name if self.required else f"[{name}]"
        return f"{name}..." if self.nargs != 1 else name

    option.display_type = argument.display_type = display_type
    option.display_type_rich = option_type
    argument.display_type_rich = argument_type
    if hasattr(argument, "_usage_display_name"):
        argument._usage_display_name = usage_name
    option._ltr_help = True


def _value_word(label: str) -> str:
    """``<list[path]>`` -> ``PATH``; ``<cpu|cuda|auto>`` stays ``cpu|cuda|auto``."""
    label = label.strip("<>").removesuffix(" range")  # the range itself is printed beside
    while (found := re.fullmatch(r"list\[(.*)\]", label)) is not None:
        label = found[1]  # a list option is repeated: each occurrence takes one value
    if "|" in label:
        return label
    return _WORDS.get(label, label.upper())


class RegistryHelp(typer.core.TyperCommand):
    """A command whose option help names the registered losses and scorers: ``{losses}`` and
    ``{scorers}`` in a help text are filled when help is shown, so ``ltr train`` starts without
    importing the registries and the lists never drift from them."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        names = {"losses": ", ".join(loss_names()), "scorers": ", ".join(trainable_scorers())}
        for param in self.params:
            help_text = getattr(param, "help", None)
            if help_text and "{" in help_text:
                setattr(param, "help", help_text.format(**names))  # noqa: B010
        super().format_help(ctx, formatter)


def loss_names() -> tuple[str, ...]:
    from typing import get_args

    from ltr.config import LossName  # the registry's names (a test keeps them equal)

    return get_args(LossName)


def trainable_scorers() -> tuple[str, ...]:
    """Scorers ``ltr train --model`` builds; an ensemble averages trained runs instead."""
    from ltr.config import TRAINABLE_MODELS

    return TRAINABLE_MODELS
