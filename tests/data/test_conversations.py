"""Conversational records: the ``messages`` format, multi-turn rendering through the chat
template with identical response tokens in both contexts, clear errors, and the round trips
through saving, TokenView, the inspector widget and evaluate."""

from __future__ import annotations

import pytest

from cutkit.data.loading import load_records
from cutkit.data.records import JudgmentRecord, RecordError
from cutkit.train.batching import build_examples
from tests.helpers import write_jsonl_rows

TURNS = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Name a prime."},
    {"role": "assistant", "content": "7."},
    {"role": "user", "content": "And an even one?"},
    {"role": "assistant", "content": "9."},
]
ROWS = [
    {"id": "c1", "messages": TURNS, "judgment": "9 is odd; the only even prime is 2.",
     "error_spans": ["9"], "refinement": "2."},
    {"id": "c2", "messages": [{"role": "user", "content": "Say hi."},
                              {"role": "assistant", "content": "Hi!", "judgment": None}]},
]  # fmt: skip


@pytest.fixture
def records(tmp_path) -> list[JudgmentRecord]:
    return load_records(write_jsonl_rows(tmp_path / "chat.jsonl", ROWS))


def test_the_last_turn_is_the_response_and_earlier_turns_the_history(records):
    multi, single = records
    assert (multi.instruction, multi.response) == ("And an even one?", "9.")
    assert multi.judgment.startswith("9 is odd") and multi.is_negative
    assert multi.history == TURNS[:3] and multi.error_texts() == ["9"]
    assert multi.refinement == "2."
    assert single.history == [] and single.is_positive and single.judgment is None


def test_both_contexts_hold_every_turn_and_end_with_the_same_response(records, tokenizer):
    examples, _ = build_examples(records, tokenizer, "chat")
    multi = examples[0]
    plain = tokenizer.decode(multi["plain_prompt_ids"])
    judged = tokenizer.decode(multi["judged_prompt_ids"])
    for turn in TURNS[:4]:
        assert turn["content"] in plain and turn["content"] in judged
    assert "only even prime" in judged and "only even prime" not in plain
    assert plain.index("Name a prime.") < plain.index("7.") < plain.index("And an even one?")
    assert tokenizer.decode(multi["response_ids"], skip_special_tokens=True) == "9."


def test_a_single_turn_template_refuses_a_conversation_naming_the_record(records, tokenizer):
    with pytest.raises(RecordError, match=r"record 0, field 'history'.*template='chat'"):
        build_examples(records, tokenizer, "alpaca")
    build_examples(records[1:], tokenizer, "alpaca")  # a single-turn record is fine


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"messages": [{"role": "user", "content": "Q?"}], "judgment": None},
         r"field 'messages'.*user turn and the assistant's response"),
        ({"messages": [{"role": "assistant", "content": "A."}, {"role": "user", "content": "Q?"}],
          "judgment": None}, r"field 'messages'"),
        ({"messages": [{"role": "user", "content": "Q?"}, {"role": "bot", "content": "A."}],
          "judgment": None}, r"field 'messages\[1\]\.role'.*'bot'"),
        ({"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": ""}],
          "judgment": None}, r"field 'messages\[1\]\.content': is empty"),
        ({"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]},
         r"field 'judgment': missing required field"),
        ({"messages": "hi", "judgment": None}, r"field 'messages': expected a list"),
    ],
)  # fmt: skip
def test_malformed_conversations_name_the_file_record_and_field(row, message, tmp_path):
    path = write_jsonl_rows(tmp_path / "bad.jsonl", [row])
    with pytest.raises(RecordError, match=rf"bad\.jsonl, record 0 \(line 1\), {message}"):
        load_records(path)


def test_saved_records_keep_their_history(records, tmp_path):
    again = load_records(write_jsonl_rows(tmp_path / "saved.jsonl", [r.to_dict() for r in records]))
    assert [r.history for r in again] == [r.history for r in records]
    assert "history" not in records[1].to_dict(), "single-turn records are written as before"
    with pytest.raises(RecordError, match=r"field 'history'.*assistant turn"):
        JudgmentRecord("x", "Q?", "A.", history=[{"role": "user", "content": "hi"}])


def test_token_view_widget_and_evaluate_see_the_conversation(records, tokenizer, tiny):
    import cutkit
    from cutkit.eval.metrics import evaluate, records_response_logprobs

    scores = cutkit.score_tokens(tiny, tokenizer, records, template="chat")
    html = cutkit.TokenView(scores, records).to_html()
    assert "Earlier turn (user)" in html and "Name a prime." in html
    inspector = cutkit.TokenInspector(tiny, tokenizer, records, template="chat")
    assert inspector is not None
    figures = evaluate(tiny, tokenizer, records, template="chat", generate=False)
    assert figures["n_pairs"] == 1
    flat = [JudgmentRecord(r.id, r.instruction, r.response, r.judgment) for r in records[:1]]
    with_history = records_response_logprobs(tiny, tokenizer, records[:1], ["9."], template="chat")
    without = records_response_logprobs(tiny, tokenizer, flat, ["9."], template="chat")
    assert with_history[0] != without[0], "the earlier turns are part of the scored context"
