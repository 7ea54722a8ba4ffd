"""The rules a record's fields follow, in one place: what a text, an id, a flag, a mapping and an
error span must be.

Each check returns the value as a record stores it or raises :class:`FieldProblem`, which says
what is wrong with the value (``problem``), which field (``field``, relative: ``"response"``,
``"error_spans[2]"``) and what to do (``fix``), but not where the value came from. Its callers
add that: :class:`~cutkit.data.records.JudgmentRecord` (the record's id) and the loaders (file,
record index, JSONL line and the field's name in the source format), both as a
:class:`~cutkit.data.records.RecordError`.

>>> check_text(7, "instruction")
Traceback (most recent call last):
cutkit.data.checks.FieldProblem: field 'instruction': expected a string, got int 7. Make it a string
>>> check_error_spans([(3, 1)], "It is 5.")
Traceback (most recent call last):
cutkit.data.checks.FieldProblem: field 'error_spans[0]': span [3, 1] is empty or outside the response. Need 0 <= start < end <= 8
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

EMPTY_FIX = "Fill it in or remove the record"


class FieldProblem(ValueError):
    """A field value that breaks a rule of this module; the caller adds where it came from."""

    def __init__(self, problem: str, field: str, fix: str = ""):
        self.problem, self.field, self.fix = problem, field, fix
        message = f"field {field!r}: {problem}"
        super().__init__(f"{message}. {fix}" if fix else message)


def shorten(text: str, width: int = 40) -> str:
    """``text`` cut to ``width`` characters with "..." when longer."""
    return text if len(text) <= width else text[: width - 3] + "..."


def wrong_type(field: str, expected: str, value: Any) -> FieldProblem:
    """The problem "expected ``expected``, got <type> <value>" of ``field``."""
    got = f"{type(value).__name__} {shorten(repr(value))}"
    return FieldProblem(f"expected {expected}, got {got}", field, f"Make it {expected}")


def check_unicode(value: str, field: str) -> str:
    """``value`` if it is valid Unicode text; a lone surrogate (a JSON escape such as
    ``"\\ud800"`` is valid JSON but no character, and no tokenizer or UTF-8 file takes it) is a
    problem naming the field."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise FieldProblem(
            f"holds a lone surrogate {value[err.start]!r} at character {err.start} "
            "(invalid Unicode, e.g. half of a broken \\uXXXX escape pair)",
            field,
            fix="Remove it or complete the pair (a JSON escape like \\ud83d needs its low "
            "half, \\ude00)",
        ) from err
    return value


def check_text(
    value: Any, field: str, *, optional: bool = False, blank_ok: bool = False
) -> str | None:
    """A text field: a string of valid Unicode, not blank (empty or whitespace only) unless
    ``blank_ok``; None only when ``optional``."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise wrong_type(field, "a string or null" if optional else "a string", value)
    if not blank_ok and not value.strip():
        raise FieldProblem("is empty", field, EMPTY_FIX)
    return check_unicode(value, field)


def check_id(value: Any, field: str = "id") -> str:
    """A record id: a string, or an integer (stored as its decimal string)."""
    if isinstance(value, str):
        return check_unicode(value, field)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    raise wrong_type(field, "a string or an integer", value)


def check_flag(value: Any, field: str) -> bool | None:
    """True, False (a numpy bool too) or None."""
    if value is None or isinstance(value, bool):
        return value
    if (
        getattr(getattr(value, "dtype", None), "kind", None) == "b"
        and getattr(value, "ndim", 1) == 0
    ):
        return bool(value)
    raise wrong_type(field, "true, false or null", value)


def check_mapping(value: Any, field: str) -> dict[str, Any]:
    """A mapping as a dict (None: an empty one)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise wrong_type(field, "an object (a dict) or null", value)
    return value if isinstance(value, dict) else dict(value)


def check_error_spans(
    value: Any, response: str, field: str = "error_spans"
) -> list[tuple[int, int]]:
    """Error spans as ``(start, end)`` character spans of ``response``: each given as a pair of
    integers with ``0 <= start < end <= len(response)`` or as a substring of the response (its
    first occurrence); None is no spans."""
    value = value.tolist() if hasattr(value, "tolist") else value  # numpy arrays from DataFrames
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise wrong_type(field, "a list", value)
    spans = []
    for k, span in enumerate(value):
        name = f"{field}[{k}]"
        span = span.tolist() if hasattr(span, "tolist") else span
        if isinstance(span, str):
            start = response.find(span) if span else -1
            if start < 0:
                problem = f"substring {shorten(repr(span), 60)} does not occur in the response"
                raise FieldProblem(problem, name, "Quote the response exactly or give [start, end]")
            spans.append((start, start + len(span)))
        elif _is_int_pair(span):
            start, end = int(span[0]), int(span[1])
            if not 0 <= start < end <= len(response):
                problem = f"span [{start}, {end}] is empty or outside the response"
                raise FieldProblem(problem, name, f"Need 0 <= start < end <= {len(response)}")
            spans.append((start, end))
        else:
            raise wrong_type(name, "[start, end] or a substring of the response", span)
    return spans


def _is_int_pair(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
    )
