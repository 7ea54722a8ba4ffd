"""GRPO through TRL: the verifiable reward on fixed completions, one prompt per task, refusals
of records without tasks, and a real 2-step GRPOTrainer run through train_arm."""

from __future__ import annotations

import json

import pytest

from cutkit.data.records import JudgmentRecord, RecordError
from cutkit.data.templates import ALPACA_PLAIN
from cutkit.eval.comparison import CompareSettings, compare, train_arm
from cutkit.online.checkers import verify_honestly
from cutkit.online.generator import word_limit_tasks
from cutkit.train.entry import check_training_records
from cutkit.train.grpo import completion_stop_ids, grpo_prompts, train_grpo, verifiable_reward

TASKS = word_limit_tasks(["coffee", "volcanoes"], (10, 12))


def task_records(tasks=TASKS, copies: int = 1) -> list[JudgmentRecord]:
    """Judged answers as benchmarks/onpolicy/onpolicy_experiment.py writes them (the task in
    meta)."""
    return [
        JudgmentRecord(
            f"{task.id}-{copy}",
            task.instruction,
            "An answer that runs on for rather more words than the limit allows here.",
            "Too long.",
            meta={"task": task.to_dict(), "kind": "max_words"},
        )
        for copy in range(copies)
        for task in tasks
    ]


def test_one_prompt_per_task_in_the_plain_prompt(tokenizer):
    rows = grpo_prompts(task_records(copies=2), tokenizer)
    assert rows.column_names == ["prompt", "task_id", "task"]
    assert rows["task_id"] == [t.id for t in TASKS], "duplicates of a task collapse, order kept"
    assert rows["prompt"][0] == ALPACA_PLAIN.format(instruction=TASKS[0].instruction)
    assert json.loads(rows["task"][1]) == TASKS[1].to_dict()


def test_records_without_a_task_are_refused_with_where_and_what_to_do(tokenizer):
    records = [*task_records(), JudgmentRecord("plain", "Say hi.", "Hi!")]
    where = f"record {len(TASKS)}, field 'meta'"
    with pytest.raises(RecordError, match=rf"{where}: record 'plain'.*no checkable task"):
        grpo_prompts(records, tokenizer)
    with pytest.raises(RecordError, match=rf"train.jsonl, {where}.*meta=\{{'task'"):
        check_training_records(records, "grpo", source="train.jsonl")
    check_training_records(task_records(), "grpo")  # no negatives or positives needed


def test_the_reward_is_honest_satisfaction_of_the_prompts_task():
    task = TASKS[0]  # at most 10 words about coffee
    prompt = "P"
    reward = verifiable_reward({prompt: task.to_dict()}, verify_honestly, eos_token_ids=[2])
    completions = [
        "Coffee is a warm, bitter drink made from roasted beans.",  # 10 words, sound
        "Small.",  # meets the limit, too short to be an answer
        "Coffee is a warm, bitter drink made from roasted beans, loved by many people.",
        "Coffee is a warm, bitter drink made from roasted beans.",  # the same, cut off
    ]
    ids = [[5, 6, 2], [7, 2], [8, 9, 2], [5, 6, 7]]  # the last has no EOS: unfinished
    rewards = reward(prompts=[prompt] * 4, completions=completions, completion_ids=ids)
    assert rewards == [1.0, 0.0, 0.0, 0.0]
    assert reward(prompts=[prompt], completions=completions[-1:]) == [1.0], "no ids: finished"
    with pytest.raises(KeyError, match="none of the 1 GRPO prompts"):
        reward(prompts=["other"], completions=["x"])


def test_stop_ids_and_batch_rules(tokenizer, tiny, tmp_path):
    assert tokenizer.eos_token_id in completion_stop_ids(tiny, tokenizer)
    with pytest.raises(ValueError, match=r"6 per optimizer step must be a multiple of num_gen"):
        train_grpo(tiny, tokenizer, task_records(), output_dir=str(tmp_path),
                   verify=verify_honestly, per_device_train_batch_size=6)  # fmt: skip


def test_grpo_needs_a_verifier_and_is_refused_by_compare(tokenizer, tiny, tmp_path):
    settings = CompareSettings(model="tiny", output=str(tmp_path))
    with pytest.raises(ValueError, match=r"verify=cutkit\.online\.checkers\.verify_honestly"):
        train_arm("grpo", tiny, tokenizer, task_records(), settings, seed=0, steps=1)
    with pytest.raises(ValueError, match=r"arm 'grpo'.*compare\(\) does not take"):
        compare(["grpo"], task_records(), task_records(), settings=settings)


def test_a_two_step_grpo_run_trains_the_lora_and_times_generation(tokenizer, tiny, tmp_path):
    settings = CompareSettings(model="tiny", batch_size=8, learning_rate=1e-2, output=str(tmp_path))

    def verify(task, completion, finished):  # random text never passes the real check
        return len(completion) % 2 == 0

    model = train_arm(
        "grpo", tiny, tokenizer, task_records(), settings, seed=0, steps=2, verify=verify,
        lr_scheduler_type="constant",
    )  # fmt: skip
    moved = [n for n, p in model.named_parameters() if "lora_B" in n and p.abs().sum() > 0]
    assert moved, "LoRA B starts at 0; a step with a varied reward moves it"
    timing = model.cutkit_timing
    assert 0 < timing["generation_s"] <= timing["total_s"]
    assert 0 <= timing["reward_s"] <= timing["total_s"]
