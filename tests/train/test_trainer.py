"""CUTTrainer on the tiny model: it learns, logs CUT metrics, is invariant to gradient accumulation
for the step-normalised losses, resumes from checkpoints exactly, and runs under 2-process DDP."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from cutkit.data.records import JudgmentRecord
from cutkit.models.lora import apply_lora
from cutkit.models.tiny import tiny_model
from cutkit.train.config import CUTConfig
from cutkit.train.trainer import CUTTrainer
from tests.helpers import (
    REPO,
    arithmetic_records,
    assert_same_weights,
    free_port,
    lora_weights,
    make_trainer,
    two_records,
)


def test_config_has_paper_defaults_and_help_text():
    config = CUTConfig(output_dir="unused")
    assert (config.learning_rate, config.lr_scheduler_type, config.warmup_steps) == (
        4e-4,
        "cosine",
        100,
    )
    assert (config.per_device_train_batch_size, config.gradient_accumulation_steps) == (1, 8)
    assert (config.threshold, config.ul_weight, config.max_length) == (1.1, 1.0, 2048)
    assert config.align_p_ratio == 0.25 and config.remove_unused_columns is False
    from dataclasses import fields

    cut_fields = [f for f in fields(CUTConfig) if f.name in CUTConfig.__annotations__]
    assert all(f.metadata.get("help") for f in cut_fields)
    with pytest.raises(ValueError, match="normalization"):
        CUTConfig(output_dir="x", normalization="mean")
    with pytest.raises(ValueError, match="threshold"):
        CUTConfig(output_dir="x", threshold=0.9)


def test_chunk_size_follows_the_vocabulary_unless_set_and_round_trips_the_cli(tokenizer, tmp_path):
    """CUTConfig.chunk_size means what label_logprobs's does: 'auto' (the default) follows the
    vocabulary within chunk_memory_mb, an integer fixes the rows, None is no chunking."""
    from cutkit.cli.arguments import command_parser
    from cutkit.train.logprobs import CHUNK_MEMORY_MB, chunk_rows

    default = CUTConfig(output_dir="unused")
    assert (default.chunk_size, default.chunk_memory_mb) == ("auto", CHUNK_MEMORY_MB)
    parser = command_parser("t", "", CUTConfig)
    for flags, want in (
        ([], ("auto", 128.0)),
        (["--chunk_size", "512"], (512, 128.0)),
        (["--chunk_size", "auto", "--chunk_memory_mb", "64.5"], ("auto", 64.5)),
        (["--chunk_size", "none", "--chunk_memory_mb", "32"], (None, 32.0)),
    ):
        parsed = parser.parse_args_into_dataclasses(["--output_dir", "unused", *flags])[0]
        assert (parsed.chunk_size, parsed.chunk_memory_mb) == want

    model = tiny_model(seed=0)  # tied head, V = 49,152
    vocab_size = model.config.vocab_size
    for kwargs, rows in (
        ({}, chunk_rows(vocab_size)),
        ({"chunk_memory_mb": 4.0}, chunk_rows(vocab_size, 4.0)),
        ({"chunk_size": 7, "chunk_memory_mb": 4.0}, 7),
        ({"chunk_size": None}, None),
    ):
        config = CUTConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", **kwargs)
        trainer = CUTTrainer(
            model, config, train_dataset=arithmetic_records(2), processing_class=tokenizer
        )
        assert trainer.head_chunk_rows == rows
    assert chunk_rows(vocab_size) == 200 and chunk_rows(vocab_size, 4.0) == 6


def test_training_lowers_the_loss_and_logs_cut_metrics(tokenizer, tmp_path):
    trainer = make_trainer(
        arithmetic_records(),
        tokenizer,
        tmp_path,
        max_steps=12,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=1,
    )
    assert trainer.build_reports["train"].n_examples == 12
    trainer.train()
    history = [h for h in trainer.state.log_history if "loss" in h]
    assert history[-1]["loss"] < history[0]["loss"] - 0.5
    for key in (
        "loss/mle",
        "loss/ul",
        "ul/flagged_frac",
        "ul/logratio_mean",
        "logps/judged",
        "logps/plain",
        "num_tokens",
    ):
        assert key in history[0], key
    assert 0 <= history[0]["ul/flagged_frac"] <= 1
    for h in history:
        assert h["loss"] == pytest.approx(h["loss/mle"] + h["loss/ul"], rel=1e-4)
    metrics = trainer.evaluate(eval_dataset=trainer.train_dataset)
    assert "eval_ul/flagged_frac" in metrics and "eval_loss" in metrics


@pytest.mark.parametrize("objective", ["cut", "self_distill"])
@pytest.mark.parametrize("normalization", ["token", "paper"])
def test_gradient_accumulation_2x1_equals_1x2(tokenizer, tmp_path, normalization, objective):
    data = two_records()
    common = dict(max_steps=1, normalization=normalization, objective=objective)
    accumulated = make_trainer(
        data,
        tokenizer,
        tmp_path / "a",
        per_device_train_batch_size=1,
        gradient_accumulation_steps=2,
        **common,
    )
    batched = make_trainer(
        data,
        tokenizer,
        tmp_path / "b",
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        **common,
    )
    before = lora_weights(batched)
    accumulated.train()
    batched.train()
    after = lora_weights(batched)
    assert any(not torch.equal(before[k], after[k]) for k in before), "the step changed weights"
    assert_same_weights(lora_weights(accumulated), after)
    logs = [next(h for h in t.state.log_history if "loss" in h) for t in (accumulated, batched)]
    keys = (
        "loss",
        "loss/mle",
        "loss/ul",
        *(("distill/kl",) if objective == "self_distill" else ()),
    )
    for key in keys:
        assert logs[0][key] == pytest.approx(logs[1][key], rel=1e-4), key


def test_official_normalization_averages_micro_batch_losses(tokenizer, tmp_path):
    """The released code's loss is per micro-batch; the Trainer averages it over accumulation."""
    data = two_records()
    trainer = make_trainer(
        data,
        tokenizer,
        tmp_path,
        max_steps=1,
        per_device_train_batch_size=1,
        gradient_accumulation_steps=2,
    )
    collate = trainer.data_collator
    model = trainer.model
    with torch.no_grad():
        per_batch = [
            trainer.cut_loss_output(model, collate([ex])).loss for ex in trainer.train_dataset
        ]
    trainer.train()
    logged = next(h for h in trainer.state.log_history if "loss" in h)["loss"]
    assert logged == pytest.approx(float(sum(per_batch) / 2), rel=1e-4)


def test_checkpoint_resume_reproduces_an_uninterrupted_run(tokenizer, tmp_path):
    data = arithmetic_records(4)
    straight = make_trainer(
        data,
        tokenizer,
        tmp_path / "straight",
        max_steps=4,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
    )
    straight.train()
    first = make_trainer(
        data,
        tokenizer,
        tmp_path / "resumed",
        max_steps=4,
        save_strategy="steps",
        save_steps=2,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
    )
    first.train()
    resumed = make_trainer(
        data,
        tokenizer,
        tmp_path / "resumed",
        max_steps=4,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
    )
    resumed.train(resume_from_checkpoint=str(tmp_path / "resumed" / "checkpoint-2"))
    assert resumed.state.global_step == 4
    assert_same_weights(lora_weights(straight), lora_weights(resumed))
    assert (tmp_path / "resumed" / "checkpoint-2" / "adapter_model.safetensors").exists()


def test_resume_passes_over_checkpoints_whose_save_did_not_finish(tokenizer, tmp_path):
    """Every checkpoint ends with its manifest; resume_from_checkpoint=True takes the newest
    complete one (here 2: 4 has no manifest, 3 a truncated optimizer) and reproduces the
    uninterrupted run, and resuming a finished run takes no further step."""
    from cutkit.train.rundir import CHECKPOINT_MANIFEST

    data = arithmetic_records(4)
    budget = dict(max_steps=4, per_device_train_batch_size=2, gradient_accumulation_steps=1)
    straight = make_trainer(data, tokenizer, tmp_path / "straight", **budget)
    straight.train()
    run = tmp_path / "run"
    make_trainer(data, tokenizer, run, save_strategy="steps", save_steps=1, **budget).train()
    assert all((run / f"checkpoint-{s}" / CHECKPOINT_MANIFEST).exists() for s in (1, 2, 3, 4))
    (run / "checkpoint-4" / CHECKPOINT_MANIFEST).unlink()
    optimizer = run / "checkpoint-3" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:100])
    resumed = make_trainer(data, tokenizer, run, **budget)
    resumed.train(resume_from_checkpoint=True)
    assert resumed.state.global_step == 4
    assert_same_weights(lora_weights(straight), lora_weights(resumed))
    finished = make_trainer(data, tokenizer, tmp_path / "straight", **budget)
    straight._save_checkpoint(straight.model, None)
    finished.train(resume_from_checkpoint=True)
    assert finished.state.global_step == 4
    assert_same_weights(lora_weights(straight), lora_weights(finished))


def test_damaged_checkpoint_file_is_named(tokenizer, tmp_path):
    from cutkit.train.rundir import CheckpointError

    budget = dict(max_steps=2, per_device_train_batch_size=2, gradient_accumulation_steps=1)
    make_trainer(
        two_records(), tokenizer, tmp_path, save_strategy="steps", save_steps=1, **budget
    ).train()
    optimizer = tmp_path / "checkpoint-2" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:-300])
    resumed = make_trainer(two_records(), tokenizer, tmp_path, **budget)
    with pytest.raises(CheckpointError, match=r"checkpoint-2.*optimizer\.pt"):
        resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))


def test_a_non_finite_loss_term_stops_training_before_the_step(tokenizer, tmp_path, monkeypatch):
    import math

    import cutkit.train.trainer as trainer_module
    from cutkit.train.trainer import NonFiniteError

    real, calls = trainer_module.cut_loss, []

    def misalign_nan_from_step_2(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(1)
        if len(calls) >= 2:
            out.ul = out.ul + math.nan
            out.loss = out.mle + out.ul
        return out

    monkeypatch.setattr(trainer_module, "cut_loss", misalign_nan_from_step_2)
    trainer = make_trainer(
        arithmetic_records(2),
        tokenizer,
        tmp_path,
        max_steps=3,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=1,
        save_strategy="steps",
        save_steps=1,
    )
    with pytest.raises(NonFiniteError, match=r"step 2: non-finite loss term misalign=nan") as e:
        trainer.train()
    assert (e.value.step, e.value.term) == (2, "misalign")
    assert trainer.state.global_step == 1  # step 2 was not taken
    assert all(bool(torch.isfinite(p).all()) for p in trainer.model.parameters())
    assert (tmp_path / "checkpoint-1").exists() and not (tmp_path / "checkpoint-2").exists()
    with torch.no_grad():
        next(p for p in trainer.model.parameters() if p.requires_grad).fill_(math.inf)
    with pytest.raises(NonFiniteError, match="NaN or inf"):
        trainer.save_run()
    assert not (tmp_path / "adapter_model.safetensors").exists()


LAUNCHERS = {
    "torchrun": ["-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port"],
    "accelerate": ["-m", "accelerate.commands.launch", "--config_file",
                   "configs/accelerate/ddp-cpu.yaml", "--main_process_port"],
}  # fmt: skip
"""Launcher arguments; the port follows (:func:`free_port`)."""

TEARDOWN_ABORT = "terminate called without an active exception"
"""What a rank prints when it aborts while the process group shuts down, after its work is done:
a race in the gloo backend on busy CPUs (seen on 1 run in 4-6 with the cores loaded), retried
once; any other failure fails the test at once."""


@pytest.mark.slow
@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_ddp_two_processes_matches_one_process(tokenizer, tmp_path, launcher):
    """2 CPU processes (gloo), one record each, equal one process with both: started by torchrun,
    and by accelerate launch with the repository's configs/accelerate/ddp-cpu.yaml."""
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    for _attempt in range(2):  # once more only when a rank aborted in gloo's teardown
        result = subprocess.run(
            [sys.executable, *LAUNCHERS[launcher], str(free_port()), "tests/scripts/ddp_train.py",
             str(out)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if result.returncode == 0 or TEARDOWN_ABORT not in result.stderr:
            break
    assert result.returncode == 0, result.stderr[-3000:]
    assert "falling back to full logits" not in result.stderr, "DDP keeps the chunked head"
    single = make_trainer(
        two_records(),
        tokenizer,
        tmp_path / "single",
        max_steps=1,
        normalization="token",
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
    )
    single.train()
    assert_same_weights(torch.load(out, weights_only=True), lora_weights(single))


@pytest.mark.slow
def test_cutkit_train_under_accelerate_launch_is_one_ddp_run(shared_tiny_checkpoint, tmp_path):
    """``accelerate launch -m cutkit train`` with configs/accelerate/ddp-cpu.yaml: two ranks of
    one run (each saves its own RNG state; with world size 1 there would be one file), rank 0
    alone owns the folder and writes its config."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    argv = ["--data", "data/starter/train.jsonl", "--model", str(shared_tiny_checkpoint),
            "--output", str(out), "--max_steps", "2", "--lora_r", "4", "--use_cpu", "true",
            "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1"]  # fmt: skip
    result = subprocess.run(
        [sys.executable, *LAUNCHERS["accelerate"], str(free_port()), "-m", "cutkit", "train", *argv],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = out / "checkpoint-2"
    assert sorted(p.name for p in checkpoint.glob("rng_state*")) == [
        "rng_state_0.pth",
        "rng_state_1.pth",
    ]
    assert (checkpoint / "cutkit_checkpoint.json").exists()
    assert (out / "cutkit_owner.json").exists() and (out / "adapter_model.safetensors").exists()
    assert "lora_r: 4" in (out / "cutkit_config.yaml").read_text()


def test_detection_without_dropout_uses_an_eval_mode_pass(tokenizer, tmp_path):
    from cutkit.train.losses import detect_flagged

    torch.manual_seed(0)
    model = apply_lora(
        tiny_model(seed=0), {"r": 4, "lora_dropout": 0.9, "init_lora_weights": "gaussian"}
    )
    config = CUTConfig(
        output_dir=str(tmp_path),
        detection_dropout=False,
        threshold=1.0,
        align_p_ratio=None,
        use_cpu=True,
    )
    trainer = CUTTrainer(
        model, config, train_dataset=arithmetic_records(3), processing_class=tokenizer
    )
    batch = trainer.data_collator(trainer.train_dataset)
    model.eval()
    with torch.no_grad():
        logp, mask = trainer._response_logprobs(model, batch)
    n = batch["negative"].shape[0]
    expected = detect_flagged(
        logp[:n], logp[batch["plain_row"]], mask[:n] & batch["negative"][:, None], 1.0
    )
    model.train()
    for _ in range(3):  # dropout is active in the loss pass, never in detection
        assert torch.equal(trainer.cut_loss_output(model, batch).flagged, expected)
    assert model.training
    assert expected.any() and not expected.all()


def span_records() -> list[JudgmentRecord]:
    """Too-long answers whose excess is the gold error span, plus one positive."""
    answers = ["Waves and salt water everywhere you look.", "Bees make honey in a busy hive."]
    records = []
    for i, answer in enumerate(answers):
        cut = len(" ".join(answer.split()[:3]))
        records.append(
            JudgmentRecord(
                f"n{i}",
                "Describe it in at most 3 words.",
                answer,
                f'Too long: everything from "{answer[cut + 1 :]}" is over the limit.',
                error_spans=[(cut + 1, len(answer))],
            )
        )
    return [*records, JudgmentRecord("p", "Say hi.", "Hi there!")]


def test_span_detector_flags_exactly_the_gold_error_tokens(tokenizer, tmp_path):
    from cutkit.train.batching import response_char_spans

    records = span_records()
    trainer = make_trainer(records, tokenizer, tmp_path, detector="spans", threshold=50.0)
    batch = trainer.data_collator(trainer.train_dataset)
    flagged = trainer.cut_loss_output(trainer.model, batch).flagged
    for row, record in enumerate(records[:2]):
        ids = tokenizer(record.response, add_special_tokens=False)["input_ids"]
        spans = response_char_spans(tokenizer, record.response, len(ids) + 1)
        start = record.error_spans[0][0]
        expected = [s < len(record.response) and e > start for s, e in spans]  # EOS: False
        assert flagged[row, : len(expected)].tolist() == expected
        assert not flagged[row, len(expected) :].any()
    assert not flagged[2].any()  # the positive row
    # the model's own detection at lambda 50 flags nothing on the same batch
    model_trainer = make_trainer(records, tokenizer, tmp_path, threshold=50.0)
    assert not model_trainer.cut_loss_output(model_trainer.model, batch).flagged.any()


def test_span_detector_refuses_negatives_without_spans_before_training(tokenizer, tmp_path):
    from cutkit.data.records import RecordError

    with pytest.raises(RecordError, match="error_spans"):
        make_trainer(arithmetic_records(2), tokenizer, tmp_path, detector="spans")
    with pytest.raises(ValueError, match="detector"):
        CUTConfig(output_dir="x", detector="oracle")
    with pytest.raises(ValueError, match="unflagged"):
        CUTConfig(output_dir="x", unflagged="drop")


def test_trainer_logs_the_push_balance(tokenizer, tmp_path):
    trainer = make_trainer(
        span_records(),
        tokenizer,
        tmp_path,
        max_steps=2,
        unflagged="ignore",
        per_device_train_batch_size=3,
        detector="spans",
    )
    trainer.train()
    first = next(h for h in trainer.state.log_history if "loss" in h)
    assert first["ul/push_down"] > 0 and first["ul/push_up"] == 0
