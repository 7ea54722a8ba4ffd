"""Bad-input corpus for the HTTP judge and the file loaders.

Every case must end, within a time bound, in a clear error or the correct result: the HTTP judge
against a local server that never answers, trickles, sends a huge or malformed reply, rate-limits
with odd Retry-After values or replies with error placeholders (always a
:class:`~cutkit.online.judges.base.JudgeFailure` with a reason, or a Judgment when the reply is
usable); the loaders on corrupt ``.gz`` archives, invalid UTF-8, lone surrogates, wrong types and
empty files (a :class:`~cutkit.data.records.RecordError` naming the file, and the record and field
where there is one). Each HTTP case runs in a thread joined with a timeout, so a hang is a failure,
not a stuck test run.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import re
import socket
import threading
import time

import pytest

from cutkit.data.loading import load_records
from cutkit.data.records import RecordError
from cutkit.online.judges.base import JudgeFailure, Judgment
from cutkit.online.judges.http import OpenAICompatibleJudge
from tests.helpers import judge_completion, judge_never_answers, judge_reply, judge_server

# ----------------------------------------------------------------------------- HTTP judge

TIMEOUT, ATTEMPTS, MAX_RETRY_AFTER = 0.5, 2, 3.0


completion, reply = judge_completion, judge_reply


def trickle_body(handler, n):
    body = completion("Perfect." + " really" * 20)
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.flush()
    for byte in body:
        if handler.server.stop.wait(0.2):
            return
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()


def trickle_headers(handler, n):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: " + b"x" * 60
    for byte in head:
        if handler.server.stop.wait(0.1):
            return
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()


def close_at_once(handler, n):
    handler.close_connection = True
    handler.connection.shutdown(socket.SHUT_RDWR)


def short_body(handler, n):  # Content-Length promises more than is sent
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    handler.wfile.write(b'{"choices": [')
    handler.wfile.flush()
    handler.close_connection = True
    handler.connection.shutdown(socket.SHUT_RDWR)


def huge(status=200, length=True, size=2_000_000):
    def behave(handler, n):
        body = completion("x" * size) if status == 200 else b"e" * size
        headers = {} if length else {"Connection": "close"}
        if not length:
            handler.close_connection = True
        with contextlib.suppress(OSError):
            reply(handler, status, body, headers)

    return behave


def static(status: int, body: bytes, headers: dict | None = None, then_ok: bool = False):
    def behave(handler, n):
        if then_ok and n > 1:
            reply(handler, 200, completion("Perfect."))
        else:
            reply(handler, status, body, headers)

    return behave


def rate_limited(value: str, status: int = 429, always: bool = False):
    return static(status, b"slow down", {"Retry-After": value}, then_ok=not always)


def delayed(seconds: float):
    def behave(handler, n):
        time.sleep(seconds)
        reply(handler, 200, completion("Wrong: too short."))

    return behave


def failed(*fragments: str):
    """The result is a JudgeFailure whose reason holds every fragment (regexes, any case)."""

    def check(result, slept):
        assert isinstance(result, JudgeFailure), result
        for fragment in fragments:
            assert re.search(fragment, result.reason, re.IGNORECASE), result.reason
        assert len(result.reason) < 600, "reason too long"

    return check


def judged(positive: bool | None = None, attempts: int | None = None):
    def check(result, slept):
        assert isinstance(result, Judgment), result
        if positive is not None:
            assert result.is_positive == positive
        if attempts is not None:
            assert result.attempts == attempts

    return check


def backed_off(result_check, *, expect: float | None = None):
    """``result_check`` holds and every wait before a retry was a finite positive delay no longer
    than MAX_RETRY_AFTER (``expect``: the first one, to 10 %)."""

    def check(result, slept):
        result_check(result, slept)
        assert slept, "retried without any wait"
        for seconds in slept:
            assert math.isfinite(seconds) and 0 < seconds <= MAX_RETRY_AFTER, slept
        if expect is not None:
            assert abs(slept[0] - expect) <= 0.1 * expect + 0.05, slept

    return check


ERR = "[$]error[$]"
HTTP_CASES = {
    # name: (behaviour, check, seconds allowed)
    "never_answers": (judge_never_answers, failed("timed out"), 2.5),
    "trickles_body_1_byte_per_0.2s": (trickle_body, failed("timed out|deadline"), 2.5),
    "trickles_headers": (trickle_headers, failed("timed out|deadline"), 2.5),
    "closes_without_reply": (close_at_once, failed("connection|reach"), 2.5),
    "body_shorter_than_content_length": (short_body, failed(""), 2.5),
    "answers_after_0.2s": (delayed(0.2), judged(False, 1), 2.5),
    "huge_reply_2MB": (huge(), failed("2,?000,?\\d{3}|2\\.0 MB|too large", "cap|limit|max"), 3),
    "huge_reply_2MB_no_length": (huge(length=False), failed("too large|bytes"), 3),
    "huge_500_body": (huge(status=500), failed("HTTP 500"), 3),
    "huge_429_body": (huge(status=429), failed("HTTP 429"), 3),
    "not_json": (static(200, b"{oops"), failed("not JSON"), 2),
    "html": (static(200, b"<html>busy</html>", {"Content-Type": "text/html"}), failed("JSON"), 2),
    "empty_body": (static(200, b""), failed("not JSON|empty"), 2),
    "invalid_utf8_body": (static(200, b'{"choices": "\xff\xfe"}'), failed("JSON"), 2),
    "json_null": (static(200, b"null"), failed("choices"), 2),
    "json_list": (static(200, b"[]"), failed("choices"), 2),
    "no_choices": (static(200, b'{"choices": []}'), failed("choices"), 2),
    "content_null": (static(200, completion(None)), failed("content"), 2),
    "content_number": (static(200, completion(3)), failed("content"), 2),
    "error_object_with_200": (
        static(200, b'{"error": {"message": "model overloaded"}}'),
        failed("model overloaded"),
        2,
    ),
    "text_plain_but_valid": (
        static(200, completion("Perfect."), {"Content-Type": "text/plain"}),
        judged(True, 1),
        2,
    ),
    "reply_placeholder_ERROR": (static(200, completion("$ERROR$")), failed(ERR), 2),
    "reply_placeholder_lowercase": (static(200, completion("$error$")), failed(ERR), 2),
    "reply_placeholder_spaced": (static(200, completion("  $Error$ \n")), failed(ERR), 2),
    "reply_placeholder_quoted": (static(200, completion('"$ERROR$"')), failed(ERR), 2),
    "reply_empty": (static(200, completion("")), failed("empty"), 2),
    "reply_whitespace": (static(200, completion(" \n\t ")), failed("empty"), 2),
    "reply_critique_mentions_error": (
        static(200, completion("Error: the response says 5; 2 + 2 is 4.")),
        judged(False),
        2,
    ),
    "retry_after_nan": (rate_limited("nan"), backed_off(judged(attempts=2)), 2),
    "retry_after_inf": (rate_limited("inf"), backed_off(judged(attempts=2)), 2),
    "retry_after_minus_inf": (rate_limited("-inf"), backed_off(judged(attempts=2)), 2),
    "retry_after_negative": (rate_limited("-5"), backed_off(judged(attempts=2)), 2),
    "retry_after_huge": (rate_limited("1e12"), backed_off(judged(attempts=2)), 2),
    "retry_after_overflow": (rate_limited("9" * 400), backed_off(judged(attempts=2)), 2),
    "retry_after_empty": (rate_limited(""), backed_off(judged(attempts=2)), 2),
    "retry_after_words": (rate_limited("soon"), backed_off(judged(attempts=2)), 2),
    "retry_after_far_future_date": (
        rate_limited("Fri, 31 Dec 9999 23:59:59 GMT"),
        backed_off(judged(attempts=2), expect=MAX_RETRY_AFTER),
        2,
    ),
    "retry_after_1.5": (rate_limited("1.5"), backed_off(judged(attempts=2), expect=1.5), 2),
    "retry_after_zero": (rate_limited("0"), judged(attempts=2), 2),
    "retry_after_past_date": (rate_limited("Wed, 21 Oct 2015 07:28:00 GMT"), judged(attempts=2), 2),
    "500_with_retry_after_nan": (rate_limited("nan", 500), backed_off(judged(attempts=2)), 2),
    "503_with_retry_after": (rate_limited("1", 503), backed_off(judged(attempts=2)), 2),
    "429_forever_negative_retry_after": (
        rate_limited("-5", always=True),
        backed_off(failed("HTTP 429", "gave up after 2 attempts")),
        2,
    ),
    "401_not_retried": (static(401, b'{"error": "bad key"}'), failed("HTTP 401", "1 attempt"), 2),
    "404_not_retried": (static(404, b"no such route"), failed("HTTP 404", "1 attempt"), 2),
}


@pytest.fixture(scope="module")
def server():
    with judge_server({case: behave for case, (behave, _, _) in HTTP_CASES.items()}) as server:
        yield server


def run_bounded(function, seconds: float):
    """``function()``'s value, or a test failure when it takes longer than ``seconds``."""
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = function()
        except BaseException as error:  # re-raised below
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    start = time.monotonic()
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still running after {seconds} s (a hang)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"], time.monotonic() - start


@pytest.mark.parametrize("case", list(HTTP_CASES))
def test_http_judge_bad_replies(server, case):
    _, check, seconds = HTTP_CASES[case]
    slept: list[float] = []
    judge = OpenAICompatibleJudge(
        server.base_url,
        "judge-model",
        api_key_env=None,
        timeout=TIMEOUT,
        max_attempts=ATTEMPTS,
        backoff=0.05,
        max_retry_after=MAX_RETRY_AFTER,
        sleep=slept.append,  # recorded, not slept: the bound is on the requests
    )
    (result,), _ = run_bounded(lambda: judge.judge([f"case={case}"], ["a response"]), seconds)
    check(result, slept)


def test_http_judge_total_time_is_bounded_for_a_batch(server):
    """Four prompts on a server that never answers, 3 attempts each, 2 threads: every call gives
    up after about timeout x attempts (+ backoff), so the batch takes about 2 x that."""
    judge = OpenAICompatibleJudge(
        server.base_url,
        "m",
        api_key_env=None,
        timeout=0.3,
        max_attempts=3,
        backoff=0.05,
        concurrency=2,
    )
    results, took = run_bounded(lambda: judge.judge(["case=never_answers"] * 4, ["r"] * 4), 6)
    assert all(isinstance(r, JudgeFailure) and r.attempts == 3 for r in results)
    assert took < 2 * (3 * 0.3 + 0.3) + 1.5


# ----------------------------------------------------------------------------- loaders

ROW = {"id": "a", "instruction": "Add 2 and 2.", "output": "2 + 2 = 5.", "judgment": "It is 4."}


def jsonl(*rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def with_raw(field: str, raw_json_string: str) -> bytes:
    """One JSONL row whose ``field`` is the raw JSON string literal ``raw_json_string``."""
    row = json.dumps({**ROW, field: "@@"})
    return (row.replace('"@@"', raw_json_string) + "\n").encode()


GOOD = jsonl(ROW, {**ROW, "id": "b"})
GZ = gzip.compress(GOOD)
UF = json.dumps(
    {
        "instruction": "Name a prime.",
        "completions": [
            {"response": "4", "critique": "4 is not prime.", "overall_score": 2},
            {"response": "7", "critique": "@@", "overall_score": 3},
        ],
    }
).replace('"@@"', '"bad \\udfff text"')


def damaged(detail: str = "") -> tuple[str, ...]:
    return ("damaged|corrupt", detail) if detail else ("damaged|corrupt",)


# name: (file name, bytes, expected: a tuple of regexes the RecordError must hold (the file name
# is always checked), or a number of records for a file that loads)
LOADER_CASES = {
    "gz_truncated": ("d.jsonl.gz", GZ[: len(GZ) // 2], damaged()),
    "gz_truncated_header": ("d.jsonl.gz", GZ[:5], damaged()),
    "gz_not_gzip_at_all": ("d.jsonl.gz", GOOD, damaged()),
    "gz_crc_mismatch": ("d.jsonl.gz", GZ[:-8] + b"\0\0\0\0" + GZ[-4:], damaged()),
    "gz_trailing_garbage": ("d.jsonl.gz", GZ + b"garbage!", damaged()),
    "gz_flipped_byte": ("d.json.gz", GZ[:12] + bytes([GZ[12] ^ 0xFF]) + GZ[13:], damaged()),
    "gz_invalid_utf8_inside": ("d.jsonl.gz", gzip.compress(b'{"id": "\xff"}\n'), ("UTF-8",)),
    "gz_valid": ("d.jsonl.gz", GZ, 2),
    "gz_empty_archive": ("d.jsonl.gz", gzip.compress(b""), 0),
    "invalid_utf8": ("d.jsonl", GOOD[:20] + b"\xff\xfe" + GOOD[20:], ("UTF-8", "byte|line")),
    "latin1_file": (
        "d.jsonl",
        jsonl({**ROW, "output": "café"}).replace(b"caf\\u00e9", b"caf\xe9"),
        ("UTF-8",),
    ),
    "utf16_file": ("d.json", json.dumps([ROW]).encode("utf-16"), ("UTF-8",)),
    "utf8_bom": ("d.jsonl", b"\xef\xbb\xbf" + GOOD, 2),
    "surrogate_instruction": (
        "d.jsonl",
        with_raw("instruction", '"x \\ud800 y"'),
        ("record 0", "'instruction'", "surrogate"),
    ),
    "surrogate_output": (
        "d.jsonl",
        with_raw("output", '"\\udc00"'),
        ("record 0", "'output'", "surrogate"),
    ),
    "surrogate_judgment": (
        "d.jsonl",
        jsonl(ROW) + with_raw("judgment", '"bad \\ud83d"'),
        ("record 1", "line 2", "'judgment'", "surrogate"),
    ),
    "surrogate_input": ("d.jsonl", with_raw("input", '"\\udbff"'), ("'input'", "surrogate")),
    "surrogate_in_json_file": (
        "d.json",
        b"[" + with_raw("output", '"\\ud800"').strip() + b"]",
        ("record 0", "'output'", "surrogate"),
    ),
    "surrogate_nested_critique": (
        "u.jsonl",
        UF.encode() + b"\n",
        ("record", "critique", "surrogate"),
    ),
    "surrogate_pair_is_fine": ("d.jsonl", with_raw("output", '"smile \\ud83d\\ude00"'), 1),
    "instruction_is_number": (
        "d.jsonl",
        jsonl({**ROW, "instruction": 7}),
        ("'instruction'", "string"),
    ),
    "judgment_is_object": (
        "d.jsonl",
        jsonl({**ROW, "judgment": {"a": 1}}),
        ("'judgment'", "string"),
    ),
    "record_is_list": ("d.jsonl", b"[1, 2]\n", ("record 0",)),
    "top_level_null": ("d.json", b"null", ("list",)),
    "binary_garbage": ("d.jsonl", bytes(range(256)) * 4, ("UTF-8|JSON",)),
    "nul_bytes": ("d.jsonl", b"\0\0\0\n", ("JSON",)),
    "whitespace_only_json": ("d.json", b"  \n ", ("JSON",)),
    "truncated_json": ("d.json", json.dumps([ROW]).encode()[:-3], ("JSON",)),
}


@pytest.mark.parametrize("case", list(LOADER_CASES))
def test_loaders_bad_files(tmp_path, case):
    name, data, expected = LOADER_CASES[case]
    path = tmp_path / name
    path.write_bytes(data)
    if isinstance(expected, int):
        records, _ = run_bounded(lambda: load_records(path), 10)
        assert len(records) == expected
        for record in records:  # every text field encodes: a tokenizer can take it
            for text in (record.instruction, record.response, record.judgment or ""):
                text.encode("utf-8")
        return
    with pytest.raises(RecordError) as caught:
        run_bounded(lambda: load_records(path), 10)
    message = str(caught.value)
    assert str(path) in message, message
    for fragment in expected:
        assert re.search(fragment, message, re.IGNORECASE), (fragment, message)
    assert caught.value.__class__ is RecordError


@pytest.mark.parametrize("field", ["instruction", "output", "judgment"])
def test_in_memory_rows_with_a_lone_surrogate(field):
    rows = [ROW, {**ROW, "id": "b", field: "bad \ud800"}]
    with pytest.raises(RecordError, match=rf"record 1, field '{field}'.*surrogate"):
        load_records(rows)


def test_empty_files_load_as_nothing_or_say_so(tmp_path):
    for name in ("e.jsonl", "e.json", "e.jsonl.gz"):
        (tmp_path / name).write_bytes(b"")
        try:
            assert load_records(tmp_path / name) == []
        except RecordError as error:
            assert str(tmp_path / name) in str(error)
