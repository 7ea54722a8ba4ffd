"""Judges: who writes the judgment j of a response y to an instruction x in online alignment.

Every judge has one method, ``judge(instructions, responses) -> list[Judgment | JudgeFailure]``
(one result per pair, in order), and a ``name``:

- :class:`RuleJudge`: deterministic and offline, for the tasks of :mod:`cutkit.online.tasks`. It
  says precisely which constraint failed, quotes the offending text of the response *in full*
  (never elided with "...": the whole excess of a too-long answer, every extra list item, each
  comma with the words around it, every capitalised word of a lowercase task, all of the text
  around a JSON object, every form of a forbidden word as written; only whitespace is
  normalised), and sets ``error_spans`` to the character spans it criticises; "Perfect."
  (sometimes with a short commendation) when every constraint holds. Wording varies, seeded by
  (seed, instruction, response). Quoting the offending tokens verbatim lets CUT's judged-vs-plain
  comparison find them: the judgment makes exactly those tokens likely.
- :class:`ModelJudge`: a local Hugging Face model prompted with :data:`JUDGE_PROMPT` (greedy,
  batched).
- :class:`OpenAICompatibleJudge`: a chat-completions endpoint, with one deadline per request
  (connect and the whole reply), a reply size cap, retries with exponential backoff, a
  thread-pool concurrency limit and 429 / Retry-After handling.

A failed judge call is a :class:`JudgeFailure` with its reason; the online loop records it and
never trains on that response (there is no placeholder judgment like the released data's
``"$ERROR$"``; a judge that replies with one, in any case, quoted or padded, has failed:
:func:`is_error_reply`). :func:`make_judge` builds a judge from a CLI spec: ``rule``, ``model:PATH`` or
``openai:URL,MODEL[,ENV_VAR]``.

>>> from cutkit.online.judges.rule import RuleJudge
>>> from cutkit.online.tasks import Constraint, Task
>>> task = Task("t1", "Reply in lowercase.", [Constraint("lowercase")], "lowercase")
>>> result = RuleJudge(seed=0).judge([task], ["Hello there"])[0]
>>> result.is_positive, result.error_spans
(False, [(0, 5)])
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cutkit.data.records import is_junk_judgment, is_positive_judgment
from cutkit.online.tasks import Task

JUDGE_PROMPT = (
    "Below is an instruction and a response to it. Judge the response.\n"
    'If the response is perfect, reply "Perfect" and nothing else. Otherwise, state its '
    "mistakes precisely: say what is wrong, quote the wrong part of the response, and do not "
    "rewrite the response.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n{response}"
)
"""The judging prompt of :class:`ModelJudge` and :class:`OpenAICompatibleJudge` (the user turn),
worded after the paper's GPT-4 judging instructions: "Perfect" for a perfect response, otherwise
the mistakes stated precisely. Models without a chat template get it followed by
:data:`JUDGMENT_CUE`."""

JUDGMENT_CUE = "\n\n### Judgment:\n"
"""Appended to :data:`JUDGE_PROMPT` for a tokenizer without a chat template."""


@dataclass
class Judgment:
    """A judge's verdict on one response.

    Attributes:
        text: the natural-language judgment ("Perfect..." for a good response).
        is_positive: routing (docs/method.md §1): True for a response judged good.
        error_spans: character spans ``(start, end)`` of the response the judgment criticises.
        attempts: calls it took (API judges retry).
        meta: judge-specific extras (RuleJudge: the violated constraint kinds).
    """

    text: str
    is_positive: bool
    error_spans: list[tuple[int, int]] = field(default_factory=list)
    attempts: int = 1
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class JudgeFailure:
    """A judge call that produced no usable judgment; ``reason`` says why (HTTP status, timeout,
    malformed reply, empty judgment...). Never trained on."""

    reason: str
    attempts: int = 1


JudgeResult = Judgment | JudgeFailure


class JudgeUnavailable(RuntimeError):
    """Every judge call of a round failed (an endpoint that is down, refuses, rate-limits or
    replies with nothing usable): the online run stops with one message saying which judge and
    endpoint, the most common reasons, what to do, and that the partial round is kept for resume
    (``cutkit online`` prints it as one line and exits with status 2)."""


class Judge(Protocol):
    """What the online loop needs of a judge."""

    name: str

    def judge(
        self, instructions: Sequence[str | Task], responses: Sequence[str]
    ) -> list[JudgeResult]: ...


def instruction_text(instruction: str | Task) -> str:
    """The instruction string of a :class:`~cutkit.online.tasks.Task` or a plain string."""
    return instruction.instruction if isinstance(instruction, Task) else instruction


def check_judge_lengths(instructions: Sequence, responses: Sequence) -> None:
    """ValueError unless a judge got one response per instruction."""
    if len(instructions) != len(responses):
        raise ValueError(
            f"judge() needs one response per instruction: got {len(instructions)} instructions "
            f"and {len(responses)} responses"
        )


_QUOTES = "\"'`\u201c\u201d\u2018\u2019"
_PLACEHOLDER = re.compile(r"\$\s*error\s*\$", re.IGNORECASE)


def is_error_reply(text: str) -> bool:
    """True for a reply that is a failed-call placeholder, never a judgment: what
    :func:`~cutkit.data.records.is_junk_judgment` calls junk (so the loaders would refuse it as
    a record), also when quoted or padded (``'"$ERROR$"'``, ``"`$error$`."``, ``"$ Error $"``)."""
    stripped = text.strip().strip(_QUOTES + " \t\r\n.!").strip()
    return (
        is_junk_judgment(text) or is_junk_judgment(stripped) or bool(_PLACEHOLDER.match(stripped))
    )


def judgment_from_text(text: str, attempts: int = 1) -> JudgeResult:
    """A model's reply as a :class:`Judgment` (positive iff it starts with "Perfect"), or a
    :class:`JudgeFailure` for an empty reply or a failed-call placeholder like ``"$ERROR$"``
    (:func:`is_error_reply`)."""
    text = text.strip()
    if not text:
        return JudgeFailure("the judge replied with an empty judgment", attempts)
    if is_error_reply(text):
        return JudgeFailure(f"the judge replied with the placeholder {text!r}", attempts)
    return Judgment(text, is_positive_judgment(text), attempts=attempts)
