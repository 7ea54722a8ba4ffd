"""Typed access to one raw row's fields, with errors that name the file, record and field."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cutkit.data.checks import FieldProblem, check_id, check_text, check_unicode, wrong_type
from cutkit.data.records import RecordError
from cutkit.data.sources import SourceContext


@dataclass
class RecordFields:
    """Typed access to one raw record (or a nested object in it), with located errors."""

    row: Mapping[str, Any]
    context: SourceContext
    index: int
    prefix: str = ""  # path of ``row`` inside the record, e.g. "data.questions[2]."

    @classmethod
    def of(cls, row: Any, context: SourceContext, index: int) -> RecordFields:
        if not isinstance(row, Mapping):
            problem = f"record is a {type(row).__name__}, not an object"
            raise context.error(problem, index=index, fix="Make every record a JSON object / dict")
        return cls(row, context, index)

    def error(self, problem: str, name: str, fix: str = "") -> RecordError:
        return self.context.error(problem, index=self.index, field=self.prefix + name, fix=fix)

    def wrong_type(self, name: str, expected: str, value: Any) -> RecordError:
        return self.located(wrong_type(name, expected, value))

    def located(self, problem: FieldProblem) -> RecordError:
        """``problem`` (a rule of :mod:`cutkit.data.checks` that a field broke) as a RecordError
        naming this file, record and field."""
        return self.error(problem.problem, problem.field, problem.fix)

    def get(self, name: str) -> Any:
        if name not in self.row:
            fix = f"Add {self.prefix + name!r} to the record (or pass the right format=)"
            raise self.error("missing required field", name, fix)
        return self.row[name]

    def text(self, name: str) -> str:
        """A required, non-empty string."""
        try:
            return check_text(self.get(name), name)
        except FieldProblem as problem:
            raise self.located(problem) from None

    def valid_text(self, name: str, value: str) -> str:
        """``value`` if it is valid Unicode text (:func:`cutkit.data.checks.check_unicode`)."""
        try:
            return check_unicode(value, name)
        except FieldProblem as problem:
            raise self.located(problem) from None

    @contextmanager
    def building(self, **names: str) -> Iterator[None]:
        """Locate a :class:`RecordError` of the :class:`JudgmentRecord` built inside: its record
        field as ``names`` maps it to this format's field (``response="output"``), in this file
        and record."""
        try:
            yield
        except RecordError as error:
            if error.source != RecordError.DIRECT:
                raise
            field = names.get(error.field or "", error.field) or ""
            raise self.error(error.problem, field, error.fix) from None

    def optional(self, name: str, kind: Any, expected: str, *, required: bool = False) -> Any:
        """``row[name]`` if it is None or a ``kind`` (a bool only if ``kind`` is bool); a missing
        field is None unless ``required``."""
        value = self.get(name) if required else self.row.get(name)
        bool_as_other = isinstance(value, bool) and kind is not bool
        if value is not None and (bool_as_other or not isinstance(value, kind)):
            raise self.wrong_type(name, expected, value)
        return value

    def optional_text(self, name: str, *, required: bool = False) -> str | None:
        """A string (possibly empty) or None; a missing field is None unless ``required``."""
        value = self.optional(name, str, "a string or null", required=required)
        return value if value is None else self.valid_text(name, value)

    def number(self, name: str, *, required: bool = True) -> float | None:
        value = self.optional(name, numbers.Real, "a number", required=required)
        if (value is None and required) or (value is not None and not math.isfinite(value)):
            raise self.wrong_type(name, "a finite number", value)
        return None if value is None else float(value)

    def child(self, name: str) -> RecordFields:
        """A required nested object."""
        value = self.get(name)
        if not isinstance(value, Mapping):
            raise self.wrong_type(name, "an object", value)
        return RecordFields(value, self.context, self.index, f"{self.prefix}{name}.")

    def sequence(self, name: str) -> list[Any]:
        """A required list."""
        value = self.get(name)
        if not isinstance(value, list | tuple):
            raise self.wrong_type(name, "a list", value)
        return list(value)

    def item(self, name: str, position: int) -> RecordFields:
        """The object at ``row[name][position]``."""
        value = self.row[name][position]
        label = f"{name}[{position}]"
        if not isinstance(value, Mapping):
            raise self.wrong_type(label, "an object", value)
        return RecordFields(value, self.context, self.index, f"{self.prefix}{label}.")

    def extras(self, known: Iterable[str]) -> dict[str, Any]:
        """The fields not in ``known`` (they go to ``JudgmentRecord.meta``)."""
        return {key: value for key, value in self.row.items() if key not in known}


def record_id_field(fields: RecordFields, default: int) -> str:
    """The record id of a raw record: its ``id`` field checked (:func:`check_id`), or ``default``
    (its index) when it has none; a bad id is a located error."""
    value = fields.row.get("id")
    try:
        return str(default) if value is None else check_id(value)
    except FieldProblem as problem:
        raise fields.located(problem) from None
