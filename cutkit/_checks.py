"""Checks of numeric settings, shared by every layer: one place that says what a bad value is.

:func:`check_number` turns a setting into a float (or an int) or raises a ``ValueError`` that names
the setting, the value it got, the range it allows and why::

    ul_weight must be a finite number >= 0, got nan: alpha weighs the unlikelihood term ...

NaN and the infinities are never in range (they are not finite), and neither are bools nor strings
(``True`` is not a learning rate, and ``"1e-3"`` is a parsing slip the caller should see).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

MIN_CONTEXT = 64
"""The shortest ``max_length`` a setting accepts, in tokens. The prompt templates take about 40
tokens before the instruction; below 64 tokens a judged prompt cannot keep its instruction and
judgment beside even a short response, and left-truncation would make the judged and plain
contexts the same text."""


def _describe(minimum, maximum, min_open: bool, max_open: bool, integer: bool) -> str:
    kind = "an integer" if integer else "a finite number"
    if minimum is not None and maximum is not None:
        left, right = "(" if min_open else "[", ")" if max_open else "]"
        return f"{kind} in {left}{minimum:g}, {maximum:g}{right}"
    if minimum is not None:
        return f"{kind} {'>' if min_open else '>='} {minimum:g}"
    if maximum is not None:
        return f"{kind} {'<' if max_open else '<='} {maximum:g}"
    return kind


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    min_open: bool = False,
    max_open: bool = False,
    integer: bool = False,
    optional: bool = False,
    words: tuple[str, ...] = (),
    why: str = "",
) -> Any:
    """``value`` as a float (an int with ``integer=True``; None stays None with ``optional=True``;
    one of ``words`` stays that word), or a ``ValueError`` naming ``name``, the value, the allowed
    range and ``why``.

    Args:
        name: the setting's name, as the user writes it (e.g. ``"ul_weight"``).
        value: what was given: a real number (a one-element tensor or numpy scalar works too).
        minimum, maximum: bounds, inclusive unless ``min_open`` / ``max_open``.
        integer: the value must be a whole number (``3.0`` passes as 3, ``2.5`` does not).
        optional: None is allowed (and returned).
        words: strings allowed besides numbers (and returned), e.g. ``("auto",)``.
        why: the reason for the range, ends the message.

    >>> check_number("lora_r", 16, minimum=1, integer=True)
    16
    >>> check_number("gamma", float("nan"), minimum=0)
    Traceback (most recent call last):
    ValueError: gamma must be a finite number >= 0, got nan
    """
    if value is None and optional:
        return None
    if isinstance(value, str) and value in words:
        return value
    others = [repr(word) for word in words] + (["None"] if optional else [])
    allowed = ", ".join([_describe(minimum, maximum, min_open, max_open, integer), *others[:-1]])
    if others:
        allowed += f" or {others[-1]}"
    number = math.nan
    if not isinstance(value, bool | str | bytes):
        try:
            number = float(value)
        except (TypeError, ValueError, RuntimeError):
            number = math.nan
    ok = math.isfinite(number)
    if ok and integer:
        ok = number == int(number)
    if ok and minimum is not None:
        ok = number > minimum if min_open else number >= minimum
    if ok and maximum is not None:
        ok = number < maximum if max_open else number <= maximum
    if not ok:
        shown = (
            value
            if value is None or isinstance(value, bool | str | bytes | numbers.Number)
            else number
        )
        message = f"{name} must be {allowed}, got {shown!r}"
        raise ValueError(f"{message}: {why}" if why else message)
    return int(number) if integer else number
