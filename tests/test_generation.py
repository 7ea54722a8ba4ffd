"""Batched greedy generation and the checkable-answer figure of evaluate()."""

from __future__ import annotations

import pytest
import torch

from cutkit.evaluation import answer_correct, evaluate, generation_accuracy
from cutkit.generation import generate_responses, left_padded_batch
from cutkit.records import JudgmentRecord
from cutkit.tiny import tiny_model

INSTRUCTIONS = ["Name a prime number.", "What is the capital of Australia? Answer briefly.", "Hi"]


def test_left_padding_puts_every_prompt_against_the_right_edge():
    batch = left_padded_batch([[5, 6, 7], [9]], pad_token_id=0, device="cpu")
    assert batch["input_ids"].tolist() == [[5, 6, 7], [0, 0, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]


@pytest.mark.parametrize("template", ["alpaca", "chat"])
def test_batched_greedy_answers_equal_one_at_a_time_answers(tokenizer, template):
    torch.manual_seed(0)
    model = tiny_model().double()  # fp64: padding must not change a greedy choice
    model.train()
    batched = generate_responses(
        model, tokenizer, INSTRUCTIONS, template=template, max_new_tokens=8, batch_size=3
    )
    single = [
        generate_responses(model, tokenizer, [i], template=template, max_new_tokens=8)[0]
        for i in INSTRUCTIONS
    ]
    assert batched == single
    assert all(isinstance(a, str) for a in batched) and any(batched)
    assert model.training, "the model's train/eval mode is restored"


@pytest.mark.parametrize(
    ("response", "answer", "correct"),
    [
        ("3 × $379.07 = $1,137.20.", "1137.20", True),
        ("It costs $1,137.20, not $1,200.", "1137.20", False),  # the last number is the result
        ("8 miles is about 12.874 kilometres.", "12.87", True),
        ("8 miles is about 12.9 kilometres.", "12.87", False),
        ("1,500 millilitres is 1.5 litres.", "1.5", True),
        ("The working is 2 × 3 = 6, so", "12", False),  # cut off before its result
        ("It ends at 7:00 pm.", "7:00", True),
        ("It ends at 17:00.", "7:00", False),
        ("The capital of Australia is canberra.", "Canberra", True),
        ("The capital is Sydney.", "Canberra", False),
        ("Iron has the symbol Fe.", "Fe", True),
        ("The symbol is FE or fe.", "Fe", False),  # short names (symbols) are case-sensitive
        ("It is Krypton, Kr.", "K", False),
        ("The change is $2.50.", "2", False),
        ("No numbers here.", "42", False),
    ],
)
def test_answer_correct(response, answer, correct):
    assert answer_correct(response, answer) is correct


def test_generation_accuracy_checks_only_records_with_an_answer(tokenizer):
    records = [
        JudgmentRecord("a", "What is 2 + 2?", "4", meta={"answer": "4"}),
        JudgmentRecord("b", "Say hi.", "Hi!"),
        JudgmentRecord("c", "Capital of Peru?", "Lima.", meta={"answer": "Lima"}),
    ]
    model = tiny_model()
    table = generation_accuracy(model, tokenizer, records, max_new_tokens=4)
    assert table["record_id"].tolist() == ["a", "c"]
    assert table["answer"].tolist() == ["4", "Lima"]
    assert table["correct"].tolist() == [
        answer_correct(text, answer)
        for text, answer in zip(table["generated"], table["answer"], strict=True)
    ]
    figures = evaluate(model, tokenizer, records, max_new_tokens=4)
    assert figures["n_checkable"] == 2
    assert figures["gen_accuracy"] == table["correct"].mean()
    assert "gen_accuracy" not in evaluate(model, tokenizer, records, generate=False)
    assert "gen_accuracy" not in evaluate(model, tokenizer, records[1:2])
