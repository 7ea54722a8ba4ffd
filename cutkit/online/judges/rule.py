"""The rule judge: checks a task's constraints and writes a varied, verbatim-quoting critique
with the character spans it criticises.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from cutkit.online.checkers import check
from cutkit.online.judges.base import JudgeResult, Judgment, _check_lengths, _clip, _plural
from cutkit.online.tasks import Task, Violation


def _quote(text: str) -> str:
    """``text`` in double quotes, in full (whitespace runs normalised to one space)."""
    return '"' + " ".join(text.split()) + '"'


def _quote_list(items: Sequence[str]) -> str:
    """Every item quoted in full: ``"a"``, ``"a" and "b"``, ``"a", "b" and "c"``."""
    quoted = [_quote(item) for item in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _distinct(texts) -> list[str]:
    return list(dict.fromkeys(texts))


def _comma_contexts(response: str, commas: Sequence[tuple[int, int]]) -> list[str]:
    """Each comma of ``response`` with the words around it: the whitespace-separated word that
    holds the comma through the word after it, overlapping stretches merged ("red, green, blue")."""
    words = [m.span() for m in re.finditer(r"\S+", response)]
    stretches: list[list[int]] = []
    for start, _ in commas:
        k = next(i for i, (s, e) in enumerate(words) if s <= start < e)
        first, last = k, min(k + 1, len(words) - 1)
        if stretches and first <= stretches[-1][1]:
            stretches[-1][1] = max(stretches[-1][1], last)
        else:
            stretches.append([first, last])
    return [response[words[a][0] : words[b][1]] for a, b in stretches]


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def _phrasings(v: Violation, response: str) -> list[str]:
    """Alternative sentences stating violation ``v`` of ``response`` precisely (one is picked at
    random); every quote of the response's offending text is in full."""
    f = v.facts
    if v.kind == "lowercase":
        words, verb = _quote_list(f["words"]), "contains" if len(f["words"]) == 1 else "contain"
        return [
            f"It is not all lowercase: {words} {verb} capital letters.",
            f"The instruction asks for lowercase only, but the response capitalises {words}.",
            f"Capital letters appear in {words}, which breaks the all-lowercase rule.",
        ]
    if v.kind == "max_words":
        n, count, excess = f["n"], f["count"], _quote(f["excess"])
        return [
            f"It is too long: {count} words where at most {n} are allowed. Everything from "
            f"{excess} on is over the limit.",
            f"The response has {count} words, but the limit is {n}; the part starting {excess} "
            "goes past it.",
            f"The word limit is {n} and the response uses {count}: it should have stopped "
            f"before {excess}.",
        ]
    if v.kind == "include_word":
        word = f["word"]
        return [
            f'The required word "{word}" never appears in the response.',
            f'It does not use the word "{word}", which the instruction requires.',
            f'The response is missing the word "{word}" that it was told to include.',
        ]
    if v.kind == "exclude_word":
        word, times = f["word"], _times(f["count"])
        written = _quote_list(_distinct(response[s:e] for s, e in v.spans) or [f["as_written"]])
        return [
            f'It uses the forbidden word "{word}" ({times}).',
            f'The instruction forbids "{word}", but the response writes {written} {times}.',
            f'"{word}" must not appear, yet it occurs {times} in the response.',
        ]
    if v.kind == "no_commas":
        count = f["count"]
        context = _quote_list(_comma_contexts(response, v.spans) or [f["context"]])
        commas = "a comma" if count == 1 else f"{count} commas"
        return [
            f"It uses {commas} although commas are not allowed: {context}.",
            f"The instruction says no commas, but the response has {commas}, in {context}.",
            f"Commas are forbidden, yet the response contains {commas}: see {context}.",
        ]
    if v.kind == "end_with":
        phrase = f["phrase"]
        if not f["ending"]:
            return [f'The response is empty, so it does not end with "{phrase}".']
        ending = _quote(f["ending"])
        return [
            f'It does not end with the exact phrase "{phrase}"; it ends with {ending} instead.',
            f'The last words should be "{phrase}", but the response finishes with {ending}.',
            f'The required closing phrase "{phrase}" is missing: the final sentence is {ending}.',
        ]
    if v.kind == "numbered_list":
        return _list_phrasings(v, response)
    if v.kind == "json_keys":
        return _json_phrasings(v, response)
    if v.kind == "arithmetic":
        return _arithmetic_phrasings(f)
    raise ValueError(f"no wording for constraint kind {v.kind!r}")


def _list_phrasings(v: Violation, response: str) -> list[str]:
    f = v.facts
    n, count, problem = f["n"], f["count"], f["problem"]
    if problem == "no_list":
        return [
            f"There is no numbered list; the instruction asks for exactly {n} numbered items.",
            f'The response is not a numbered list of {n} items: no line starts with "1." or '
            "similar.",
            f"It does not give the numbered list of {n} items that was asked for.",
        ]
    if problem == "too_many":  # every extra item, from the first to the end of the last
        extra = _quote(response[v.spans[0][0] : v.spans[-1][1]] if v.spans else f["item"])
        many = "item is" if count - n == 1 else "items are"
        return [
            f"The list has {count} items, but exactly {n} were asked for; the extra {many} "
            f"{extra}.",
            f"Too many items: {count} instead of {n}. The list should stop before {extra}.",
            f"It lists {count} items where the instruction wants exactly {n}, so {extra} should "
            "not be there.",
        ]
    if problem == "too_few":
        return [
            f"The list has only {_plural(count, 'item')}; the instruction asks for exactly {n}.",
            f"Too few items: {count} instead of {n}.",
            f"It stops after {_plural(count, 'item')}, but exactly {n} were requested.",
        ]
    item = _quote(f["item"])
    return [
        f"The numbering is wrong: item {f['expected']} is numbered {f['found']} ({item}).",
        f"Item {f['expected']} of the list carries the number {f['found']} instead ({item}).",
    ]


def _json_phrasings(v: Violation, response: str) -> list[str]:
    f = v.facts
    keys, problem = _quote_list(f["keys"]), f["problem"]
    if problem == "no_object":
        return [
            f"The response contains no JSON object; it should be one with the keys {keys}.",
            f"There is no JSON in the response, although a JSON object with keys {keys} was "
            "requested.",
        ]
    if problem == "text_before":
        text = _quote(f["text"])
        return [
            f"There is text before the JSON object ({text}), but only the JSON was asked for.",
            f"The JSON should stand alone, yet the response opens with {text}.",
        ]
    if problem == "text_after":
        text = _quote(f["text"])
        return [
            f"Text follows the JSON object ({text}); only the JSON was asked for.",
            f"The response adds {text} after the JSON, which the instruction does not allow.",
        ]
    if problem == "invalid":
        near = _quote(response[v.spans[0][0] : v.spans[0][1]] if v.spans else f["near"])
        return [
            f"The JSON is not valid ({f['message']}) near {near}.",
            f"This is not valid JSON: {f['message'].lower()} at {near}.",
        ]
    if problem == "missing":
        missing = _quote_list(f["missing"])
        s = "" if len(f["missing"]) == 1 else "s"
        return [
            f"The JSON object lacks the key{s} {missing}.",
            f"The key{s} {missing} {'is' if not s else 'are'} missing from the JSON object.",
        ]
    extra = _quote_list(f["extra"])
    s = "" if len(f["extra"]) == 1 else "s"
    return [
        f"The JSON object has the key{s} {extra}, which was not asked for; the keys should be "
        f"exactly {keys}.",
        f"Only the keys {keys} are allowed, but the object also has {extra}.",
    ]


def _arithmetic_phrasings(f: dict) -> list[str]:
    expression, answer = f["expression"], f["answer"]
    if f["problem"] == "no_number":
        return [
            f"The response gives no number at all; {expression} is {answer}.",
            f"It does not answer with a number. The answer to {expression} is {answer}.",
        ]
    if f["problem"] == "wrong":
        given = f["given"]
        return [
            f"The answer is wrong: {expression} is {answer}, not {given}.",
            f"{given} is incorrect; {expression} = {answer}.",
            f"It says {given}, but {expression} equals {answer}.",
        ]
    extra = _quote(f["extra"])
    return [
        f"The instruction asks for the number only, but the response adds {extra}.",
        f"It should reply with just the number, without {extra}.",
    ]


_PRAISE = {
    "lowercase": "every letter is lowercase",
    "max_words": "it stays within {n} words",
    "include_word": 'it uses the word "{word}"',
    "exclude_word": 'it avoids the word "{word}"',
    "no_commas": "it has no commas",
    "end_with": 'it ends with "{phrase}"',
    "numbered_list": "the list has exactly {n} items",
    "json_keys": "the JSON has exactly the requested keys",
    "arithmetic": "{answer} is correct",
}


EMPTY_JUDGMENTS = (
    "The response is empty: it does not answer the instruction at all.",
    "There is no response to judge; the instruction is not answered.",
)
"""RuleJudge's judgments of an empty response (which may break no constraint, yet is no answer)."""


def _merge_spans(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


class RuleJudge:
    """Judges responses to :class:`~cutkit.online.tasks.Task` instructions by checking their
    constraints (deterministic, offline).

    Args:
        tasks: tasks whose instruction strings ``judge`` may receive instead of Task objects.
        seed: varies the wording (the same seed, instruction and response give the same text).
    """

    name = "rule"

    def __init__(self, tasks: Sequence[Task] = (), *, seed: int = 0):
        self.seed = seed
        self._tasks = {task.instruction: task for task in tasks}

    def _task(self, instruction: str | Task) -> Task:
        if isinstance(instruction, Task):
            return instruction
        task = self._tasks.get(instruction)
        if task is None:
            raise ValueError(
                "RuleJudge has no constraints for the instruction "
                f"{_clip(instruction, 60)}: pass "
                "cutkit.online.tasks.Task objects, or construct RuleJudge(tasks=...) with them"
            )
        return task

    def judge(
        self, instructions: Sequence[str | Task], responses: Sequence[str]
    ) -> list[JudgeResult]:
        _check_lengths(instructions, responses)
        return [
            self.judge_one(self._task(i), r) for i, r in zip(instructions, responses, strict=True)
        ]

    def judge_one(self, task: Task, response: str) -> Judgment:
        """The judgment of one response (see the module docstring)."""
        rng = random.Random(f"{self.seed}\x00{task.instruction}\x00{response}")
        if not response.strip():
            return Judgment(rng.choice(EMPTY_JUDGMENTS), False, meta={"violations": ["empty"]})
        violations = check(task, response)
        if not violations:
            return Judgment(self._commendation(task, rng), True)
        sentences = [rng.choice(_phrasings(v, response)) for v in violations]
        opener = rng.choice(
            ["", "", "The response does not follow the instruction. "]
            if len(violations) == 1
            else ["", f"There are {len(violations)} problems. ", "The response has several flaws. "]
        )
        spans = _merge_spans([span for v in violations for span in v.spans])
        return Judgment(
            opener + " ".join(sentences),
            False,
            error_spans=spans,
            meta={"violations": [v.kind for v in violations]},
        )

    @staticmethod
    def _commendation(task: Task, rng: random.Random) -> str:
        praise = [_PRAISE[c.kind].format(**c.params) for c in task.constraints]
        praise_text = " and ".join(praise)
        return rng.choice(
            [
                "Perfect.",
                "Perfect.",
                f"Perfect. {praise_text[0].upper() + praise_text[1:]}.",
                f"Perfect: {praise_text}.",
                "Perfect. It follows the instruction exactly.",
            ]
        )
