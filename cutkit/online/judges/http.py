"""A judge behind an OpenAI-compatible chat-completions endpoint."""

from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from http.client import HTTPException

from cutkit.online.judges.base import (
    JUDGE_PROMPT,
    JudgeFailure,
    JudgeResult,
    _check_lengths,
    instruction_text,
    judgment_from_text,
)
from cutkit.online.tasks import Task
from cutkit.online.text import clip, plural


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
    return clip(text, width)


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
        tries = plural(attempt, "attempt")
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
