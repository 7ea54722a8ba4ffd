"""Templates, example building (identical response ids, left truncation, downsampling) and the
collator's row layout."""

from __future__ import annotations

import pytest
import torch

from cutkit.data.records import JudgmentRecord, RecordError
from cutkit.data.templates import ALPACA_JUDGED, ALPACA_PLAIN, get_template
from cutkit.train.batching import IGNORE_INDEX, CUTCollator, build_examples, downsample_positives
from tests.helpers import arithmetic_records

NEG = JudgmentRecord(
    "n1",
    "What is the capital of Australia?",
    "The capital is Sydney.",
    "Incorrect: the capital of Australia is Canberra, not Sydney.",
)
POS = JudgmentRecord("p1", "What is 2 + 2?", "2 + 2 = 4.", None)


# ----------------------------------------------------------------------------- templates


def test_alpaca_templates_are_the_paper_strings():
    t = get_template("alpaca")
    assert t.plain("Do X.") == ALPACA_PLAIN.format(instruction="Do X.")
    assert t.judged("Do X.", "Bad.").endswith("### Judgment:\nBad.\n\n### Response:\n")
    assert ALPACA_PLAIN.startswith(
        "Below is an instruction that describes a task. Write a response "
        "that appropriately completes the request.\n\n### Instruction:\n"
    )
    assert (
        "Write a response to the instruction and the response should match the corresponding "
        "judgment.\n\n" in ALPACA_JUDGED
    )


def test_input_field_is_appended_to_the_instruction():
    record = JudgmentRecord("i", "Summarise the passage.", "Short.", None, input="A long passage.")
    assert record.prompt_instruction == "Summarise the passage.\nA long passage."


def test_chat_template_uses_the_tokenizer_and_puts_the_judgment_in_the_user_turn(tokenizer):
    t = get_template("chat", tokenizer)
    plain, judged = t.plain("Q?"), t.judged("Q?", "Too vague.")
    assert plain.startswith("<|im_start|>") and plain.endswith("<|im_start|>assistant\n")
    assert "Too vague." in judged and "Too vague." not in plain
    assert not t.add_special_tokens
    with pytest.raises(ValueError, match="chat template"):
        get_template("chat")
    with pytest.raises(ValueError, match="unknown template"):
        get_template("vicuna")


# ----------------------------------------------------------------------------- examples


@pytest.mark.parametrize("template", ["alpaca", "chat"])
def test_both_contexts_score_identical_response_ids_ending_in_eos(tokenizer, template):
    (example,), report = build_examples([NEG], tokenizer, template)
    response = example["response_ids"]
    assert response[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(response[:-1]) == NEG.response
    assert example["negative"] and report.n_negative == 1
    t = get_template(template, tokenizer)
    assert example["plain_prompt_ids"] == t.prompt_ids(tokenizer, t.plain(NEG.instruction))
    assert example["judged_prompt_ids"] == t.prompt_ids(
        tokenizer, t.judged(NEG.instruction, NEG.judgment)
    )


def test_positive_examples_have_no_judged_context(tokenizer):
    (example,), _ = build_examples([POS], tokenizer)
    assert not example["negative"] and example["judged_prompt_ids"] is None


def test_long_prompts_are_cut_from_the_left_and_the_response_survives(tokenizer):
    long = JudgmentRecord(
        "l", "word " * 300 + "What is the capital?", "Sydney.", "Wrong: Canberra."
    )
    (example,), report = build_examples([long], tokenizer, max_length=64)
    assert report.n_prompt_truncated == 1 and report.n_response_truncated == 0
    n_response = len(example["response_ids"])
    for prompt in (example["plain_prompt_ids"], example["judged_prompt_ids"]):
        assert len(prompt) + n_response <= 64
        assert tokenizer.decode(prompt).endswith("### Response:\n"), "the left end is cut"
    assert tokenizer.decode(example["judged_prompt_ids"]).endswith(
        "### Judgment:\nWrong: Canberra.\n\n### Response:\n"
    )


def test_a_long_judgment_is_refused_rather_than_cutting_the_instruction_out(tokenizer):
    """The plain prompt fits, the judged one does not: cutting it from the left would drop the
    start of the instruction from the judged context only (the budget rule of build_examples)."""
    rec = JudgmentRecord("long-judgment", "What is 2+2?", "It is 5.", "Wrong, " * 400 + "4.")
    fine = JudgmentRecord("fine", "What is 2+2?", "It is 5.", "Wrong: 4.")
    with pytest.raises(RecordError) as caught:
        build_examples([fine, rec], tokenizer, max_length=256)
    message = str(caught.value)
    assert message.startswith("<records>, record 1, field 'judgment': record 'long-judgment': ")
    assert "the judged prompt needs" in message and "only" in message
    assert "Raise max_length (now 256)" in message and "shorten the judgment" in message


def test_a_judgment_that_fills_the_budget_beside_a_long_instruction_is_refused(tokenizer):
    rec = JudgmentRecord("j", "word " * 300 + "Capital?", "Sydney.", "Wrong, " * 60 + "Canberra.")
    with pytest.raises(RecordError, match=r"record 'j': the judged prompt needs .* instruction"):
        build_examples([rec], tokenizer, max_length=64)


@pytest.mark.parametrize("template", ["alpaca", "chat"])
def test_contexts_cut_to_the_same_tokens_are_refused(tokenizer, template):
    """max_length so small that only the response header is left: the judged and plain contexts
    would be identical, and CUT needs the judgment in the judged context."""
    rec = JudgmentRecord("tiny", "What is 2+2?", "It is 5.", "Wrong: 4.")
    with pytest.raises(RecordError) as caught:
        build_examples([rec], tokenizer, template, max_length=8)
    assert "record 'tiny': the judged and plain contexts would be identical" in str(caught.value)
    assert "CUT needs the judgment in the judged context" in str(caught.value)


def test_a_positive_record_is_still_cut_from_the_left_and_counted(tokenizer):
    pos = JudgmentRecord("p", "word " * 300 + "Capital?", "Canberra.", None)
    (example,), report = build_examples([pos], tokenizer, max_length=64)
    assert report.n_prompt_truncated == 1
    assert len(example["plain_prompt_ids"]) + len(example["response_ids"]) <= 64


def test_over_long_responses_are_cut_from_the_right_identically_and_counted(tokenizer):
    long = JudgmentRecord("l", "Count.", " ".join(str(i) for i in range(200)), "Too long.")
    (example,), report = build_examples([long], tokenizer, max_length=96, max_response_length=20)
    assert report.n_response_truncated == 1 and len(example["response_ids"]) == 20
    assert tokenizer.decode(example["response_ids"]).startswith("0 1 2")


def test_junk_records_are_refused(tokenizer):
    junk = JudgmentRecord("j", "Q?", "A.", "$ERROR$")
    with pytest.raises(RecordError, match="lenient=True"):
        build_examples([junk], tokenizer)
    good = JudgmentRecord("g", "Q?", "A.", "Wrong.")
    with pytest.raises(RecordError, match=r"record 1, field 'judgment': .*'j'"):
        build_examples([good, junk], tokenizer)  # the index in the records passed


def test_align_p_downsampling_is_seeded_and_proportional():
    data = arithmetic_records(8, 10)
    kept, dropped = downsample_positives(data, 0.25, seed=42)
    assert sum(r.is_positive for r in kept) == 2 and len(dropped) == 8
    assert sum(r.is_negative for r in kept) == 8
    again, _ = downsample_positives(data, 0.25, seed=42)
    assert [r.id for r in again] == [r.id for r in kept]
    other = {tuple(r.id for r in downsample_positives(data, 0.25, seed=s)[0]) for s in range(10)}
    assert len(other) > 1, "the seed matters"
    assert downsample_positives(data, None)[0] == data
    few_positives = arithmetic_records(8, 1)
    assert len(downsample_positives(few_positives, 0.25)[0]) == 9, "never more than exist"


# ----------------------------------------------------------------------------- collator


def test_collator_layout_has_no_dummy_rows(tokenizer):
    data = [POS, NEG, JudgmentRecord("n2", "Q2?", "Bad two.", "Wrong two."), POS]
    examples, _ = build_examples(data, tokenizer)
    batch = CUTCollator(tokenizer.pad_token_id)(examples)
    assert batch["input_ids"].shape[0] == 4 + 2, "B first contexts + one plain row per negative"
    assert batch["negative"].tolist() == [False, True, True, False]
    assert batch["plain_row"].tolist() == [0, 4, 5, 3]
    for i, example in enumerate(examples):
        for row, prompt in (
            (i, example["judged_prompt_ids"] or example["plain_prompt_ids"]),
            (batch["plain_row"][i].item(), example["plain_prompt_ids"]),
        ):
            n = len(prompt) + len(example["response_ids"])
            assert batch["input_ids"][row, :n].tolist() == prompt + example["response_ids"]
            assert batch["attention_mask"][row].sum() == n
            labels = batch["labels"][row]
            assert labels[labels != IGNORE_INDEX].tolist() == example["response_ids"]
            assert (labels[: len(prompt)] == IGNORE_INDEX).all()


def test_collator_pads_to_a_multiple(tokenizer):
    examples, _ = build_examples([NEG], tokenizer)
    batch = CUTCollator(tokenizer.pad_token_id, pad_to_multiple_of=16)(examples)
    assert batch["input_ids"].shape[1] % 16 == 0
    assert batch["labels"].dtype == torch.long and batch["attention_mask"].dtype == torch.long


def test_a_truncated_record_is_built_without_eos(tokenizer):
    finished = JudgmentRecord("a", "Describe bees.", "Bees make honey", "Too long.")
    cut_off = JudgmentRecord(
        "b", "Describe bees.", "Bees make honey", "Too long.", meta={"truncated": True}
    )
    examples, report = build_examples([finished, cut_off], tokenizer)
    assert examples[0]["response_ids"][-1] == tokenizer.eos_token_id
    assert examples[1]["response_ids"] == examples[0]["response_ids"][:-1]
    assert report.n_without_eos == 1 and "without EOS" in str(report)


def test_error_token_flags_follow_the_gold_spans(tokenizer):
    record = JudgmentRecord(
        "a", "Be brief.", "Short. Then far too long", "Too long.", error_spans=[(7, 24)]
    )
    examples, _ = build_examples([record, JudgmentRecord("p", "Hi.", "Hello")], tokenizer)
    flags = examples[0]["error_token_flags"]
    ids = examples[0]["response_ids"]
    assert len(flags) == len(ids) and flags[-1] is False  # EOS is never inside a span
    texts = [tokenizer.decode([i]) for i, f in zip(ids, flags, strict=True) if f]
    assert "".join(texts).strip() == "Then far too long"
    assert examples[1]["error_token_flags"] is None
    batch = CUTCollator(tokenizer.pad_token_id)(examples)
    assert batch["error_token_flags"].shape == (2, len(ids))
    assert (
        batch["error_token_flags"][0].tolist() == flags and not batch["error_token_flags"][1].any()
    )
