"""Validation problems in ltr's own words, for pydantic errors (configs) and option values (CLI).

pydantic's and click's wording ("Input should be ...", "Value error, ...") names their machinery,
not the user's mistake; these helpers say what must hold, what was given, and the closest valid
name when a name was misspelt.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ltr.errors import ShapeError

_NAME_PATTERN_WORDS = "may hold only letters, digits, '_', '.' and '-'"

# pydantic error type -> what the value must be
_MUST_BE = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping of fields (a section)",
    "model_attributes_type": "a mapping of fields (a section)",
    "path_type": "a path",
}
_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def closest_hint(word: str, choices: Iterable[str], *, prefix: str = "") -> str:
    """``"; did you mean <prefix><closest>?"`` or ``""`` when nothing is close."""
    choices = list(choices)
    # the same name but for case first ('fold1' for 'Fold1'); then 0.75, not difflib's 0.6:
    # 'gpu' must not suggest 'cpu'; a prefix ('lin') or swapped letters ('mpl') are close enough
    close = [choice for choice in choices if choice.casefold() == word.casefold()]
    close = (
        close
        or difflib.get_close_matches(word, choices, n=1, cutoff=0.75)
        or [
            choice
            for choice in choices
            if word and (choice.startswith(word) or sorted(choice) == sorted(word))
        ]
    )
    return f"; did you mean {prefix}{close[0]}?" if close else ""


def not_one_of(value: Any, choices: Iterable[str]) -> str:
    """``'gpu' is not one of cpu, cuda, auto``, plus the closest choice when there is one."""
    choices = list(choices)
    hint = closest_hint(str(value), choices)
    return f"{value!r} is not one of {', '.join(choices)}{hint}"


def pydantic_problem(error: Mapping[str, Any]) -> str:
    """One pydantic error (an item of ``ValidationError.errors()``) without pydantic's wording;
    the caller names the field."""
    kind, ctx = error["type"], error.get("ctx") or {}
    got = f"; got {_short(error.get('input'))}"
    if kind == "missing":
        return "required"
    if kind == "literal_error":
        return not_one_of(error.get("input"), re.findall(r"'([^']*)'", ctx.get("expected", "")))
    if kind in _MUST_BE:
        return f"must be {_MUST_BE[kind]}{got}"
    bound = next((key for key in _BOUNDS if key in ctx), None)
    if bound is not None and kind.startswith(("greater_than", "less_than")):
        return f"must be {_BOUNDS[bound]} {ctx[bound]}{got}"
    if kind == "string_pattern_mismatch":
        from ltr.config import NAME_PATTERN

        rule = _NAME_PATTERN_WORDS if ctx.get("pattern") == NAME_PATTERN else "has a wrong form"
        return f"{rule}{got}"
    if kind in ("string_too_short", "too_short"):
        return f"must not be empty{got}"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    return plain(str(error["msg"]))


def plain(message: str) -> str:
    """A message from pydantic or click (as typer passes them on) in ltr's wording."""
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    found = re.fullmatch(r"'(.*)' is not one of ('.*?')\.?", message)
    if found:  # typer's choice check: "'gpu' is not one of 'cpu', 'cuda', 'auto'."
        return not_one_of(found[1], re.findall(r"'([^']*)'", found[2]))
    found = re.fullmatch(r"Input should be a valid (\w+)\b.*", message)
    if found:  # "Input should be a valid integer, unable to parse string as an integer"
        return f"must be a valid {found[1]}"
    return message.replace("Input should be", "must be").rstrip(".")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def refuse_bad_labels(*, n_infinite: int, n_negative: int) -> None:
    """Raise :class:`~ltr.errors.ShapeError` when real documents hold non-finite or negative
    labels: one wording for the metrics, the losses and the data sets."""
    if n_infinite:
        raise ShapeError(
            f"labels must be finite; labels hold NaN or inf at {n_infinite} real documents"
        )
    if n_negative:
        raise ShapeError(
            f"labels must be non-negative; labels hold negative values at {n_negative} real "
            "documents"
        )
