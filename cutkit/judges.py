"""Judges: who writes the judgment j of a response y to an instruction x in online alignment.

Every judge has one method, ``judge(instructions, responses) -> list[Judgment | JudgeFailure]``
(one result per pair, in order), and a ``name``:

- :class:`RuleJudge`: deterministic and offline, for the tasks of :mod:`cutkit.constraints`. It
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
- :class:`OpenAICompatibleJudge`: a chat-completions endpoint, with timeouts, retries with
  exponential backoff, a thread-pool concurrency limit and 429 / Retry-After handling.

A failed judge call is a :class:`JudgeFailure` with its reason; the online loop records it and
never trains on that response (there is no placeholder judgment like the released data's
``"$ERROR$"``). :func:`make_judge` builds a judge from a CLI spec: ``rule``, ``model:PATH`` or
``openai:URL,MODEL[,ENV_VAR]``.

>>> from cutkit.constraints import Constraint, Task
>>> task = Task("t1", "Reply in lowercase.", [Constraint("lowercase")], "lowercase")
>>> result = RuleJudge(seed=0).judge([task], ["Hello there"])[0]
>>> result.is_positive, result.error_spans
(False, [(0, 5)])
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http.client import HTTPException
from typing import Any, Protocol

from cutkit.constraints import Task, Violation, check
from cutkit.records import is_junk_judgment, is_positive_judgment

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
        is_positive: routing (CUT_METHOD.md section 2): True for a response judged good.
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


class Judge(Protocol):
    """What the online loop needs of a judge."""

    name: str

    def judge(
        self, instructions: Sequence[str | Task], responses: Sequence[str]
    ) -> list[JudgeResult]: ...


def instruction_text(instruction: str | Task) -> str:
    """The instruction string of a :class:`~cutkit.constraints.Task` or a plain string."""
    return instruction.instruction if isinstance(instruction, Task) else instruction


def _check_lengths(instructions: Sequence, responses: Sequence) -> None:
    if len(instructions) != len(responses):
        raise ValueError(
            f"judge() needs one response per instruction: got {len(instructions)} instructions "
            f"and {len(responses)} responses"
        )


def judgment_from_text(text: str, attempts: int = 1) -> JudgeResult:
    """A model's reply as a :class:`Judgment` (positive iff it starts with "Perfect"), or a
    :class:`JudgeFailure` for an empty reply or a failed-call placeholder like ``"$ERROR$"``."""
    text = text.strip()
    if not text:
        return JudgeFailure("the judge replied with an empty judgment", attempts)
    if is_junk_judgment(text):
        return JudgeFailure(f"the judge replied with the placeholder {text!r}", attempts)
    return Judgment(text, is_positive_judgment(text), attempts=attempts)


# ----------------------------------------------------------------------------- RuleJudge


def _quote(text: str) -> str:
    """``text`` in double quotes, in full (whitespace runs normalised to one space)."""
    return '"' + " ".join(text.split()) + '"'


def _quote_list(items: Sequence[str]) -> str:
    """Every item quoted in full: ``"a"``, ``"a" and "b"``, ``"a", "b" and "c"``."""
    quoted = [_quote(item) for item in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _clip(text: str, width: int) -> str:
    """A short quote of text that is not a judged response (error messages, server replies)."""
    text = " ".join(text.split())
    return f'"{text[: width - 3].rstrip()}..."' if len(text) > width else f'"{text}"'


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


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


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
    """Judges responses to :class:`~cutkit.constraints.Task` instructions by checking their
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
                "cutkit.constraints.Task objects, or construct RuleJudge(tasks=...) with them"
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


# ----------------------------------------------------------------------------- ModelJudge


class ModelJudge:
    """A local causal LM as the judge: :data:`JUDGE_PROMPT` as the user turn of its chat
    template (or followed by :data:`JUDGMENT_CUE` without one), greedy, batched.

    Args:
        model: a loaded model, or a name / path for :func:`cutkit.load_model`.
        tokenizer: the model's tokenizer (loaded with the model when ``model`` is a path).
        batch_size: prompts per generation batch.
        max_new_tokens: longest judgment in tokens.
        prompt: the template, with ``{instruction}`` and ``{response}`` fields.
        device: where to load a model given by path (None: CUDA if available).
        show_progress: a tqdm bar over the batches.
    """

    def __init__(
        self,
        model,
        tokenizer=None,
        *,
        batch_size: int = 8,
        max_new_tokens: int = 256,
        prompt: str = JUDGE_PROMPT,
        device: str | None = None,
        show_progress: bool = False,
    ):
        self.name = "model"
        if isinstance(model, str | os.PathLike):
            from cutkit.models import load_model

            self.name = f"model:{os.fspath(model)}"
            model, tokenizer = load_model(model, device=device)
        if tokenizer is None:
            raise ValueError("ModelJudge needs the tokenizer of the model: pass tokenizer=...")
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.prompt, self.show_progress = prompt, show_progress

    def prompts(self, instructions: Sequence[str | Task], responses: Sequence[str]) -> list[str]:
        """The full prompt texts the model is given (chat template applied)."""
        _check_lengths(instructions, responses)
        texts = [
            self.prompt.format(instruction=instruction_text(i), response=r)
            for i, r in zip(instructions, responses, strict=True)
        ]
        if getattr(self.tokenizer, "chat_template", None):
            return [
                self.tokenizer.apply_chat_template(
                    [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
                )
                for text in texts
            ]
        return [text + JUDGMENT_CUE for text in texts]

    def judge(
        self, instructions: Sequence[str | Task], responses: Sequence[str]
    ) -> list[JudgeResult]:
        from cutkit.generation import generate_from_ids

        prompts = self.prompts(instructions, responses)
        chat = bool(getattr(self.tokenizer, "chat_template", None))
        ids = [self.tokenizer(p, add_special_tokens=not chat)["input_ids"] for p in prompts]
        replies = generate_from_ids(
            self.model,
            self.tokenizer,
            ids,
            batch_size=self.batch_size,
            max_new_tokens=self.max_new_tokens,
            longest_first=True,
            desc="judging" if self.show_progress else None,
        )
        return [judgment_from_text(reply) for reply in replies]


# ----------------------------------------------------------------------------- API judge


class JudgeCallError(Exception):
    """One failed endpoint call: ``reason``, whether a retry may help, and the server's
    Retry-After in seconds (429 replies)."""

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.retryable, self.retry_after = reason, retryable, retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent
    or unreadable."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def _snippet(raw: bytes | str, width: int = 120) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return _clip(text, width)


class OpenAICompatibleJudge:
    """A chat-completions endpoint (OpenAI, vLLM, llama.cpp server, ...) as the judge.

    Each (instruction, response) is one POST to ``{base_url}/chat/completions`` with
    :data:`JUDGE_PROMPT` as the user message, temperature 0. Failures are retried: timeouts,
    connection errors, 5xx and malformed replies with exponential backoff
    (``backoff * 2**k`` seconds, k = 0, 1, ..., capped at ``max_backoff``, plus up to 25 % jitter);
    429 replies after the server's Retry-After (capped at ``max_retry_after``), during which no
    thread of this judge sends a request. Other 4xx replies are not retried. After
    ``max_attempts`` the pair gets a :class:`JudgeFailure` with the last reason.

    Args:
        base_url: e.g. ``"https://api.openai.com/v1"`` or ``"http://127.0.0.1:8000/v1"``.
        model: the model name the endpoint expects.
        api_key_env: name of the environment variable holding the API key (sent as a Bearer
            token); None for an endpoint without authentication. The key is read once, here.
        timeout: seconds per socket operation (connect, each read).
        max_attempts: calls per pair at most (1 = no retries).
        backoff, max_backoff: exponential backoff base and cap, seconds.
        max_retry_after: longest Retry-After honoured, seconds.
        concurrency: requests in flight at once (threads).
        max_tokens: longest judgment in tokens.
        prompt: the template, with ``{instruction}`` and ``{response}`` fields.
        show_progress: a tqdm bar over the pairs.
        sleep, clock: injectable for tests (default ``time.sleep``, ``time.monotonic``).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_attempts: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        max_retry_after: float = 120.0,
        concurrency: int = 4,
        max_tokens: int = 512,
        prompt: str = JUDGE_PROMPT,
        show_progress: bool = False,
        seed: int = 0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not model:
            raise ValueError("OpenAICompatibleJudge needs a model name")
        if max_attempts < 1 or concurrency < 1:
            raise ValueError("max_attempts and concurrency must be >= 1")
        self._api_key = None
        if api_key_env:
            self._api_key = os.environ.get(api_key_env)
            if not self._api_key:
                raise ValueError(
                    f"the environment variable {api_key_env} is not set: export it with the API "
                    f"key of {base_url}, or pass api_key_env=None (spec openai:URL,MODEL) for "
                    "an endpoint without authentication"
                )
        self.name = f"openai:{base_url},{model}"
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key_env = model, api_key_env
        self.timeout, self.max_attempts = timeout, max_attempts
        self.backoff, self.max_backoff, self.max_retry_after = backoff, max_backoff, max_retry_after
        self.concurrency, self.max_tokens, self.prompt = concurrency, max_tokens, prompt
        self.show_progress = show_progress
        self._sleep, self._clock = sleep, clock
        self._lock = threading.Lock()
        self._not_before = 0.0  # clock() time before which no request is sent (429 pause)
        self._rng = random.Random(seed)

    def judge(
        self, instructions: Sequence[str | Task], responses: Sequence[str]
    ) -> list[JudgeResult]:
        _check_lengths(instructions, responses)
        prompts = [
            self.prompt.format(instruction=instruction_text(i), response=r)
            for i, r in zip(instructions, responses, strict=True)
        ]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            results = pool.map(self.judge_prompt, prompts)
            if self.show_progress:
                from tqdm.auto import tqdm

                results = tqdm(results, total=len(prompts), desc="judging")
            return list(results)

    def judge_prompt(self, prompt: str) -> JudgeResult:
        """One judging prompt -> a Judgment, retrying as the class docstring says."""
        error = JudgeCallError("no attempt made", retryable=False)
        attempt = 0
        for attempt in range(1, self.max_attempts + 1):
            self._wait_for_pause()
            try:
                return judgment_from_text(self.call(prompt), attempts=attempt)
            except JudgeCallError as caught:
                error = caught
            if not error.retryable or attempt == self.max_attempts:
                break
            if error.retry_after is not None:
                self._pause(min(error.retry_after, self.max_retry_after))
            else:
                delay = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
                with self._lock:
                    delay *= 1 + 0.25 * self._rng.random()
                self._sleep(delay)
        tries = _plural(attempt, "attempt")
        return JudgeFailure(f"{error.reason} (gave up after {tries})", attempts=attempt)

    def _pause(self, seconds: float) -> None:
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + seconds)

    def _wait_for_pause(self) -> None:
        with self._lock:
            remaining = self._not_before - self._clock()
        if remaining > 0:
            self._sleep(remaining)

    def call(self, prompt: str) -> str:
        """One POST; the reply's ``choices[0].message.content``, or a :class:`JudgeCallError`."""
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
            "max_tokens": self.max_tokens,
        }
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                raw = reply.read()
        except urllib.error.HTTPError as error:
            detail = _snippet(error.read() or b"")
            if error.code == 429:
                after = parse_retry_after(error.headers.get("Retry-After"))
                raise JudgeCallError(
                    f"HTTP 429 rate limited: {detail}", retryable=True, retry_after=after
                ) from None
            retryable = error.code >= 500 or error.code in (408, 409)
            raise JudgeCallError(f"HTTP {error.code}: {detail}", retryable=retryable) from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                raise JudgeCallError(f"timed out after {self.timeout} s", retryable=True) from None
            raise JudgeCallError(
                f"cannot reach {self.url}: {error.reason}", retryable=True
            ) from None
        except TimeoutError:
            raise JudgeCallError(f"timed out after {self.timeout} s", retryable=True) from None
        except (ConnectionError, HTTPException) as error:
            raise JudgeCallError(
                f"connection failed: {type(error).__name__}: {error}", retryable=True
            ) from None
        return self.parse_reply(raw)

    @staticmethod
    def parse_reply(raw: bytes) -> str:
        """``choices[0].message.content`` of a chat-completions reply body."""
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise JudgeCallError(
                f"malformed reply (not JSON): {_snippet(raw)}", retryable=True
            ) from None
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise JudgeCallError(
                f"malformed reply (no choices[0].message.content): {_snippet(raw)}",
                retryable=True,
            ) from None
        if not isinstance(content, str):
            raise JudgeCallError(
                f"malformed reply (content is {type(content).__name__}, not text)", retryable=True
            )
        return content


# ----------------------------------------------------------------------------- specs

JUDGE_SPECS = ("rule", "model:PATH", "openai:URL,MODEL[,ENV_VAR]")


def parse_judge_spec(spec: str) -> tuple[str, list[str]]:
    """``(kind, arguments)`` of a judge spec (see :func:`make_judge`); a ValueError naming the
    accepted forms for anything else."""
    kind, _, rest = spec.partition(":")
    if kind == "rule" and not rest:
        return kind, []
    if kind == "model" and rest:
        return kind, [rest]
    if kind == "openai" and rest:
        parts = [part.strip() for part in rest.split(",")]
        if len(parts) in (2, 3) and all(parts[:2]):
            return kind, parts
    raise ValueError(
        f"unknown judge spec {spec!r}; use one of: {', '.join(JUDGE_SPECS)} (e.g. "
        "'openai:https://api.openai.com/v1,gpt-4o-mini,OPENAI_API_KEY')"
    )


def make_judge(spec: str, *, seed: int = 0, device: str | None = None, **options) -> Judge:
    """A judge from a CLI spec: ``rule``, ``model:PATH`` (any name or path
    :func:`cutkit.load_model` takes) or ``openai:URL,MODEL[,ENV_VAR]`` (ENV_VAR holds the API key;
    left out, no key is sent). ``options`` go to the judge's constructor."""
    kind, args = parse_judge_spec(spec)
    if kind == "rule":
        return RuleJudge(seed=seed, **options)
    if kind == "model":
        return ModelJudge(args[0], device=device, **options)
    env = args[2] if len(args) == 3 and args[2] else None
    return OpenAICompatibleJudge(args[0], args[1], api_key_env=env, seed=seed, **options)
