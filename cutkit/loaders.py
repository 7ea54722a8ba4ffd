"""Loaders: real judgment files and tables -> lists of :class:`~cutkit.records.JudgmentRecord`.

Formats (auto-detected from the first record's fields, or chosen with ``format=``):

- ``"cut"``: official CUT / Alpaca JSON(L) ``{id?, instruction, input?, output, judgment, score?,
  i_ans?}`` plus cutkit's own fields (``refinement``, ``error_spans``, ``is_positive``, ``meta``).
- ``"shepherd"``: Shepherd JSONL ``{question, answer, feedback}``, all negative; refinements come from
  the parallel raw file (``refinements=path``, ``metadata.output_correct``, matched line by line).
- ``"summarization"``: OpenAI summarization critiques JSONL; one record per question, built from its
  top-ranked answer.
- ``"ultrafeedback"``: ``{instruction, completions[{response, critique, overall_score}]}``; one record
  per completion, positive iff ``overall_score >= 7``.

Sources: a path to ``.json`` / ``.jsonl`` (optionally ``.gz``), a list of dicts, a pandas DataFrame or
a ``datasets.Dataset``. Malformed input raises one :class:`~cutkit.records.RecordError` naming the
file, record (and JSONL line), field and fix. Junk (see :data:`cutkit.records.JUNK_REASONS`) is never
loaded: the first junk record raises, unless ``lenient=True`` skips and counts it.

>>> rows = [{"id": "q1", "instruction": "Capital of Australia?", "output": "Sydney.",
...          "judgment": "Wrong: the capital is Canberra."},
...         {"id": "q2", "instruction": "2 + 2?", "output": "4", "judgment": None}]
>>> records, report = load_records(rows, report=True)
>>> [(r.id, r.is_positive) for r in records]
[('q1', False), ('q2', True)]
>>> print(report)
<list> (cut): 2 read, 2 loaded (1 positive, 1 negative), 0 skipped
"""

from __future__ import annotations

import gzip
import json
import math
import numbers
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cutkit.records import JUNK_REASONS, JudgmentRecord, RecordError, junk_reason

FORMAT_FIELDS: dict[str, str] = {
    "cut": "instruction, output, judgment",
    "shepherd": "question, answer, feedback",
    "summarization": "data.passage.text, data.questions",
    "ultrafeedback": "instruction, completions",
}
"""The known formats and the fields that identify them."""

_CUT_FIELDS = frozenset(
    {"id", "instruction", "input", "output", "judgment", "score", "i_ans", "refinement"}
    | {"error_spans", "is_positive", "meta"}
)


class JunkRecordWarning(UserWarning):
    """Warned once by a lenient load that skipped junk records."""


@dataclass
class LoadReport:
    """What one load read, kept and skipped (``load_records(..., report=True)``).

    ``n_read == n_loaded + n_skipped``; ``skipped`` maps a reason (a key of
    :data:`cutkit.records.JUNK_REASONS`, or ``feedback_skip`` / ``empty_answer`` for summarization
    answers the labellers skipped or left empty) to the ids of the records it dropped.
    """

    source: str
    format: str
    n_read: int = 0
    n_loaded: int = 0
    n_positive: int = 0
    n_negative: int = 0
    n_negative_read: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)

    @property
    def n_skipped(self) -> int:
        return sum(len(ids) for ids in self.skipped.values())

    def __str__(self) -> str:
        text = (
            f"{self.source} ({self.format}): {self.n_read} read, {self.n_loaded} loaded "
            f"({self.n_positive} positive, {self.n_negative} negative), {self.n_skipped} skipped"
        )
        if self.skipped:
            text += ": " + ", ".join(f"{len(ids)} {why}" for why, ids in self.skipped.items())
        return text


def load_records(
    source: Any,
    *,
    format: str = "auto",
    lenient: bool = False,
    report: bool = False,
    refinements: str | Path | None = None,
) -> list[JudgmentRecord] | tuple[list[JudgmentRecord], LoadReport]:
    """Load judgment records from a file, a list of dicts, a DataFrame or a ``datasets.Dataset``.

    Args:
        source: path (str or Path) to .json / .jsonl (.gz allowed), or in-memory rows.
        format: ``"auto"`` or one of :data:`FORMAT_FIELDS`.
        lenient: skip junk records (counted in the report, one :class:`JunkRecordWarning`) instead of
            raising on the first one.
        report: also return a :class:`LoadReport`.
        refinements: Shepherd only: the parallel raw JSONL holding ``metadata.output_correct``.

    Raises:
        RecordError: malformed input, an unknown format, or (unless ``lenient``) a junk record.
    """
    rows, context = _read_rows(source)
    chosen = _resolve_format(rows, format, context)
    if refinements is not None and chosen != "shepherd":
        raise ValueError(f"refinements= is only for format='shepherd', not {chosen!r}")
    converted = _Converted()
    if chosen == "shepherd":
        _shepherd_records(rows, context, converted, refinements)
    else:
        _CONVERTERS[chosen](rows, context, converted)
    records, load_report = _keep_trainable(converted, chosen, context, lenient=lenient)
    return (records, load_report) if report else records


def detect_format(row: Any) -> str | None:
    """The format whose identifying fields ``row`` has (see :data:`FORMAT_FIELDS`), or None."""
    if not isinstance(row, Mapping):
        return None
    if isinstance(row.get("data"), Mapping) and "questions" in row["data"]:
        return "summarization"
    if {"instruction", "completions"} <= row.keys():
        return "ultrafeedback"
    if {"question", "answer", "feedback"} <= row.keys():
        return "shepherd"
    if {"instruction", "output"} <= row.keys():
        return "cut"
    return None


# --- reading sources ---------------------------------------------------------------------------


@dataclass
class _Context:
    """Where rows came from, so errors can say file, record and JSONL line."""

    name: str
    lines: list[int] | None = None  # 1-based line of each row in a JSONL file

    def error(
        self, problem: str, *, index: int | None = None, field: str | None = None, fix: str = ""
    ) -> RecordError:
        line = self.lines[index] if self.lines is not None and index is not None else None
        return RecordError(problem, source=self.name, index=index, field=field, fix=fix, line=line)


def _read_rows(source: Any) -> tuple[list[Any], _Context]:
    if isinstance(source, str | Path):
        return _read_file(Path(source).expanduser())
    if hasattr(source, "columns") and hasattr(source, "to_dict"):  # pandas.DataFrame
        rows = [{k: _nan_to_none(v) for k, v in row.items()} for row in source.to_dict("records")]
        return rows, _Context("<DataFrame>")
    if callable(getattr(source, "to_list", None)):  # datasets.Dataset
        return list(source.to_list()), _Context(f"<{type(source).__name__}>")
    if isinstance(source, Iterable) and not isinstance(source, Mapping | bytes):
        return list(source), _Context("<list>")
    raise RecordError(
        f"cannot load records from a {type(source).__name__}",
        source=f"<{type(source).__name__}>",
        fix="Pass a path to a .json/.jsonl file, a list of dicts, a pandas DataFrame or a "
        "datasets.Dataset",
    )


def _read_file(path: Path) -> tuple[list[Any], _Context]:
    context = _Context(str(path))
    if not path.is_file():
        problem = "is a directory, not a file" if path.is_dir() else "file does not exist"
        raise context.error(problem, fix=f"Check the path {str(path)!r} (cwd is {Path.cwd()})")
    name = path.name.lower().removesuffix(".gz")
    if not name.endswith((".json", ".jsonl")):
        raise context.error(
            f"unsupported file type {path.suffix!r}",
            fix="Give a .json or .jsonl file (.gz allowed)",
        )
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError as err:
        raise context.error(
            f"not UTF-8 text ({err.reason})", fix="Re-save the file as UTF-8"
        ) from err
    if name.endswith(".jsonl"):
        return _parse_jsonl(text, context), context
    return _parse_json(text, context), context


def _parse_json(text: str, context: _Context) -> list[Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise context.error(
            f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}",
            fix="Fix the JSON syntax (one object per line belongs in a .jsonl file)",
        ) from err
    if isinstance(data, dict):
        lists = [key for key, value in data.items() if isinstance(value, list)]
        if len(lists) != 1:
            raise context.error(
                f"top-level object holds {len(lists)} lists (keys {sorted(data)}), not exactly one",
                fix="Store the records as a top-level JSON list",
            )
        data = data[lists[0]]
    if not isinstance(data, list):
        raise context.error(
            f"top level is a JSON {type(data).__name__}, not a list of records",
            fix="Store the records as a top-level JSON list",
        )
    return data


def _parse_jsonl(text: str, context: _Context) -> list[Any]:
    rows: list[Any] = []
    context.lines = []
    # split on "\n" only: str.splitlines() would also split at U+2028, which JSON strings may hold
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise RecordError(
                f"invalid JSON at line {number}, column {err.colno}: {err.msg}",
                source=context.name,
                index=len(rows),
                line=number,
                fix="Each line of a .jsonl file must be one complete JSON object",
            ) from err
        context.lines.append(number)
    return rows


def _nan_to_none(value: Any) -> Any:
    """DataFrames store missing values as NaN; records want None."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _resolve_format(rows: list[Any], format: str, context: _Context) -> str:
    known = ", ".join(FORMAT_FIELDS)
    if format != "auto":
        if format not in FORMAT_FIELDS:
            raise context.error(f"unknown format {format!r}", fix=f"Use 'auto' or one of: {known}")
        return format
    if not rows:
        return "cut"
    detected = detect_format(rows[0])
    if detected is None:
        found = sorted(rows[0]) if isinstance(rows[0], Mapping) else type(rows[0]).__name__
        formats = "; ".join(f"{name} ({fields})" for name, fields in FORMAT_FIELDS.items())
        raise context.error(
            f"unknown record format, fields found: {found}",
            index=0,
            fix=f"Known formats: {formats}. Rename the fields or pass format=",
        )
    return detected


# --- typed field access ------------------------------------------------------------------------


@dataclass
class _Fields:
    """Typed access to one raw record (or a nested object in it), with located errors."""

    row: Mapping[str, Any]
    context: _Context
    index: int
    prefix: str = ""  # path of ``row`` inside the record, e.g. "data.questions[2]."

    @classmethod
    def of(cls, row: Any, context: _Context, index: int) -> _Fields:
        if not isinstance(row, Mapping):
            problem = f"record is a {type(row).__name__}, not an object"
            raise context.error(problem, index=index, fix="Make every record a JSON object / dict")
        return cls(row, context, index)

    def error(self, problem: str, name: str, fix: str = "") -> RecordError:
        return self.context.error(problem, index=self.index, field=self.prefix + name, fix=fix)

    def wrong_type(self, name: str, expected: str, value: Any) -> RecordError:
        got = f"{type(value).__name__} {_shorten(repr(value))}"
        return self.error(f"expected {expected}, got {got}", name, f"Make it {expected}")

    def get(self, name: str) -> Any:
        if name not in self.row:
            fix = f"Add {self.prefix + name!r} to the record (or pass the right format=)"
            raise self.error("missing required field", name, fix)
        return self.row[name]

    def text(self, name: str) -> str:
        """A required, non-empty string."""
        value = self.get(name)
        if not isinstance(value, str):
            raise self.wrong_type(name, "a string", value)
        if not value.strip():
            raise self.error("is empty", name, fix="Fill it in or remove the record")
        return value

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
        return self.optional(name, str, "a string or null", required=required)

    def number(self, name: str, *, required: bool = True) -> float | None:
        value = self.optional(name, numbers.Real, "a number", required=required)
        if (value is None and required) or (value is not None and math.isnan(value)):
            raise self.wrong_type(name, "a number", value)
        return None if value is None else float(value)

    def child(self, name: str) -> _Fields:
        """A required nested object."""
        value = self.get(name)
        if not isinstance(value, Mapping):
            raise self.wrong_type(name, "an object", value)
        return _Fields(value, self.context, self.index, f"{self.prefix}{name}.")

    def sequence(self, name: str) -> list[Any]:
        """A required list."""
        value = self.get(name)
        if not isinstance(value, list | tuple):
            raise self.wrong_type(name, "a list", value)
        return list(value)

    def item(self, name: str, position: int) -> _Fields:
        """The object at ``row[name][position]``."""
        value = self.row[name][position]
        label = f"{name}[{position}]"
        if not isinstance(value, Mapping):
            raise self.wrong_type(label, "an object", value)
        return _Fields(value, self.context, self.index, f"{self.prefix}{label}.")

    def extras(self, known: Iterable[str]) -> dict[str, Any]:
        """The fields not in ``known`` (they go to ``JudgmentRecord.meta``)."""
        return {key: value for key, value in self.row.items() if key not in known}


def _record_id(fields: _Fields, default: int) -> str:
    value = fields.optional("id", str | numbers.Integral, "a string or an integer")
    return str(default if value is None else value)


def _shorten(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


# --- formats -----------------------------------------------------------------------------------


@dataclass
class _Loaded:
    index: int  # row index in the source
    record: JudgmentRecord
    judgment_field: str  # where the judgment came from, for junk errors


@dataclass
class _Converted:
    loaded: list[_Loaded] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def add(self, fields: _Fields, record: JudgmentRecord, judgment_field: str) -> None:
        self.loaded.append(_Loaded(fields.index, record, fields.prefix + judgment_field))

    def skip(self, reason: str, record_id: str) -> None:
        self.skipped.setdefault(reason, []).append(record_id)


def _cut_records(rows: list[Any], context: _Context, out: _Converted) -> None:
    for index, row in enumerate(rows):
        fields = _Fields.of(row, context, index)
        instruction, response = fields.text("instruction"), fields.text("output")
        if not {"judgment", "is_positive", "score"} & fields.row.keys():
            raise fields.error(
                "missing required field",
                "judgment",
                fix='Add "judgment": null for a response judged good, or the critique text',
            )
        meta = fields.optional("meta", Mapping, "an object or null") or {}
        refinement_field = "refinement" if "refinement" in fields.row else "i_ans"
        record = JudgmentRecord(
            id=_record_id(fields, index),
            instruction=instruction,
            input=fields.optional_text("input") or "",
            response=response,
            judgment=fields.optional_text("judgment"),
            is_positive=fields.optional("is_positive", bool, "true, false or null"),
            score=fields.number("score", required=False),
            refinement=fields.optional_text(refinement_field),
            error_spans=_error_spans(fields, response),
            meta={**fields.extras(_CUT_FIELDS), **meta},
        )
        out.add(fields, record, "judgment")


def _error_spans(fields: _Fields, response: str) -> list[tuple[int, int]]:
    """``error_spans`` as character spans: [start, end] pairs or substrings of the response."""
    value = fields.row.get("error_spans")
    value = value.tolist() if hasattr(value, "tolist") else value  # numpy arrays from DataFrames
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise fields.wrong_type("error_spans", "a list", value)
    spans = []
    for k, span in enumerate(value):
        name = f"error_spans[{k}]"
        span = span.tolist() if hasattr(span, "tolist") else span
        if isinstance(span, str):
            start = response.find(span) if span else -1
            if start < 0:
                problem = f"substring {_shorten(repr(span), 60)} does not occur in the response"
                raise fields.error(problem, name, "Quote the response exactly or give [start, end]")
            spans.append((start, start + len(span)))
        elif _is_int_pair(span):
            start, end = int(span[0]), int(span[1])
            if not 0 <= start < end <= len(response):
                problem = f"span [{start}, {end}] is empty or outside the response"
                raise fields.error(problem, name, f"Need 0 <= start < end <= {len(response)}")
            spans.append((start, end))
        else:
            raise fields.wrong_type(name, "[start, end] or a substring of the response", span)
    return spans


def _is_int_pair(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
    )


def _shepherd_records(
    rows: list[Any], context: _Context, out: _Converted, refinements: str | Path | None
) -> None:
    refined = _shepherd_refinements(refinements, rows, context) if refinements else None
    for index, row in enumerate(rows):
        fields = _Fields.of(row, context, index)
        instruction, response = fields.text("question"), fields.text("answer")
        record = JudgmentRecord(
            id=_record_id(fields, index),
            instruction=instruction,
            response=response,
            judgment=fields.optional_text("feedback", required=True),  # empty: junk
            is_positive=False,  # Shepherd holds critiques of flawed answers only
            refinement=refined[index] if refined else None,
            meta=fields.extras({"id", "question", "answer", "feedback"}),
        )
        out.add(fields, record, "feedback")


def _shepherd_refinements(path: str | Path, rows: list[Any], context: _Context) -> list[str]:
    """``metadata.output_correct`` of each raw record, checked to parallel the feedback rows."""
    raw_rows, raw_context = _read_file(Path(path))
    if len(raw_rows) != len(rows):
        raise raw_context.error(
            f"holds {len(raw_rows)} records but the feedback file {context.name} holds {len(rows)}",
            fix="Pass the raw file that parallels the feedback file line by line",
        )
    refined = []
    for index, (raw, row) in enumerate(zip(raw_rows, rows, strict=True)):
        metadata = _Fields.of(raw, raw_context, index).child("metadata")
        feedback = _Fields.of(row, context, index)
        for raw_name, name in (("context", "question"), ("output_candidate", "answer")):
            if raw_name in metadata.row and metadata.row[raw_name] != feedback.get(name):
                problem = f"does not match {name!r} of record {index} in {context.name}"
                fix = "The two files must list the same records in the same order"
                raise metadata.error(problem, raw_name, fix)
        refined.append(metadata.text("output_correct"))
    return refined


def _summarization_records(rows: list[Any], context: _Context, out: _Converted) -> None:
    for index, row in enumerate(rows):
        fields = _Fields.of(row, context, index)
        data, row_id = fields.child("data"), _record_id(fields, index)
        passage = data.child("passage").text("text")
        for q in range(len(data.sequence("questions"))):
            question = data.item("questions", q)
            _summarization_question(question, passage, f"{row_id}-{q}", out)


def _summarization_question(
    question: _Fields, passage: str, record_id: str, out: _Converted
) -> None:
    """One record from the top-ranked answer of one question (as the released CUT converter)."""
    answers = question.sequence("answers")
    if not answers:
        raise question.error("no answers", "answers", fix="Remove the question or add its answers")
    top = _top_ranked(question.row.get("rankings"), len(answers))
    answer = question.item("answers", top)
    feedback = answer.child("feedback")
    if feedback.row.get("skip") is True:
        out.skip("feedback_skip", record_id)
        return
    response = answer.optional_text("answer", required=True)
    if not response or not response.strip():
        out.skip("empty_answer", record_id)
        return
    n_critiques = len(feedback.sequence("critiques")) if feedback.row.get("critiques") else 0
    critiques = [feedback.item("critiques", c) for c in range(n_critiques)]
    texts = [text.strip() for c in critiques if (text := c.optional_text("text")) and text.strip()]
    rating = feedback.number("rating", required=False)
    positive = not critiques and rating == 7
    record = JudgmentRecord(
        id=record_id,
        instruction=question.text("question"),
        input=passage,
        response=response,
        judgment=None if positive else " ".join(texts) or None,
        is_positive=positive,
        refinement=(critiques[-1].optional_text("refinement") or None) if critiques else None,
        meta={"rating": rating, "answer_index": top},
    )
    out.add(answer, record, "feedback.critiques")


def _top_ranked(rankings: Any, n_answers: int) -> int:
    """Index of the best answer: the highest ``rankings`` value (first on ties), as the released
    CUT converter reads it; the first answer when rankings are missing or do not fit the answers."""
    fits = (
        isinstance(rankings, list | tuple)
        and len(rankings) == n_answers
        and all(isinstance(r, numbers.Real) and not isinstance(r, bool) for r in rankings)
    )
    return max(range(n_answers), key=lambda k: (rankings[k], -k)) if fits else 0


def _ultrafeedback_records(rows: list[Any], context: _Context, out: _Converted) -> None:
    for index, row in enumerate(rows):
        fields = _Fields.of(row, context, index)
        instruction = fields.text("instruction")
        shared = fields.extras({"instruction", "completions"})
        for k in range(len(fields.sequence("completions"))):
            completion = fields.item("completions", k)
            record = JudgmentRecord(
                id=f"{index}-{k}",
                instruction=instruction,
                response=completion.text("response"),
                judgment=completion.optional_text("critique", required=True),
                score=completion.number("overall_score"),
                meta={**shared, **completion.extras({"response", "critique", "overall_score"})},
            )
            out.add(completion, record, "critique")


_CONVERTERS: dict[str, Callable[[list[Any], _Context, _Converted], None]] = {
    "cut": _cut_records,
    "summarization": _summarization_records,
    "ultrafeedback": _ultrafeedback_records,
}


# --- junk and the report -----------------------------------------------------------------------


def _keep_trainable(
    converted: _Converted, format: str, context: _Context, *, lenient: bool
) -> tuple[list[JudgmentRecord], LoadReport]:
    """Check ids, drop (lenient) or raise on junk, and count everything in a LoadReport."""
    _check_unique_ids(converted.loaded, context)
    reasons = [junk_reason(item.record) for item in converted.loaded]
    junk = [(item, why) for item, why in zip(converted.loaded, reasons, strict=True) if why]
    if junk and not lenient:
        raise _junk_error(junk, context)
    records = [item.record for item, why in zip(converted.loaded, reasons, strict=True) if not why]
    report = LoadReport(source=context.name, format=format, skipped=dict(converted.skipped))
    for item, why in junk:
        report.skipped.setdefault(why, []).append(item.record.id)
    report.n_read = len(converted.loaded) + sum(len(ids) for ids in converted.skipped.values())
    report.n_loaded = len(records)
    report.n_positive = sum(record.is_positive for record in records)
    report.n_negative = report.n_loaded - report.n_positive
    report.n_negative_read = sum(item.record.is_negative for item in converted.loaded)
    if junk:
        counts = Counter(why for _, why in junk)
        warnings.warn(
            f"{context.name}: skipped {len(junk)} junk records ({_count_text(counts)}); "
            "see LoadReport.skipped for their ids",
            JunkRecordWarning,
            stacklevel=3,
        )
    return records, report


def _check_unique_ids(loaded: list[_Loaded], context: _Context) -> None:
    first_seen: dict[str, int] = {}
    for item in loaded:
        earlier = first_seen.setdefault(item.record.id, item.index)
        if earlier != item.index:
            raise context.error(
                f"duplicate id {item.record.id!r} (also used by record {earlier})",
                index=item.index,
                field="id",
                fix="Give every record a unique id",
            )


def _junk_error(junk: list[tuple[_Loaded, str]], context: _Context) -> RecordError:
    item, why = junk[0]
    more = Counter(reason for _, reason in junk[1:])
    held = f"{len(junk) - 1} more junk records ({_count_text(more)})" if more else "no other junk"
    return context.error(
        f"{JUNK_REASONS[why]} (record id {item.record.id!r}); the source holds {held}",
        index=item.index,
        field=item.judgment_field,
        fix="Pass lenient=True to skip and count them, or fix/remove the record",
    )


def _count_text(counts: Counter[str]) -> str:
    labels = {"judge_error": 'judge_error "$ERROR$"'}
    return ", ".join(f"{n} {labels.get(why, why)}" for why, n in counts.most_common())
