"""Judges: RuleJudge's wording, quotes and spans; ModelJudge's prompt and plumbing on the tiny
model; OpenAICompatibleJudge against a stub chat-completions server on 127.0.0.1 (success, retry
after 500, 429 + Retry-After, timeout, one deadline per request against a silent or trickling
server, the reply size cap, malformed replies, permanent failure, concurrency); the judge
options of ``cutkit online`` and resuming a run stored without them."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict

import pytest

from cutkit.data.loading import load_records
from cutkit.data.records import JudgmentRecord, junk_reason
from cutkit.online.checkers import check
from cutkit.online.config import PROGRESS_FILE, OnlineConfig
from cutkit.online.generator import generate_tasks
from cutkit.online.judges.base import JUDGE_PROMPT, JudgeFailure, Judgment, judgment_from_text
from cutkit.online.judges.factory import judge_options, make_judge
from cutkit.online.judges.http import JudgeCallError, OpenAICompatibleJudge, parse_retry_after
from cutkit.online.judges.model import ModelJudge
from cutkit.online.judges.rule import RuleJudge
from cutkit.online.resume import check_resumable
from cutkit.online.rounds import judged_records
from cutkit.online.rundir import write_jsonl
from cutkit.online.tasks import Constraint, Task
from tests.helpers import judge_completion, judge_never_answers, judge_reply, judge_server

# ----------------------------------------------------------------------------- RuleJudge


def task(*constraints: Constraint, instruction: str = "Do the thing.") -> Task:
    return Task("t", instruction, list(constraints), constraints[0].kind)


def test_rule_judge_says_perfect_when_every_constraint_holds():
    judge = RuleJudge(seed=0)
    t = task(Constraint("lowercase"), Constraint("max_words", {"n": 5}))
    texts = {judge.judge_one(t, f"all lowercase here {k}").text for k in range(40)}
    assert all(text.startswith("Perfect") for text in texts)
    assert "Perfect." in texts and len(texts) > 1  # sometimes with a commendation
    result = judge.judge([t], ["all lowercase here"])[0]
    assert result.is_positive and result.error_spans == []


def test_rule_judge_names_the_constraint_quotes_and_spans_the_offending_text():
    judge = RuleJudge(seed=1)
    t = task(Constraint("lowercase"), Constraint("no_commas"))
    response = "Bees make honey, and Wax."
    result = judge.judge([t], [response])[0]
    assert isinstance(result, Judgment) and not result.is_positive
    assert '"Bees"' in result.text and '"Wax"' in result.text
    assert "comma" in result.text and "honey, and" in result.text
    assert [response[s:e] for s, e in result.error_spans] == ["Bees", ",", "Wax"]
    assert result.meta["violations"] == ["lowercase", "no_commas"]


@pytest.mark.parametrize(
    ("constraint", "response", "expected"),
    [
        (Constraint("max_words", {"n": 3}), "one two three four five", ["5 words", "3"]),
        (Constraint("include_word", {"word": "lava"}), "Hot rock.", ['"lava"']),
        (Constraint("exclude_word", {"word": "lava"}), "Lava flows.", ['"lava"']),
        (Constraint("end_with", {"phrase": "The end."}), "Bye now.", ['"The end."', '"Bye now."']),
        (Constraint("numbered_list", {"n": 3}), "1. a\n2. b", ["2", "3"]),
        (Constraint("json_keys", {"keys": ["a"]}), '{"b": 1}', ['"a"', '"b"']),
        (Constraint("arithmetic", {"expression": "2 + 2", "answer": 4}), "5", ["5", "2 + 2", "4"]),
    ],
)
def test_each_kind_has_a_precise_judgment(constraint, response, expected):
    result = RuleJudge(seed=0).judge([task(constraint)], [response])[0]
    assert not result.is_positive
    for fragment in expected:
        assert fragment in result.text, (fragment, result.text)


SEEDS = range(16)  # enough seeds to draw every phrasing of a violation


def judgments(t: Task, response: str) -> list[Judgment]:
    results = [RuleJudge(seed=seed).judge_one(t, response) for seed in SEEDS]
    assert len({r.text for r in results}) > 1  # the wording still varies
    spans = [span for v in check(t, response) for span in v.spans]
    for result in results:
        assert not result.is_positive and result.error_spans == spans  # spans unchanged
        assert "..." not in result.text and "more)" not in result.text  # nothing elided
    return results


def test_rule_judge_quotes_the_whole_excess_of_a_too_long_answer():
    words = [f"honey{k:02d}" for k in range(1, 61)]
    response = " ".join(words[:30]) + "\n\n" + " ".join(words[30:])  # 60 words, max 10
    for result in judgments(task(Constraint("max_words", {"n": 10})), response):
        assert '"' + " ".join(words[10:]) + '"' in result.text, result.text  # words 11..60


def test_rule_judge_quotes_every_offending_word_and_item_in_full():
    capitals = [f"Name{k}" for k in range(12)]
    for result in judgments(task(Constraint("lowercase")), "we met " + " and ".join(capitals)):
        assert all(f'"{word}"' in result.text for word in capitals), result.text
    items = [f"{k}. A rather long list item about bees number {k}" for k in range(1, 7)]
    for result in judgments(task(Constraint("numbered_list", {"n": 2})), "\n".join(items)):
        assert '"' + " ".join(items[2:]) + '"' in result.text, result.text  # items 3..6
    commas = "Bees fly far, then rest. Hives hum loud, warm, and busy. The end, friends"
    for result in judgments(task(Constraint("no_commas")), commas):
        for context in ("far, then", "loud, warm, and", "end, friends"):
            assert f'"{context}"' in result.text, result.text
    lava = "Lava flows. The lava glows. LAVA cools."
    for result in judgments(task(Constraint("exclude_word", {"word": "lava"})), lava):
        if "writes" in result.text:
            assert '"Lava", "lava" and "LAVA"' in result.text


def test_rule_judge_quotes_endings_json_text_and_extras_in_full():
    ending = "and that is the very long final sentence of this short note about the ocean"
    t = task(Constraint("end_with", {"phrase": "The end."}))
    for result in judgments(t, "The ocean is wide. " + ending):
        assert f'"{ending}"' in result.text
    before = "Here is the JSON object that you asked for, describing honeybees in detail:"
    after = "I hope this JSON object about honeybees is exactly what you were looking for."
    t = task(Constraint("json_keys", {"keys": ["name"]}))
    for result in judgments(t, f'{before}\n{{"name": "Bees"}}\n{after}'):
        assert f'"{before}"' in result.text and f'"{after}"' in result.text
    extra = "because twelve plus thirty equals forty-two, as anyone can check by hand"
    t = task(Constraint("arithmetic", {"expression": "12 + 30", "answer": 42}))
    for result in judgments(t, f"42 {extra}"):
        assert f'"{extra}"' in result.text


def test_rule_judgments_are_deterministic_varied_and_never_junk():
    tasks = generate_tasks(150, seed=2)
    responses = ["Hello, World. " * 8, "1. A\n2. B", '{"x": 1}', "7", "plain words"]
    texts_by_seed = defaultdict(set)
    for seed in (0, 1):
        judge = RuleJudge(seed=seed)
        for t in tasks:
            for response in responses:
                result = judge.judge_one(t, response)
                assert result == judge.judge_one(t, response)  # deterministic
                record = JudgmentRecord("x", t.instruction, response, result.text)
                assert record.is_positive == result.is_positive  # "Perfect" routing agrees
                assert junk_reason(record) is None, result.text
                texts_by_seed[seed].add(result.text)
    assert texts_by_seed[0] != texts_by_seed[1]  # the seed varies the wording
    openers = Counter(text.split(":")[0] for text in texts_by_seed[0])
    assert len(openers) > 30


def test_rule_judge_rejects_an_empty_response_even_if_no_constraint_breaks():
    t = task(Constraint("exclude_word", {"word": "lava"}))
    result = RuleJudge(seed=0).judge([t], ["  "])[0]
    assert not result.is_positive and "empty" in result.text and result.error_spans == []


def test_rule_judge_needs_the_constraints():
    t = task(Constraint("lowercase"), instruction="Be quiet.")
    assert RuleJudge([t]).judge(["Be quiet."], ["LOUD"])[0].is_positive is False
    with pytest.raises(ValueError, match="no constraints for the instruction"):
        RuleJudge().judge(["Unknown task."], ["x"])
    with pytest.raises(ValueError, match="one response per instruction"):
        RuleJudge().judge([t], [])


# ----------------------------------------------------------------------------- ModelJudge

EXPECTED_PROMPT = (
    "Below is an instruction and a response to it. Judge the response.\n"
    'If the response is perfect, reply "Perfect" and nothing else. Otherwise, state its mistakes '
    "precisely: say what is wrong, quote the wrong part of the response, and do not rewrite the "
    "response.\n\n### Instruction:\n{instruction}\n\n### Response:\n{response}"
)


def test_judge_prompt_text():
    assert JUDGE_PROMPT == EXPECTED_PROMPT


def test_model_judge_prompts_and_batched_greedy_judgments(tiny, tokenizer):
    judge = ModelJudge(tiny, tokenizer, batch_size=2, max_new_tokens=5)
    instructions = ["Name a prime number.", task(Constraint("lowercase"), instruction="Shout.")]
    responses = ["Nine.", "HELLO"]
    prompts = judge.prompts(instructions, responses)
    user_turn = EXPECTED_PROMPT.format(instruction="Shout.", response="HELLO")
    assert prompts[1] == tokenizer.apply_chat_template(
        [{"role": "user", "content": user_turn}], add_generation_prompt=True, tokenize=False
    )
    assert "### Instruction:\nName a prime number.\n\n### Response:\nNine." in prompts[0]
    results = judge.judge(instructions * 2, responses * 2)
    assert len(results) == 4 and all(isinstance(r, Judgment | JudgeFailure) for r in results)
    one_by_one = ModelJudge(tiny, tokenizer, batch_size=1, max_new_tokens=5)
    assert one_by_one.judge(instructions, responses) == results[:2]  # padding changes nothing
    texts = [r.text for r in results if isinstance(r, Judgment)]
    assert all(text == text.strip() and text for text in texts)


def test_judgment_from_text_routes_and_refuses_empty_or_placeholder():
    assert judgment_from_text(" Perfect! ").is_positive
    negative = judgment_from_text("Wrong: 2 + 2 is 4.", attempts=2)
    assert (negative.is_positive, negative.attempts) == (False, 2)
    assert isinstance(judgment_from_text("   "), JudgeFailure)
    assert "placeholder" in judgment_from_text("$ERROR$").reason


def test_model_judge_without_tokenizer_is_refused(tiny):
    with pytest.raises(ValueError, match="tokenizer"):
        ModelJudge(tiny)


# ----------------------------------------------------------------------------- API judge


# scenario -> reply to the n-th request (1-based): (status, headers, body, delay seconds)
SCENARIOS = {
    "ok": lambda n: (200, {}, judge_completion("Perfect."), 0),
    "flaky": lambda n: (
        (500, {}, b"boom", 0) if n == 1 else (200, {}, judge_completion("Wrong."), 0)
    ),
    "limited": lambda n: (
        (429, {"Retry-After": "1.5"}, b"slow down", 0)
        if n == 1
        else (200, {}, judge_completion("Perfect."), 0)
    ),
    "slow": lambda n: (200, {}, judge_completion("Late."), 0.6 if n == 1 else 0),
    "always_slow": lambda n: (200, {}, judge_completion("Late."), 0.6),
    "garbage": lambda n: (200, {}, b"<html>not json", 0),
    "shapeless": lambda n: (200, {}, b'{"choices": []}', 0),
    "half_garbage": lambda n: (
        (200, {}, b"{oops", 0) if n == 1 else (200, {}, judge_completion("Ok."), 0)
    ),
    "down": lambda n: (500, {}, b"internal error", 0),
    "forbidden": lambda n: (401, {}, b'{"error": "bad key"}', 0),
    "busy": lambda n: (200, {}, judge_completion("Perfect."), 0.15),
    "huge": lambda n: (200, {}, judge_completion("x" * 2_000_000), 0),
    "odd_retry_after": lambda n: (
        (429, {"Retry-After": "nan"}, b"slow down", 0)
        if n == 1
        else (200, {}, judge_completion("Perfect."), 0)
    ),
}


def scripted(scenario):
    """The stub server's behaviour for ``SCENARIOS[scenario]``."""

    def behave(handler, n):
        status, headers, payload, delay = SCENARIOS[scenario](n)
        time.sleep(delay)
        judge_reply(handler, status, payload, headers)

    return behave


def trickle(handler, n):
    """A whole reply, one byte every 0.2 s."""
    payload = judge_completion("Perfect.")
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    for byte in payload:
        if handler.server.stop.wait(0.2):
            return
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()


def huge_unannounced(handler, n):
    """2 MB with no Content-Length (the end is the closed connection)."""
    handler.send_response(200)
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(judge_completion("x" * 2_000_000))


BEHAVIOURS = {
    **{scenario: scripted(scenario) for scenario in SCENARIOS},
    "silent": judge_never_answers,
    "trickle": trickle,
    "huge_unannounced": huge_unannounced,
}


@pytest.fixture
def stub():
    with judge_server(BEHAVIOURS) as server:
        yield server


@pytest.fixture
def api_judge(stub, monkeypatch):
    """A judge on the stub with fast retries; its sleeps are recorded, not slept."""
    monkeypatch.setenv("STUB_API_KEY", "sk-test-123")
    slept: list[float] = []

    def make(**options):
        settings = dict(
            api_key_env="STUB_API_KEY",
            timeout=0.3,
            max_attempts=3,
            backoff=0.01,
            concurrency=2,
            sleep=slept.append,
        )
        return OpenAICompatibleJudge(stub.base_url, "judge-model", **{**settings, **options})

    make.slept = slept
    return make


def ask(judge, *scenarios: str) -> list:
    return judge.judge([f"case={s}" for s in scenarios], ["a response"] * len(scenarios))


def test_api_success_sends_the_prompt_model_and_key(api_judge, stub):
    (result,) = ask(api_judge(), "ok")
    assert isinstance(result, Judgment) and result.is_positive and result.attempts == 1
    (request,) = stub.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test-123"
    assert request["body"]["model"] == "judge-model" and request["body"]["temperature"] == 0
    assert request["body"]["messages"] == [
        {
            "role": "user",
            "content": EXPECTED_PROMPT.format(instruction="case=ok", response="a response"),
        }
    ]


def test_api_retries_a_500_with_backoff(api_judge, stub):
    judge = api_judge()
    (result,) = ask(judge, "flaky")
    assert isinstance(result, Judgment) and result.text == "Wrong." and result.attempts == 2
    assert stub.counts["flaky"] == 2
    assert len(api_judge.slept) == 1 and 0.01 <= api_judge.slept[0] <= 0.0125


def test_api_waits_out_retry_after_on_429(api_judge, stub):
    (result,) = ask(api_judge(), "limited")
    assert isinstance(result, Judgment) and result.attempts == 2
    assert api_judge.slept and 1.4 <= api_judge.slept[0] <= 1.5  # the server's Retry-After


def test_api_times_out_a_slow_reply_then_retries(api_judge, stub):
    (result,) = ask(api_judge(), "slow")
    assert isinstance(result, Judgment) and result.attempts == 2
    (failure,) = ask(api_judge(max_attempts=2), "always_slow")
    assert isinstance(failure, JudgeFailure) and "timed out after 0.3 s" in failure.reason
    assert failure.attempts == 2


def judge_within(judge, seconds: float, *scenarios: str) -> tuple[list, float]:
    """``ask(judge, *scenarios)`` and the time it took, failing the test (not hanging it) when
    that is more than ``seconds``."""
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(results=ask(judge, *scenarios)))
    thread.daemon = True
    start = time.monotonic()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the judge still runs after {seconds} s"
    return outcome["results"], time.monotonic() - start


@pytest.mark.parametrize("scenario", ["silent", "trickle"])
def test_api_one_deadline_per_request_covers_the_whole_reply(api_judge, stub, scenario):
    """A server that never answers, or trickles its reply a byte every 0.2 s (each read is quick,
    the whole reply would take seconds): each request gives up at the 0.5 s deadline, so the
    pair fails after about timeout x attempts (+ backoff, recorded here, not slept)."""
    judge = api_judge(timeout=0.5, max_attempts=2)
    (failure,), took = judge_within(judge, 3.0, scenario)
    assert isinstance(failure, JudgeFailure) and failure.attempts == 2
    assert "timed out after 0.5 s" in failure.reason and "deadline" in failure.reason
    assert failure.reason.endswith("(gave up after 2 attempts)")
    assert 0.9 <= took <= 2 * 0.5 + 0.8
    assert stub.counts[scenario] == 2 and len(api_judge.slept) == 1


def test_api_deadline_bounds_a_batch(api_judge, stub):
    judge = api_judge(timeout=0.3, max_attempts=2, concurrency=4)
    results, took = judge_within(judge, 3.0, *["silent"] * 4)
    assert all(isinstance(r, JudgeFailure) and "timed out" in r.reason for r in results)
    assert took <= 2 * 0.3 + 0.8


@pytest.mark.parametrize("scenario", ["huge", "huge_unannounced"])
def test_api_reply_size_cap(api_judge, stub, scenario):
    (failure,), _ = judge_within(api_judge(), 5.0, scenario)
    assert isinstance(failure, JudgeFailure) and failure.attempts == 1  # not retried
    assert "reply too large" in failure.reason and "1,000,000 bytes" in failure.reason
    if scenario == "huge":
        assert f"{len(judge_completion('x' * 2_000_000)):,} bytes" in failure.reason
    (result,) = ask(api_judge(max_reply_bytes=3_000_000), "huge")
    assert isinstance(result, Judgment) and len(result.text) == 2_000_000
    with pytest.raises(ValueError, match="max_reply_bytes"):
        api_judge(max_reply_bytes=0)
    with pytest.raises(ValueError, match="timeout"):
        api_judge(timeout=math.inf)


def test_api_unreadable_retry_after_falls_back_to_backoff(api_judge, stub):
    (result,) = ask(api_judge(), "odd_retry_after")
    assert isinstance(result, Judgment) and result.attempts == 2
    assert len(api_judge.slept) == 1 and 0.01 <= api_judge.slept[0] <= 0.0125  # the backoff


def test_api_error_placeholders_are_failures():
    for text in ("$ERROR$", "$error$", " $Error$: timeout ", '"$ERROR$"', "`$error$`."):
        result = judgment_from_text(text)
        assert isinstance(result, JudgeFailure) and "placeholder" in result.reason, text
    for text in ("Error: 2 + 2 is 4, not 5.", "The $ERROR$ marker should not be in the answer."):
        assert isinstance(judgment_from_text(text), Judgment), text
    with pytest.raises(JudgeCallError, match='replied with an error: "model overloaded"'):
        OpenAICompatibleJudge.parse_reply(b'{"error": {"message": "model overloaded"}}')


def test_api_malformed_replies(api_judge, stub):
    garbage, shapeless, recovered = ask(api_judge(), "garbage", "shapeless", "half_garbage")
    assert isinstance(garbage, JudgeFailure) and garbage.attempts == 3
    assert "malformed reply (not JSON)" in garbage.reason and "<html>not json" in garbage.reason
    assert isinstance(shapeless, JudgeFailure)
    assert "no choices[0].message.content" in shapeless.reason
    assert isinstance(recovered, Judgment) and recovered.attempts == 2


def test_api_permanent_failure_is_excluded_and_reported(api_judge, stub, tmp_path):
    results = ask(api_judge(), "ok", "down", "forbidden")
    ok, down, forbidden = results
    assert isinstance(ok, Judgment)
    assert isinstance(down, JudgeFailure) and down.attempts == 3 and stub.counts["down"] == 3
    assert "HTTP 500" in down.reason and "gave up after 3 attempts" in down.reason
    assert forbidden.attempts == 1 and "HTTP 401" in forbidden.reason  # not retried
    tasks = [Task(f"t{i}", f"scenario={s}", [], "x") for i, s in enumerate(["ok", "down", "bad"])]
    records, excluded = judged_records(1, tasks, ["a response"] * 3, results, "openai")
    assert [r.instruction for r in records] == ["scenario=ok"]
    assert [row["instruction"] for row in excluded] == ["scenario=down", "scenario=bad"]
    assert "HTTP 500" in excluded[0]["reason"] and excluded[0]["attempts"] == 3
    write_jsonl(tmp_path / "records.jsonl", [r.to_dict() for r in records])
    assert not any(
        "$ERROR$" in (r.judgment or "") for r in load_records(tmp_path / "records.jsonl")
    )


def test_api_concurrency_limit(api_judge, stub):
    results = ask(api_judge(concurrency=3), *["busy"] * 9)
    assert all(isinstance(r, Judgment) for r in results)
    assert stub.max_in_flight == 3


def test_api_judge_settings_are_checked(monkeypatch):
    monkeypatch.delenv("MISSING_KEY_VAR", raising=False)
    with pytest.raises(ValueError, match="MISSING_KEY_VAR is not set"):
        OpenAICompatibleJudge("http://127.0.0.1:1/v1", "m", api_key_env="MISSING_KEY_VAR")
    with pytest.raises(ValueError, match="http:// or https://"):
        OpenAICompatibleJudge("127.0.0.1:1/v1", "m", api_key_env=None)


def test_unreachable_endpoint_is_a_failure_not_a_crash():
    judge = OpenAICompatibleJudge(
        "http://127.0.0.1:9/v1", "m", api_key_env=None, max_attempts=2, sleep=lambda s: None
    )
    (result,) = judge.judge(["x"], ["y"])
    assert isinstance(result, JudgeFailure) and "cannot reach" in result.reason


def test_retry_after_parsing():
    assert parse_retry_after("2") == 2.0 and parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.0
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT") > 1e9  # capped by the judge
    for odd in ("nan", "NaN", "inf", "-inf", "Infinity", "-5", "-0.5", "1e3", "9" * 400, "", " "):
        assert parse_retry_after(odd) is None, odd  # the judge's backoff applies


def test_api_judge_caps_and_ignores_odd_retry_after(monkeypatch):
    """Whatever JudgeCallError.retry_after holds, the wait is finite, >= 0, at most
    max_retry_after; a non-finite one gives the exponential backoff."""
    waits = {}
    for after in (math.nan, math.inf, -math.inf, -5.0, 1e12, 2.0):
        slept: list[float] = []
        judge = OpenAICompatibleJudge(
            "http://127.0.0.1:9/v1",
            "m",
            api_key_env=None,
            max_attempts=2,
            backoff=0.5,
            max_retry_after=10.0,
            sleep=slept.append,
        )

        def call(prompt, after=after):
            if call.n == 0:
                call.n += 1
                raise JudgeCallError("HTTP 429", retryable=True, retry_after=after)
            return "Perfect."

        call.n = 0
        monkeypatch.setattr(judge, "call", call)
        assert isinstance(judge.judge_prompt("p"), Judgment)
        waits[after] = slept
    for after, slept in waits.items():
        assert all(math.isfinite(s) and 0 <= s <= 10.0 for s in slept), (after, slept)
    for after in (math.nan, math.inf, -math.inf):
        assert len(waits[after]) == 1 and 0.5 <= waits[after][0] <= 0.625  # the backoff
    assert waits[-5.0] == [] and waits[1e12] == [pytest.approx(10.0, abs=0.1)]
    assert waits[2.0] == [pytest.approx(2.0, abs=0.1)]


# ----------------------------------------------------------------------------- specs


def test_judge_options_give_each_judge_the_settings_it_takes():
    settings = dict(batch_size=4, max_new_tokens=99, show_progress=False)
    assert judge_options("rule", **settings) == {"content_check": True}
    assert judge_options("rule", **settings, content_check=False) == {"content_check": False}
    assert judge_options("model:some/path", **settings) == settings
    assert judge_options("openai:http://h/v1,m", **settings) == dict(
        max_tokens=99, show_progress=False
    )
    with pytest.raises(ValueError, match="unknown judge spec"):
        judge_options("gpt-4", **settings)
    calls = dict(timeout=2.5, attempts=3, concurrency=7, max_reply_bytes=1000)
    assert judge_options("openai:http://h/v1,m", **settings, **calls) == dict(
        max_tokens=99,
        show_progress=False,
        timeout=2.5,
        max_attempts=3,
        concurrency=7,
        max_reply_bytes=1000,
    )
    assert judge_options("rule", **settings, **calls) == {"content_check": True}
    judge = make_judge(
        "openai:http://h/v1,m", **judge_options("openai:http://h/v1,m", **settings, **calls)
    )
    assert (judge.timeout, judge.max_attempts, judge.concurrency) == (2.5, 3, 7)
    assert judge.max_reply_bytes == 1000
    default = make_judge("openai:http://h/v1,m")
    assert (default.timeout, default.max_attempts, default.concurrency) == (60.0, 5, 4)
    assert default.max_reply_bytes == 1_000_000


def test_online_config_judge_options_are_checked_and_may_change_on_resume(tmp_path):
    config = OnlineConfig(output_dir=str(tmp_path))
    assert (config.judge_timeout, config.judge_attempts, config.judge_concurrency) == (60.0, 5, 4)
    assert config.judge_max_reply_bytes == 1_000_000
    for bad in (
        dict(judge_timeout=0),
        dict(judge_timeout=-1.0),
        dict(judge_timeout=math.nan),
        dict(judge_timeout=math.inf),
        dict(judge_attempts=0),
        dict(judge_concurrency=0),
        dict(judge_max_reply_bytes=0),
    ):
        (name,) = bad
        with pytest.raises(ValueError, match=name):
            OnlineConfig(**bad)
    # a run stored by a version without the judge options resumes, with any values of them
    stored = json.loads(json.dumps(asdict(config), default=str))
    for name in ("judge_timeout", "judge_attempts", "judge_concurrency", "judge_max_reply_bytes"):
        del stored[name]
    (tmp_path / PROGRESS_FILE).write_text(json.dumps({"config": stored}))
    check_resumable(tmp_path, config)
    check_resumable(tmp_path, OnlineConfig(output_dir=str(tmp_path), judge_timeout=5.0))
    # a run stored with them may change them, not the rest
    stored = json.loads(json.dumps(asdict(config), default=str))
    (tmp_path / PROGRESS_FILE).write_text(json.dumps({"config": stored}))
    check_resumable(tmp_path, OnlineConfig(output_dir=str(tmp_path), judge_attempts=2))
    with pytest.raises(ValueError, match="judge_max_new_tokens"):
        check_resumable(tmp_path, OnlineConfig(output_dir=str(tmp_path), judge_max_new_tokens=9))


def test_make_judge_specs(monkeypatch, tiny_checkpoint):
    monkeypatch.setenv("MY_KEY", "k")
    assert isinstance(make_judge("rule", seed=3), RuleJudge)
    judge = make_judge("openai:http://127.0.0.1:8000/v1,gpt-judge,MY_KEY")
    assert isinstance(judge, OpenAICompatibleJudge) and judge.model == "gpt-judge"
    assert judge.url == "http://127.0.0.1:8000/v1/chat/completions"
    assert make_judge("openai:http://h/v1,m").api_key_env is None
    judge = make_judge(f"model:{tiny_checkpoint}", device="cpu", max_new_tokens=3)
    assert isinstance(judge, ModelJudge) and judge.name == f"model:{tiny_checkpoint}"
    assert len(judge.judge(["Say hi."], ["Hi."])) == 1
    for bad in ("gpt4", "rule:x", "model:", "openai:http://h/v1", "openai:,m"):
        with pytest.raises(ValueError, match=r"unknown judge spec.*rule, model:PATH"):
            make_judge(bad)


def test_cutkit_online_help_lists_the_judge_options(capsys):
    from cutkit.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["online", "--help"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    for option in ("timeout", "attempts", "concurrency", "max-reply-bytes"):
        assert f"--judge-{option}" in printed, option
    assert "one deadline for" in printed


def test_cutkit_online_refuses_bad_judge_options(capsys):
    from cutkit.cli import main

    for option, value in (("timeout", "nan"), ("timeout", "0"), ("attempts", "0")):
        try:
            code = main(["online", f"--judge-{option}", value, "--rounds", "0"])
        except SystemExit as exit_info:  # argparse's way out
            code = exit_info.code
        assert code not in (0, None)
        assert f"judge_{option} must be" in capsys.readouterr().err
