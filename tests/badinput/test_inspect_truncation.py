"""Bad-input corpus, silent truncation: ``cutkit inspect`` on a record whose response is longer
than the scoring budget (half of ``max_length``, 1,024 tokens by default) says how many records
and tokens were not scored, in its printout and in the HTML report; ``train``'s build report
counts the cut tokens too."""

from __future__ import annotations

import json
import re

from cutkit.cli import main

LONG = "The answer is " + "very " * 1500 + "long."


def test_inspect_says_what_it_truncated(shared_tiny_checkpoint, tmp_path, capsys):
    data = tmp_path / "long.jsonl"
    rows = [
        {"id": "long", "instruction": "Answer.", "output": LONG, "judgment": "Far too long."},
        {"id": "short", "instruction": "2 + 2?", "output": "5.", "judgment": "Wrong: 4."},
    ]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = tmp_path / "report.html"
    argv = ["inspect", "--data", str(data), "--model", str(shared_tiny_checkpoint)]
    assert main([*argv, "--output", str(report)]) == 0
    out = capsys.readouterr().out
    found = re.search(r"1 of 2 records had responses longer than 1024 tokens.*?(\d+) tokens", out)
    assert found and int(found.group(1)) > 400, out
    assert "--max_length" in out
    page = report.read_text(encoding="utf-8")
    assert "1 of 2 records had responses longer than 1024 tokens" in page


def test_nothing_is_said_when_nothing_was_cut(shared_tiny_checkpoint, tmp_path, capsys):
    from cutkit.data.bundled import bundled_data_path

    argv = ["inspect", "--data", str(bundled_data_path("starter/train.jsonl")), "--limit", "2"]
    argv += ["--model", str(shared_tiny_checkpoint), "--output", str(tmp_path / "r.html")]
    assert main(argv) == 0
    assert "longer than" not in capsys.readouterr().out
    assert "ck-tv-note" not in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_the_build_report_counts_the_cut_tokens(tokenizer):
    from cutkit.data.records import JudgmentRecord
    from cutkit.train.batching import build_examples

    record = JudgmentRecord("long", "Answer.", LONG, "Far too long.")
    _, report = build_examples([record], tokenizer, max_length=256)
    n_tokens = len(tokenizer(LONG)["input_ids"]) + 1  # with EOS
    assert report.n_response_truncated == 1 and report.max_response_tokens == 128
    assert report.n_response_tokens_cut == n_tokens - 128
    assert f"({n_tokens - 128} tokens past the 128-token response budget cut)" in str(report)
