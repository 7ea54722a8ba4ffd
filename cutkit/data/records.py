"""Judgment records: the (instruction, response, judgment) triplet CUT learns from.

A :class:`JudgmentRecord` is format-independent; :mod:`cutkit.data.loading` turns real files into records.
Routing follows docs/method.md §1: a record is positive (Align-P) when its judgment is missing
or empty, when it carries a score >= 7, or when a model judge's reply starts with "Perfect"; every
other record is negative (Align-N + Misalign).

>>> r = JudgmentRecord(id="q1", instruction="Capital of Australia?", response="Sydney.",
...                    judgment="Wrong: the capital is Canberra.")
>>> r.is_positive, r.prompt_instruction
(False, 'Capital of Australia?')
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cutkit.data.checks import (
    FieldProblem,
    check_error_spans,
    check_flag,
    check_id,
    check_mapping,
    check_text,
)

POSITIVE_SCORE = 7.0
"""Official CUT data convention: a judge score >= 7 marks a good response."""

JUNK_JUDGMENTS = frozenset({"$ERROR$"})
"""Placeholders of failed judge calls, never critiques (seen in the released data): a judgment is
junk when it *starts* with one, in any case (``"$error$"``, ``"$ERROR$: timeout"``)."""

JUNK_REASONS: dict[str, str] = {
    "judge_error": 'judgment starts with "$ERROR$" (any case), the placeholder of a failed judge call',
    "commendation": "negative judgment only praises the response (says it is perfect, criticises nothing)",
    "no_critique": "negative record without a judgment text to condition on",
}
"""Reasons a record is junk (never trained on), keyed as :func:`junk_reason` returns them."""

_PERFECT = re.compile(r"^\W*perfect\b", re.IGNORECASE)
_PRAISE = re.compile(
    r"\b(?:is|are|was|were|looks|seems|reads)\s+(?:absolutely\s+|simply\s+|truly\s+|just\s+)?perfect\b"
    r"|\bperfectly\b",
    re.IGNORECASE,
)
_CRITICISM = re.compile(
    r"\b(?:but|however|although|though|except|yet|mistakes?|errors?|incorrect\w*|wrong\w*|inaccura\w*"
    r"|missing|miss(?:es|ed)?|lacks?|lacking|should|could|would|not|fails?|failed|unnecessar\w*"
    r"|improve\w*|better|issues?|problems?|only)\b|n't\b",
    re.IGNORECASE,
)


class RecordError(ValueError):
    """A record that cannot become training signal.

    The message always says where (``source``, ``index`` and, for JSONL, ``line``, ``field``) and
    what to do.
    """

    DIRECT = "<records>"
    """``source`` of an error raised by a record built in memory (not read from a source)."""

    def __init__(
        self,
        problem: str,
        *,
        source: str = "<records>",
        index: int | str | None = None,
        field: str | None = None,
        fix: str = "",
        line: int | None = None,
    ):
        self.problem, self.source, self.index, self.field = problem, source, index, field
        self.fix, self.line = fix, line
        where = source
        if index is not None:
            where += f", record {index}"
        if line is not None:
            where += f" (line {line})"
        if field is not None:
            where += f", field {field!r}"
        message = f"{where}: {problem}"
        if fix:
            message += f". {fix}"
        super().__init__(message)


def is_junk_judgment(judgment: str | None) -> bool:
    """True for judgments that are placeholders of a failed judge call: ``"$ERROR$"`` in any case,
    alone or followed by a detail (``"$error$"``, ``"$ERROR$: timeout"``)."""
    if not isinstance(judgment, str):
        return False
    text = judgment.strip().casefold()
    return any(text.startswith(junk.casefold()) for junk in JUNK_JUDGMENTS)


def is_commendation(judgment: str | None) -> bool:
    """True when a judgment says the response is perfect and criticises nothing.

    Routed negative, such a judgment would teach the model that praise is a critique. "The response is
    almost perfect, but ..." is a real critique (it contains a contrast) and returns False.
    """
    if judgment is None:
        return False
    return bool(_PRAISE.search(judgment)) and not _CRITICISM.search(judgment)


def junk_reason(record: JudgmentRecord) -> str | None:
    """Why ``record`` must never be trained on (a key of :data:`JUNK_REASONS`), or None if it is fine."""
    if is_junk_judgment(record.judgment):
        return "judge_error"
    if record.is_positive:
        return None
    if record.judgment is None or not record.judgment.strip():
        return "no_critique"
    if is_commendation(record.judgment):
        return "commendation"
    return None


def refuse_junk(records: Sequence[JudgmentRecord]) -> None:
    """Raise :class:`RecordError` (field ``judgment``, its index in ``records``) at the first
    record with a :func:`junk_reason`; training code calls it before it builds any example."""
    for index, record in enumerate(records):
        reason = junk_reason(record)
        if reason is not None:
            raise RecordError(
                f"junk judgment ({reason}) of record {record.id!r} cannot become training signal",
                index=index,
                field="judgment",
                fix="load the data with cutkit.load_records(..., lenient=True)",
            )


def refuse_missing_refinements(
    records: Sequence[JudgmentRecord],
    *,
    needed_by: str,
    fix: str = "add refinements (e.g. the official data's i_ans) or drop those records",
) -> None:
    """Raise :class:`RecordError` (field ``refinement``, its index in ``records``) at the first
    negative record whose refinement is missing or blank.

    Args:
        needed_by: ends the message "negative record 'id' has no refinement, and ...", e.g.
            "DPO prefers the refinement over the response".
        fix: what to do instead.
    """
    for index, record in enumerate(records):
        if record.is_negative and (record.refinement is None or not record.refinement.strip()):
            raise RecordError(
                f"negative record {record.id!r} has no refinement, and {needed_by}",
                index=index,
                field="refinement",
                fix=fix,
            )


def is_positive_judgment(judgment: str | None, score: float | None = None) -> bool:
    """docs/method.md §1 routing: missing/empty judgment, score >= 7, or a "Perfect..." reply.

    A score that is not a finite number (NaN, +-inf, not a number at all) raises ValueError: it
    says nothing about the response (``inf >= 7`` would route it positive)."""
    if score is not None:
        return check_score(score) >= POSITIVE_SCORE
    if judgment is None or not judgment.strip():
        return True
    return bool(_PERFECT.match(judgment))


ROLES = ("system", "user", "assistant")
"""Message roles of a conversational record's history."""


def check_history(history: Any, *, record_id: str = "?") -> list[dict[str, str]]:
    """``history`` as a list of ``{"role", "content"}`` dicts, or :class:`RecordError` naming the
    message: each a mapping with a role in :data:`ROLES` (``system`` only first) and string
    content, ending with an assistant turn (the instruction that follows is a user turn)."""
    if not isinstance(history, list | tuple):
        raise RecordError(
            f"expected a list of messages, got {type(history).__name__}",
            index=repr(record_id),
            field="history",
        )
    messages = []
    for k, message in enumerate(history):
        where = dict(index=repr(record_id), field=f"history[{k}]")
        if not isinstance(message, dict) or not {"role", "content"} <= message.keys():
            raise RecordError(
                'expected a message {"role": ..., "content": ...}',
                **where,
                fix=f"give each earlier turn a role ({', '.join(ROLES)}) and its text",
            )
        role, content = message["role"], message["content"]
        if role not in ROLES or (role == "system" and k > 0):
            raise RecordError(
                f"role {role!r} is not one of {ROLES} (system only as the first message)", **where
            )
        if not isinstance(content, str):
            raise RecordError(f"content is a {type(content).__name__}, not text", **where)
        messages.append({"role": role, "content": content})
    turns = [m for m in messages if m["role"] != "system"]
    if turns and turns[-1]["role"] != "assistant":
        raise RecordError(
            "the history must end with an assistant turn: the instruction that follows is the "
            "next user turn",
            index=repr(record_id),
            field="history",
        )
    return messages


def check_score(score) -> float:
    """A judge score as a finite float; ValueError otherwise (see :func:`is_positive_judgment`)."""
    try:
        value = float(score) if not isinstance(score, bool | str | bytes) else math.nan
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(
            f"score must be a finite number, got {score!r}: a judge score routes the record "
            f"(>= {POSITIVE_SCORE:g} is positive), and NaN or infinity is no judge's score"
        )
    return value


@dataclass
class JudgmentRecord:
    """One instruction / response / judgment triplet, validated when it is built
    (:func:`validate_record`: a :class:`RecordError` naming the record and the field otherwise).

    Attributes:
        id: unique identifier within a data set (string; numeric ids are stringified).
        instruction: the task given to the model.
        response: the model's answer that was judged.
        judgment: natural-language critique or commendation; None for a response judged good without
            a text.
        input: optional extra context appended to the instruction as ``instruction + "\\n" + input``.
        is_positive: routing (None = infer from ``judgment`` and ``score``).
        score: optional numeric judge score (>= 7 is positive in the official data).
        refinement: optional improved response (ILF / DPO baselines, evaluation).
        error_spans: character spans ``(start, end)`` of ``response`` that the judgment criticises
            (``0 <= start < end <= len(response)``; a substring of the response is turned into
            the span of its first occurrence).
        meta: anything else the source carried (kept, never trained on).
        history: a conversational record's earlier turns, ``{"role", "content"}`` messages
            (``system`` first if any, then ``user`` / ``assistant``) before the ``instruction``
            (the last user turn); rendered by the chat template in both contexts. Empty for a
            single-turn record.
    """

    id: str
    instruction: str
    response: str
    judgment: str | None = None
    input: str = ""
    is_positive: bool | None = None
    score: float | None = None
    refinement: str | None = None
    error_spans: list[tuple[int, int]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        try:
            validate_record(self)
        except FieldProblem as problem:
            raise RecordError(
                problem.problem, index=repr(self.id), field=problem.field, fix=problem.fix
            ) from None

    @property
    def is_negative(self) -> bool:
        return not self.is_positive

    @property
    def prompt_instruction(self) -> str:
        """The instruction as templates see it: ``instruction`` plus ``"\\n" + input`` if any."""
        return f"{self.instruction}\n{self.input}" if self.input else self.instruction

    def error_texts(self) -> list[str]:
        """The criticised substrings of the response, one per error span."""
        return [self.response[s:e] for s, e in self.error_spans]

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (the official-CUT-like field names cutkit writes)."""
        return {
            "id": self.id,
            "instruction": self.instruction,
            "input": self.input,
            "output": self.response,
            "judgment": self.judgment,
            "is_positive": self.is_positive,
            "score": self.score,
            "refinement": self.refinement,
            "error_spans": [list(span) for span in self.error_spans],
            "meta": self.meta,
            **({"history": [dict(m) for m in self.history]} if self.history else {}),
        }


def validate_record(record: JudgmentRecord) -> None:
    """Check and normalise every field of ``record`` in place (the rules of
    :mod:`cutkit.data.checks`): :class:`FieldProblem` naming the field otherwise.

    The one validation of a record: :class:`JudgmentRecord` runs it when it is built (also by
    ``dataclasses.replace``), so the loaders, which build records, run it too and add the file,
    record index and source field to its message. ``id``: a string or an integer (kept as its
    string); ``instruction`` and ``response``: non-blank text (an empty response would train the
    end-of-sequence token alone); ``input``: text (None is ""); ``judgment`` and ``refinement``:
    text or None; ``is_positive``: a bool or None (routed from the judgment and score);
    ``score``: a finite number or None; ``error_spans``: ``(start, end)`` pairs with
    ``0 <= start < end <= len(response)`` or substrings of the response; ``meta``: a mapping;
    ``history``: :func:`check_history`."""
    record.id = check_id(record.id)
    record.instruction = check_text(record.instruction, "instruction")
    record.response = check_text(record.response, "response")
    record.input = check_text(record.input, "input", optional=True, blank_ok=True) or ""
    record.judgment = check_text(record.judgment, "judgment", optional=True, blank_ok=True)
    record.refinement = check_text(record.refinement, "refinement", optional=True, blank_ok=True)
    record.is_positive = check_flag(record.is_positive, "is_positive")
    record.meta = check_mapping(record.meta, "meta")
    try:
        record.history = check_history(record.history, record_id=record.id)
    except RecordError as error:
        raise FieldProblem(error.problem, error.field or "history", error.fix) from None
    if record.score is not None:
        try:
            record.score = check_score(record.score)
        except ValueError as error:
            raise FieldProblem(
                str(error),
                "score",
                fix="fix the score or drop the record (None lets the judgment route it)",
            ) from None
    if record.is_positive is None:
        record.is_positive = is_positive_judgment(record.judgment, record.score)
    record.error_spans = check_error_spans(record.error_spans, record.response)
