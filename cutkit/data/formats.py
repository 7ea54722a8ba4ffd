"""The judgment formats cutkit reads (CUT, conversational ``messages``, Shepherd, summarization
critiques, UltraFeedback): raw rows -> :class:`~cutkit.data.records.JudgmentRecord`.

The ``messages`` format is the conversational one of TRL and OpenRLHF: a list of ``{"role",
"content"}`` messages whose last one is the judged assistant response and whose one before is the
user turn it answers; earlier messages become the record's ``history``. The judgment sits beside
the list (``"judgment"``) or on the last message (``messages[-1].judgment``); ``score``,
``is_positive``, ``refinement``, ``error_spans``, ``id`` and ``meta`` as in the CUT format::

    {"messages": [{"role": "user", "content": "Name a prime."},
                  {"role": "assistant", "content": "7."},
                  {"role": "user", "content": "And an even one?"},
                  {"role": "assistant", "content": "9."}],
     "judgment": "9 is odd; the only even prime is 2."}
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cutkit.data.checks import FieldProblem, check_error_spans
from cutkit.data.fields import RecordFields, record_id_field
from cutkit.data.records import ROLES, JudgmentRecord, RecordError, check_history
from cutkit.data.sources import SourceContext, read_source_file

FORMAT_FIELDS: dict[str, str] = {
    "cut": "instruction, output, judgment",
    "messages": "messages (the last is the judged assistant turn), judgment",
    "shepherd": "question, answer, feedback",
    "summarization": "data.passage.text, data.questions",
    "ultrafeedback": "instruction, completions",
}
"""The known formats and the fields that identify them."""


_CUT_FIELDS = frozenset(
    {"id", "instruction", "input", "output", "judgment", "score", "i_ans", "refinement"}
    | {"error_spans", "is_positive", "meta", "history"}
)


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
    if "messages" in row:
        return "messages"
    return None


def resolve_format(rows: list[Any], format: str, context: SourceContext) -> str:
    """The format of ``rows``: ``format`` itself when it is not "auto" (checked against
    :data:`FORMAT_FIELDS`), else the one whose fields the first row has; a located error otherwise."""
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


@dataclass
class LoadedRecord:
    """One record converted from a source row, with where it came from."""

    index: int  # row index in the source
    record: JudgmentRecord
    judgment_field: str  # where the judgment came from, for junk errors


@dataclass
class ConvertedRows:
    """What a converter made of the rows: the records loaded (:class:`LoadedRecord`) and the rows
    skipped, by reason."""

    loaded: list[LoadedRecord] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def add(self, fields: RecordFields, record: JudgmentRecord, judgment_field: str) -> None:
        self.loaded.append(LoadedRecord(fields.index, record, fields.prefix + judgment_field))

    def skip(self, reason: str, record_id: str) -> None:
        self.skipped.setdefault(reason, []).append(record_id)


def _cut_records(rows: list[Any], context: SourceContext, out: ConvertedRows) -> None:
    for index, row in enumerate(rows):
        fields = RecordFields.of(row, context, index)
        instruction, response = fields.text("instruction"), fields.text("output")
        if not {"judgment", "is_positive", "score"} & fields.row.keys():
            raise fields.error(
                "missing required field",
                "judgment",
                fix='Add "judgment": null for a response judged good, or the critique text',
            )
        meta = fields.optional("meta", Mapping, "an object or null") or {}
        refinement_field = "refinement" if "refinement" in fields.row else "i_ans"
        with fields.building(response="output", refinement=refinement_field):
            record = JudgmentRecord(
                id=record_id_field(fields, index),
                instruction=instruction,
                input=fields.optional_text("input") or "",
                response=response,
                judgment=fields.optional_text("judgment"),
                is_positive=fields.optional("is_positive", bool, "true, false or null"),
                score=fields.number("score", required=False),
                refinement=fields.optional_text(refinement_field),
                error_spans=_error_spans(fields, response),
                meta={**fields.extras(_CUT_FIELDS), **meta},
                history=_history(fields),
            )
        out.add(fields, record, "judgment")


_MESSAGES_FIELDS = _CUT_FIELDS - {"instruction", "input", "output", "history"} | {"messages"}


def _messages_records(rows: list[Any], context: SourceContext, out: ConvertedRows) -> None:
    for index, row in enumerate(rows):
        fields = RecordFields.of(row, context, index)
        messages = fields.sequence("messages")
        turns = [fields.item("messages", k) for k in range(len(messages))]
        for k, turn in enumerate(turns):
            role = turn.text("role")
            if role not in ROLES or (role == "system" and k > 0):
                raise turn.error(
                    f"role {role!r} is not one of {ROLES} (system only first)",
                    "role",
                    fix="Use system, user or assistant",
                )
            if k >= len(turns) - 2:  # the instruction and the judged response: non-empty text
                turn.text("content")
            else:  # an earlier turn: any text
                turn.optional("content", str, "a string", required=True)
        if len(turns) < 2 or [t.row["role"] for t in turns[-2:]] != ["user", "assistant"]:
            raise fields.error(
                "expected the last two messages to be a user turn and the assistant's response "
                "to it (the judged response)",
                "messages",
                fix="End each record's messages with the user instruction and the judged answer",
            )
        last = turns[-1]
        judgment_field = "judgment"
        if "judgment" in last.row:
            judgment_field = f"messages[{len(turns) - 1}].judgment"
            judgment = last.optional_text("judgment")
        elif {"judgment", "is_positive", "score"} & fields.row.keys():
            judgment = fields.optional_text("judgment")
        else:
            raise fields.error(
                "missing required field",
                "judgment",
                fix='Add "judgment" beside "messages" (null for a response judged good) or on the '
                "last message",
            )
        response = last.row["content"]
        meta = fields.optional("meta", Mapping, "an object or null") or {}
        refinement_field = "refinement" if "refinement" in fields.row else "i_ans"
        with fields.building(
            instruction=f"messages[{len(turns) - 2}].content",
            response=f"messages[{len(turns) - 1}].content",
        ):
            record = JudgmentRecord(
                id=record_id_field(fields, index),
                instruction=turns[-2].row["content"],
                response=response,
                judgment=judgment,
                is_positive=fields.optional("is_positive", bool, "true, false or null"),
                score=fields.number("score", required=False),
                refinement=fields.optional_text(refinement_field),
                error_spans=_error_spans(fields, response),
                meta={**fields.extras(_MESSAGES_FIELDS), **meta},
                history=[{"role": t.row["role"], "content": t.row["content"]} for t in turns[:-2]],
            )
        out.add(fields, record, judgment_field)


def _history(fields: RecordFields) -> list[dict[str, str]]:
    """A CUT-format record's optional ``history`` (earlier turns, as cutkit writes them)."""
    try:
        return check_history(fields.row.get("history") or [])
    except RecordError as error:
        raise fields.error(error.problem, error.field, fix=error.fix) from None


def _error_spans(fields: RecordFields, response: str) -> list[tuple[int, int]]:
    """``error_spans`` as character spans: [start, end] pairs or substrings of the response."""
    try:
        return check_error_spans(fields.row.get("error_spans"), response)
    except FieldProblem as problem:
        raise fields.located(problem) from None


def shepherd_records(
    rows: list[Any], context: SourceContext, out: ConvertedRows, refinements: str | Path | None
) -> None:
    """Convert Shepherd rows into ``out``; ``refinements`` optionally names a file of refined
    answers."""
    refined = _shepherd_refinements(refinements, rows, context) if refinements else None
    for index, row in enumerate(rows):
        fields = RecordFields.of(row, context, index)
        instruction, response = fields.text("question"), fields.text("answer")
        with fields.building(instruction="question", response="answer", judgment="feedback"):
            record = JudgmentRecord(
                id=record_id_field(fields, index),
                instruction=instruction,
                response=response,
                judgment=fields.optional_text("feedback", required=True),  # empty: junk
                is_positive=False,  # Shepherd holds critiques of flawed answers only
                refinement=refined[index] if refined else None,
                meta=fields.extras({"id", "question", "answer", "feedback"}),
            )
        out.add(fields, record, "feedback")


def _shepherd_refinements(path: str | Path, rows: list[Any], context: SourceContext) -> list[str]:
    """``metadata.output_correct`` of each raw record, checked to parallel the feedback rows."""
    raw_rows, raw_context = read_source_file(Path(path))
    if len(raw_rows) != len(rows):
        raise raw_context.error(
            f"holds {len(raw_rows)} records but the feedback file {context.name} holds {len(rows)}",
            fix="Pass the raw file that parallels the feedback file line by line",
        )
    refined = []
    for index, (raw, row) in enumerate(zip(raw_rows, rows, strict=True)):
        metadata = RecordFields.of(raw, raw_context, index).child("metadata")
        feedback = RecordFields.of(row, context, index)
        for raw_name, name in (("context", "question"), ("output_candidate", "answer")):
            if raw_name in metadata.row and metadata.row[raw_name] != feedback.get(name):
                problem = f"does not match {name!r} of record {index} in {context.name}"
                fix = "The two files must list the same records in the same order"
                raise metadata.error(problem, raw_name, fix)
        refined.append(metadata.text("output_correct"))
    return refined


def _summarization_records(rows: list[Any], context: SourceContext, out: ConvertedRows) -> None:
    for index, row in enumerate(rows):
        fields = RecordFields.of(row, context, index)
        data, row_id = fields.child("data"), record_id_field(fields, index)
        passage = data.child("passage").text("text")
        for q in range(len(data.sequence("questions"))):
            question = data.item("questions", q)
            _summarization_question(question, passage, f"{row_id}-{q}", out)


def _summarization_question(
    question: RecordFields, passage: str, record_id: str, out: ConvertedRows
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
    with answer.building(response="answer"):
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


def _ultrafeedback_records(rows: list[Any], context: SourceContext, out: ConvertedRows) -> None:
    for index, row in enumerate(rows):
        fields = RecordFields.of(row, context, index)
        instruction = fields.text("instruction")
        shared = fields.extras({"instruction", "completions"})
        for k in range(len(fields.sequence("completions"))):
            completion = fields.item("completions", k)
            with completion.building(judgment="critique", score="overall_score"):
                record = JudgmentRecord(
                    id=f"{index}-{k}",
                    instruction=instruction,
                    response=completion.text("response"),
                    judgment=completion.optional_text("critique", required=True),
                    score=completion.number("overall_score"),
                    meta={**shared, **completion.extras({"response", "critique", "overall_score"})},
                )
            out.add(completion, record, "critique")


CONVERTERS: dict[str, Callable[[list[Any], SourceContext, ConvertedRows], None]] = {
    "cut": _cut_records,
    "messages": _messages_records,
    "summarization": _summarization_records,
    "ultrafeedback": _ultrafeedback_records,
}
"""Format name -> the converter that turns its rows into records (the ``shepherd`` format, which
takes a refinements file too, is :func:`shepherd_records`)."""
