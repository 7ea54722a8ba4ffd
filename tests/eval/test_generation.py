"""Batched greedy generation (finished vs cut off at the token limit), the degeneration rule
and the checkable-answer figure of evaluate()."""

from __future__ import annotations

import pytest
import torch

from cutkit.data.records import JudgmentRecord
from cutkit.eval.degeneration import degeneration, is_degenerate, repetition
from cutkit.eval.generation import (
    Generation,
    eos_token_ids,
    generate_answers,
    generate_from_ids,
    generate_responses,
    left_padded_batch,
)
from cutkit.eval.metrics import answer_correct, evaluate, generation_accuracy
from cutkit.models.tiny import tiny_model

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


def test_an_answer_cut_off_at_the_limit_is_reported_unfinished(tiny, tokenizer):
    answers = generate_answers(tiny, tokenizer, INSTRUCTIONS, template="chat", max_new_tokens=3)
    assert all(isinstance(a, Generation) for a in answers)
    assert [(a.finished, a.truncated, a.n_tokens) for a in answers] == [(False, True, 3)] * 3
    texts = generate_responses(tiny, tokenizer, INSTRUCTIONS, template="chat", max_new_tokens=3)
    assert [a.text for a in answers] == texts  # the plain-text API is unchanged


class ScriptedModel(torch.nn.Module):
    """A stand-in for a causal LM whose ``generate`` returns scripted new tokens per prompt (the
    first token of the prompt picks the script), padded with ``pad`` like a real batch."""

    def __init__(self, scripts: dict[int, list[int]], pad: int, eos_ids):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.scripts, self.pad, self.calls = scripts, pad, []
        self.generation_config = type("GenerationConfig", (), {"eos_token_id": eos_ids})()

    def generate(self, input_ids, attention_mask, max_new_tokens, eos_token_id, **kwargs):
        self.calls.append(eos_token_id)
        stops = {eos_token_id} if isinstance(eos_token_id, int) else set(eos_token_id)
        rows = []
        for prompt, mask in zip(input_ids.tolist(), attention_mask.tolist(), strict=True):
            script = self.scripts[prompt[mask.index(1)]][:max_new_tokens]
            ends = [i for i, t in enumerate(script) if t in stops]
            rows.append(script[: ends[0] + 1] if ends else script)
        width = max(len(r) for r in rows)
        new = [r + [self.pad] * (width - len(r)) for r in rows]
        return torch.cat([input_ids, torch.tensor(new, dtype=torch.long)], dim=1)


def test_finished_means_an_eos_among_the_new_tokens_even_when_pad_is_eos(tokenizer):
    eos, end_of_text = tokenizer.eos_token_id, 0  # <|im_end|> (= pad) and <|endoftext|>
    hello = tokenizer("Hello there", add_special_tokens=False)["input_ids"]
    words = tokenizer(" one two three four five six", add_special_tokens=False)["input_ids"]
    scripts = {
        101: [*hello, eos, 77, 78],  # finished early; the batch pads it after its EOS
        102: words,  # never ends: cut off
        103: [*hello, end_of_text, 79],  # ends with the generation config's other EOS id
        104: [eos],  # finished without any text
    }
    model = ScriptedModel(scripts, pad=tokenizer.pad_token_id, eos_ids=[eos, end_of_text])
    assert tokenizer.pad_token_id == eos and eos_token_ids(model, tokenizer) == [eos, end_of_text]
    prompts = [[101, 5], [102, 5, 6], [103], [104, 9]]
    limit = len(words) - 1
    answers = generate_from_ids(
        model, tokenizer, prompts, max_new_tokens=limit, batch_size=4, return_status=True
    )
    assert model.calls == [[eos, end_of_text]]  # generation stops at either EOS id
    assert answers == [
        Generation("Hello there", True, len(hello) + 1),
        Generation(tokenizer.decode(words[:limit]).strip(), False, limit),
        Generation("Hello there", True, len(hello) + 1),
        Generation("", True, 1),
    ]
    texts = generate_from_ids(model, tokenizer, prompts, max_new_tokens=limit, batch_size=3)
    assert texts == [a.text for a in answers]  # same texts, other batches, plain strings


@pytest.mark.parametrize(
    ("text", "finished", "reason"),
    [
        ("", True, "empty"),
        ("  \n ", False, "empty"),
        ("Bees make honey in the hive.", False, "truncated"),
        ("The lava is majestic, Majestic and hot.", True, "repetitive"),
        ("It is a game of skill, skill, skill.", True, "repetitive"),
        ("I like it a lot. I like it a lot, I like it a lot.", True, "repetitive"),  # 4-gram x3
        ("I like it a lot. I like it a lot.", True, None),  # twice is fine
        ("1. Bees are a joy.\n2. Bees are a gift.\n3. Bees are a wonder.", True, None),
        ("1. evaporation, 2. evaporation, 3. evaporation, 4. evaporation", True, None),
        ("1. rain, 2. rain, 3. rain, 4. rain, 5. rain, 6. rain", True, "repetitive"),
        ("It makes vaccines. Vaccines protect us.", True, None),  # not across a sentence end
        ("1. Bridge\n2. Bridge Bridge", True, "repetitive"),
        ("Bees make honey in the hive. They dance to share where flowers are.", True, None),
        ("1. Red\n2. Green\n3. Blue", True, None),
        ("12 12", True, None),  # a repeated number is not a repeated word
        ('{"name": "Bees", "summary": "They make honey."}', True, None),
    ],
)
def test_degeneration_rule(text, finished, reason):
    assert degeneration(text, finished) == reason
    assert is_degenerate(text, finished) is (reason is not None)
    assert (repetition(text) is not None) is (reason == "repetitive")


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
