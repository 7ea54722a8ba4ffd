"""A judge behind an OpenAI-compatible chat-completions endpoint."""

from __future__ import annotations

import http.client
import json
import math
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPException

from cutkit._checks import check_number
from cutkit.online.judges.base import (
    JUDGE_PROMPT,
    JudgeFailure,
    JudgeResult,
    check_judge_lengths,
    instruction_text,
    judgment_from_text,
)
from cutkit.online.judges.transport import RequestDeadline, deadline_opener, parse_retry_after
from cutkit.online.tasks import Task
from cutkit.online.text import clip, plural

LIMIT_WHY = {
    "timeout": "seconds per request, one deadline for connecting and reading the whole reply",
    "max_attempts": "requests per response at most (1 = no retries)",
    "concurrency": "requests in flight at once",
    "max_reply_bytes": "the largest reply accepted, in bytes",
}
"""Why each limit of :class:`OpenAICompatibleJudge` is in its range (also the reasons of
:class:`~cutkit.online.config.OnlineConfig`'s ``judge_*`` options)."""


class JudgeCallError(Exception):
    """One failed endpoint call: ``reason``, whether a retry may help, and the server's
    Retry-After in seconds (429 and 503 replies; None when absent or unreadable)."""

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.retryable, self.retry_after = reason, retryable, retry_after


def _content_length(headers) -> int | None:
    try:
        return int(headers.get("Content-Length", ""))
    except (TypeError, ValueError):
        return None


def _snippet(raw: bytes | str, width: int = 120) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return clip(text, width)


class OpenAICompatibleJudge:
    """A chat-completions endpoint (OpenAI, vLLM, llama.cpp server, ...) as the judge.

    Each (instruction, response) is one POST to ``{base_url}/chat/completions`` with
    :data:`JUDGE_PROMPT` as the user message, temperature 0. Each request has one deadline,
    ``timeout`` seconds for everything (connect, headers and the whole body, however slowly the
    server sends it), and a size cap, ``max_reply_bytes`` (a larger reply is a failure naming its
    size and the cap, not retried). Failures are retried: timeouts, connection errors, 5xx and
    malformed replies with exponential backoff (``backoff * 2**k`` seconds, k = 0, 1, ...,
    capped at ``max_backoff``, plus up to 25 % jitter); 429 and 503 replies after the server's
    Retry-After (capped at ``max_retry_after``; an unreadable, negative or non-finite one falls
    back to the backoff), during which no thread of this judge sends a request. Other 4xx replies
    are not retried. After ``max_attempts`` the pair gets a :class:`JudgeFailure` with the last
    reason, so a pair takes at most about ``max_attempts * timeout`` plus the waits between.
    A reply that is a failed-call placeholder (``$ERROR$`` in any case, quoted or padded) or empty
    is a failure too, like any other unusable reply.

    Args:
        base_url: e.g. ``"https://api.openai.com/v1"`` or ``"http://127.0.0.1:8000/v1"``.
        model: the model name the endpoint expects.
        api_key_env: name of the environment variable holding the API key (sent as a Bearer
            token); None for an endpoint without authentication. The key is read once, here.
        timeout: seconds per request: the deadline for connecting and reading the whole reply.
        max_attempts: calls per pair at most (1 = no retries).
        backoff, max_backoff: exponential backoff base and cap, seconds.
        max_retry_after: longest Retry-After honoured, seconds.
        concurrency: requests in flight at once (threads).
        max_reply_bytes: largest reply body accepted, bytes.
        deadline: seconds one :meth:`judge` call may take in all (None: no bound beyond the
            requests'): no request runs past it and no attempt starts after it; the pairs not
            judged by then are failures saying so. The online loop passes its ``judge_deadline``,
            so a dead endpoint holds a round for at most that long.
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
        max_reply_bytes: int = 1_000_000,
        deadline: float | None = None,
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
        for name, value in (
            ("max_attempts", max_attempts),
            ("concurrency", concurrency),
            ("max_reply_bytes", max_reply_bytes),
        ):
            check_number(name, value, minimum=1, integer=True, why=LIMIT_WHY[name])
        check_number("timeout", timeout, minimum=0, min_open=True, why=LIMIT_WHY["timeout"])
        check_number(
            "deadline",
            deadline,
            minimum=0,
            min_open=True,
            optional=True,
            why="seconds one judging call may take in all",
        )
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
        self.max_reply_bytes, self.deadline = max_reply_bytes, deadline
        self.show_progress = show_progress
        self._sleep, self._clock = sleep, clock
        self._lock = threading.Lock()
        self._not_before = 0.0  # clock() time before which no request is sent (429 pause)
        self._rng = random.Random(seed)

    def judge(
        self, instructions: Sequence[str | Task], responses: Sequence[str]
    ) -> list[JudgeResult]:
        check_judge_lengths(instructions, responses)
        prompts = [
            self.prompt.format(instruction=instruction_text(i), response=r)
            for i, r in zip(instructions, responses, strict=True)
        ]
        end = None if self.deadline is None else self._clock() + self.deadline
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            results = pool.map(lambda prompt: self.judge_prompt(prompt, end=end), prompts)
            if self.show_progress:
                from tqdm.auto import tqdm

                results = tqdm(results, total=len(prompts), desc="judging")
            return list(results)

    def judge_prompt(self, prompt: str, *, end: float | None = None) -> JudgeResult:
        """One judging prompt -> a Judgment, retrying as the class docstring says; no request
        runs past ``end`` (a :attr:`clock` time: the deadline of the whole :meth:`judge` call)."""
        error = JudgeCallError("no attempt made", retryable=False)
        attempt = tried = 0
        for attempt in range(1, self.max_attempts + 1):
            self._wait_for_pause(end)
            left = self.timeout if end is None else min(self.timeout, end - self._clock())
            if left <= 0:
                break
            tried = attempt
            try:
                reply = self.call(prompt) if end is None else self.call(prompt, timeout=left)
                return judgment_from_text(reply, attempts=attempt)
            except JudgeCallError as caught:
                error = caught
            if not error.retryable or attempt == self.max_attempts:
                break
            if error.retry_after is not None and math.isfinite(error.retry_after):
                self._pause(min(max(error.retry_after, 0.0), self.max_retry_after))
            else:
                delay = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
                with self._lock:
                    delay *= 1 + 0.25 * self._rng.random()
                self._sleep(delay if end is None else max(min(delay, end - self._clock()), 0))
        tries = plural(tried, "attempt")
        if end is not None and self._clock() >= end:
            reason = f"the judging deadline of {self.deadline:g} s passed"
            if tried:
                reason = f"{error.reason}; {reason}"
            return JudgeFailure(f"{reason} (gave up after {tries})", attempts=tried)
        return JudgeFailure(f"{error.reason} (gave up after {tries})", attempts=attempt)

    def _pause(self, seconds: float) -> None:
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + seconds)

    def _wait_for_pause(self, end: float | None = None) -> None:
        with self._lock:
            now = self._clock()
            until = self._not_before if end is None else min(self._not_before, end)
        remaining = until - now
        if remaining > 0:
            self._sleep(remaining)

    def call(self, prompt: str, *, timeout: float | None = None) -> str:
        """One POST; the reply's ``choices[0].message.content``, or a :class:`JudgeCallError`.
        ``timeout``: this request's deadline in seconds (default :attr:`timeout`)."""
        timeout = self.timeout if timeout is None else timeout
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
        deadline = RequestDeadline(timeout)
        timed_out = JudgeCallError(
            f"timed out after {round(timeout, 2):g} s (no complete reply within the request's deadline)",
            retryable=True,
        )
        opener = deadline_opener(deadline)
        try:
            with opener.open(request, timeout=timeout) as reply:
                raw = self._read_body(reply, deadline)
        except JudgeCallError:
            raise
        except urllib.error.HTTPError as error:
            try:
                detail = _snippet(error.read(4096) or b"")
            except Exception:  # the status says enough
                detail = "(no readable body)"
            retryable = error.code >= 500 or error.code in (408, 409, 429)
            after = None
            if error.code in (429, 503):
                after = parse_retry_after(error.headers.get("Retry-After"))
            label = " rate limited" if error.code == 429 else ""
            raise JudgeCallError(
                f"HTTP {error.code}{label}: {detail}", retryable=retryable, retry_after=after
            ) from None
        except Exception as error:  # any failure is a failed call
            if deadline.expired or isinstance(error, TimeoutError):
                raise timed_out from None
            if isinstance(error, urllib.error.URLError):
                if isinstance(error.reason, TimeoutError):
                    raise timed_out from None
                raise JudgeCallError(
                    f"cannot reach {self.url}: {error.reason}", retryable=True
                ) from None
            if isinstance(error, ConnectionError | HTTPException | OSError):
                raise JudgeCallError(
                    f"connection failed: {type(error).__name__}: {error}", retryable=True
                ) from None
            raise
        finally:
            deadline.cancel()
        return self.parse_reply(raw)

    def _read_body(self, reply: http.client.HTTPResponse, deadline: RequestDeadline) -> bytes:
        """The reply body, read in chunks against the deadline and the size cap."""
        cap = self.max_reply_bytes
        declared = _content_length(reply.headers)
        if declared is not None and declared > cap:
            raise JudgeCallError(
                f"reply too large: {declared:,} bytes (Content-Length), over the cap of "
                f"{cap:,} bytes (max_reply_bytes)",
                retryable=False,
            )
        chunks, size = [], 0
        while True:
            if deadline.expired:
                raise TimeoutError
            chunk = reply.read1(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > cap:
                raise JudgeCallError(
                    f"reply too large: over the cap of {cap:,} bytes (max_reply_bytes); gave up "
                    f"after reading {size:,} bytes",
                    retryable=False,
                )
            chunks.append(chunk)
        if deadline.expired and (declared is None or size < declared):
            raise TimeoutError
        if declared is not None and size < declared:
            raise JudgeCallError(
                f"reply cut short: {size:,} of {declared:,} bytes (Content-Length)", retryable=True
            )
        return b"".join(chunks)

    @staticmethod
    def parse_reply(raw: bytes) -> str:
        """``choices[0].message.content`` of a chat-completions reply body."""
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise JudgeCallError(
                f"malformed reply (not JSON): {_snippet(raw)}", retryable=True
            ) from None
        if isinstance(data, dict) and "error" in data and not data.get("choices"):
            error = data["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise JudgeCallError(
                f"the endpoint replied with an error: {_snippet(str(message))}", retryable=True
            )
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
