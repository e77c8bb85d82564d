"""Vectorized decimal parsing of byte fields (private; used by the LETOR reader).

A chunk of text is a ``uint8`` array followed by ``PAD`` spaces, so fixed-width windows never
run off its end. Fields are given by ``starts``/``ends`` offsets and parsed all at once, one
column (place value) at a time. ``[+-]digits[.digits]`` with at most 15 digits becomes
``mantissa / 10**decimals``: both are exact in float64 and IEEE division rounds once, so the
value equals what ``strtod`` returns. Other spellings (``1e-5``, ``nan``, long digit strings)
go through ``float()``; a field that is not a number makes the caller fall back to its exact
line-by-line parser (functions return None).
"""

from __future__ import annotations

import numpy as np

PAD = 64  # spaces after a chunk, so fixed-width windows never run off its end
_MAX_DIGITS = 15  # integer mantissas up to 15 digits are exact in float64 (< 2**53)
_POW10 = 10.0 ** np.arange(PAD)


def parse_indices(a: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray | None:
    """``int64 [n]`` of fields made of 1 to 9 digits; None if any field is something else.

    Digits are read right to left, one column (place value) at a time, for all fields at once.
    """
    lengths = ends - starts
    width = int(lengths.max()) if lengths.size else 0
    if width > 9:
        return None
    base = ends - PAD  # a[PAD - 1 - k:][base] is the k-th character from a field's end
    number = np.zeros(starts.shape[0], dtype=np.int64)
    worst = np.zeros(starts.shape[0], dtype=np.uint8)
    for k in range(width):
        digit = a[PAD - 1 - k :][base] - np.uint8(48)
        if k:
            digit *= lengths > k  # left of a shorter field: not part of it
        np.maximum(worst, digit, out=worst)
        number += digit * np.int64(10**k)  # int64: uint8 arithmetic would wrap
    return number if not (worst > 9).any() else None


def parse_numbers(
    a: np.ndarray, starts: np.ndarray, ends: np.ndarray, *, integer: bool = False
) -> np.ndarray | None:
    """``float64 [n]`` of the number fields ``a[starts:ends]``; None on a bad field.

    ``integer``: only plain digit strings are accepted. Fields are handled in groups of
    equal width, so each group is a fixed-width ``uint8`` matrix (see :func:`_parse_width`).
    """
    out = np.empty(starts.shape[0], dtype=np.float64)
    lengths = ends - starts
    for width in np.flatnonzero(np.bincount(lengths)).tolist():
        rows = None if lengths[0] == width and lengths.min() == lengths.max() else lengths == width
        group = starts if rows is None else starts[rows]
        values = _parse_width(a, group, width, integer)
        if values is None:
            return None
        if rows is None:
            return values
        out[rows] = values
    return out


def _parse_width(a: np.ndarray, starts: np.ndarray, width: int, integer: bool) -> np.ndarray | None:
    """Numbers of ``width`` characters each, equal to what ``strtod`` returns.

    ``[+-]digits[.digits]`` with at most 15 digits is ``mantissa / 10**decimals``: both are
    exact in float64 and IEEE division rounds once, so the result is correctly rounded.
    Other spellings (``1e-5``, ``nan``, long digit strings) go through ``float()``.
    """
    if width > _MAX_DIGITS:
        return None if integer else _parse_one_by_one(a, starts, width)
    first = a[starts[0] : starts[0] + width].tobytes()
    dot = width if integer or b"." not in first else first.index(b".")
    values = _parse_unsigned(a, starts, width, dot)  # the common case: fields like the first
    if values is not None or integer:
        return values
    fields = np.lib.stride_tricks.sliding_window_view(a, width)[starts]
    return _parse_mixed(a, starts, fields)


def _parse_unsigned(a: np.ndarray, starts: np.ndarray, width: int, dot: int) -> np.ndarray | None:
    """Values of fields ``width`` wide that all are digits with a ``.`` at column ``dot``
    (``width``: no dot); None if any field differs. One column at a time, all fields at once:
    ``mantissa = mantissa * 10 + digit``."""
    if dot < width and not (a[dot:][starts] == ord(".")).all():
        return None
    mantissa = np.zeros(starts.shape[0], dtype=np.int64)
    worst = np.zeros(starts.shape[0], dtype=np.uint8)
    for k in range(width):
        if k != dot:
            digit = a[k:][starts] - np.uint8(48)
            np.maximum(worst, digit, out=worst)
            mantissa *= 10
            mantissa += digit
    if (worst > 9).any():
        return None
    values: np.ndarray = mantissa / _POW10[max(width - 1 - dot, 0)]
    return values


def _parse_mixed(a: np.ndarray, starts: np.ndarray, fields: np.ndarray) -> np.ndarray | None:
    """Fields of one width with signs, dots in different columns, or odd spellings."""
    width = fields.shape[1]
    digits = fields - np.uint8(48)
    is_digit = digits <= 9
    is_dot = fields == ord(".")
    sign = (fields[:, 0] == ord("-")) | (fields[:, 0] == ord("+"))
    odd = ~(is_digit | is_dot)
    odd[:, 0] &= ~sign
    simple = ~odd.any(axis=1) & (is_dot.sum(axis=1) <= 1) & is_digit.any(axis=1)
    dot = np.where(is_dot.any(axis=1), is_dot.argmax(axis=1), width)  # width: no dot
    mantissa = np.zeros(starts.shape[0], dtype=np.int64)
    for column, in_number in zip(digits.T, is_digit.T, strict=True):
        mantissa = np.where(in_number, mantissa * 10 + column, mantissa)
    values: np.ndarray = mantissa / _POW10[np.maximum(width - 1 - dot, 0)]
    values[fields[:, 0] == ord("-")] *= -1.0
    if not simple.all():
        odd_rows = np.flatnonzero(~simple)
        parsed = _parse_one_by_one(a, starts[odd_rows], width)
        if parsed is None:
            return None
        values[odd_rows] = parsed
    return values


def _parse_one_by_one(a: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray | None:
    out = np.empty(starts.shape[0], dtype=np.float64)
    for i, start in enumerate(starts.tolist()):
        value = to_float(a[start : start + width].tobytes())
        if value is None:
            return None
        out[i] = value
    return out


def to_float(text: bytes) -> float | None:
    """``float(text)``, or None; Python's underscores (``1_0``) are not numbers here."""
    if b"_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        return None
