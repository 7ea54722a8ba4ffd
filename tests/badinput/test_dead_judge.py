"""Bad-input corpus, the judge of ``cutkit online``: when every judge call of a round fails (an
endpoint that never answers, HTTP 500, a malformed body, the ``$ERROR$`` placeholder, HTTP 429
forever) the command ends with one line, ``cutkit online: error: ...`` naming the judge's
endpoint, the most common reasons and what to do, exit status 2 and no traceback; the partial
round is kept for resume and the line says so. A judge that never answers is bounded by the
per-round ``--judge_deadline``, not by ``judge_timeout x judge_attempts``."""

from __future__ import annotations

import time

import pytest

from cutkit.cli import main
from tests.helpers import judge_completion, judge_never_answers, judge_reply, judge_server

DEADLINE = 2.0


def status(code: int, body: bytes = b"oops", headers: dict | None = None):
    def behave(handler, n):
        judge_reply(handler, code, body, headers)

    return behave


BEHAVIOURS = {
    "never_answers": judge_never_answers,
    "http_500": status(500, b"internal error"),
    "malformed_body": status(200, b"{not json"),
    "error_placeholder": status(200, judge_completion("$ERROR$")),
    "rate_limited_forever": status(429, b"slow down", {"Retry-After": "0.2"}),
}
# case -> a fragment of the reason the error line must give
REASONS = {
    "never_answers": "deadline",
    "http_500": "HTTP 500",
    "malformed_body": "not JSON",
    "error_placeholder": "$ERROR$",
    "rate_limited_forever": "HTTP 429",
}


@pytest.fixture(scope="module")
def server():
    with judge_server(BEHAVIOURS) as server:
        yield server


@pytest.mark.parametrize("case", list(BEHAVIOURS))
def test_a_failing_judge_is_one_line_with_exit_2(
    case, server, shared_tiny_checkpoint, tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("CUTKIT_DEBUG", raising=False)
    out = tmp_path / "online"
    argv = [
        "online", "--model", str(shared_tiny_checkpoint), "--rounds", "1", "--heldout", "1",
        "--instructions_per_round", "2", "--max_new_tokens", "6", "--truncated", "keep",
        "--output", str(out), "--device", "cpu", "--show_progress", "false",
        "--judge", f"openai:{server.url(case)},judge-model",
    ]  # fmt: skip
    if case == "never_answers":  # only the deadline bounds it
        argv += [
            "--judge_timeout",
            "60",
            "--judge_attempts",
            "5",
            "--judge_deadline",
            str(DEADLINE),
        ]
    else:
        argv += ["--judge_attempts", "2"]
    start = time.monotonic()
    try:
        code = main(argv)
    except RuntimeError as error:  # before: a traceback through cutkit's own code
        pytest.fail(f"raised {error!r} instead of the one-line error")
    took = time.monotonic() - start
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("cutkit online: error:")]
    assert len(lines) == 1, err
    line = lines[0]
    for fragment in (
        "round 1: all",
        "judge calls failed",
        server.url(case),
        REASONS[case],
        "round-01.partial",
        "run the same command again",
    ):
        assert fragment in line, (fragment, line)
    assert code == 2
    assert (out / "round-01.partial" / "tasks.jsonl").exists()
    assert not (out / "round-01").exists()
    # 60 s x 5 attempts without the deadline; model loading and two tiny rounds take seconds
    assert took < DEADLINE + 30, took


def test_the_deadline_is_an_option_that_must_be_positive(capsys):
    assert main(["online", "--judge_deadline", "0"]) == 2
    assert "judge_deadline" in capsys.readouterr().err


def test_the_judge_deadline_bounds_a_batch(server):
    """Six prompts, two threads, 30 s per request and 5 attempts: the 1 s deadline ends it."""
    from cutkit.online.judges.base import JudgeFailure
    from cutkit.online.judges.http import OpenAICompatibleJudge

    judge = OpenAICompatibleJudge(
        server.url("never_answers"), "m", api_key_env=None, timeout=30, max_attempts=5,
        concurrency=2, deadline=1.0,
    )  # fmt: skip
    start = time.monotonic()
    results = judge.judge(["Say hi."] * 6, ["hi"] * 6)
    assert time.monotonic() - start < 1.0 + 2.0
    assert all(isinstance(r, JudgeFailure) and "deadline of 1 s" in r.reason for r in results)
