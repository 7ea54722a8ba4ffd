"""The one training entry point (cutkit.train.entry.train_objective): records refused before any
weight changes, the objective dispatched to CUTTrainer or TRL with the config's settings, a fresh
LoRA seeded from the config, and the hook cutkit train claims its run directory in."""

from __future__ import annotations

import pytest
import torch

from cutkit.models.lora import default_lora_config
from cutkit.models.tiny import tiny_model
from cutkit.train.config import CUTConfig
from cutkit.train.entry import TRL_FIELDS, train_objective, trl_kwargs
from cutkit.train.trainer import CUTTrainer
from tests.helpers import arithmetic_records


def config(tmp_path, **overrides) -> CUTConfig:
    settings = dict(output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=2,
                    gradient_accumulation_steps=1, learning_rate=1e-3, warmup_steps=0,
                    save_strategy="no", logging_steps=1, disable_tqdm=True, report_to="none",
                    use_cpu=True, seed=3)  # fmt: skip
    return CUTConfig(**(settings | overrides))


def lora():
    return default_lora_config(r=4)


def test_records_the_objective_cannot_train_on_are_refused_before_the_model_changes(
    tokenizer, tmp_path
):
    model = tiny_model(seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    positives = [r for r in arithmetic_records(3) if r.is_positive]
    with pytest.raises(ValueError, match=r"my\.jsonl: objective 'cut' learns from judged mistakes"):
        train_objective(model, tokenizer, positives, config(tmp_path), lora=lora(),
                        source="my.jsonl")  # fmt: skip
    with pytest.raises(ValueError, match="holds no trainable records"):
        train_objective(model, tokenizer, [], config(tmp_path), lora=lora())
    after = model.state_dict()
    assert after.keys() == before.keys(), "no adapter was added"
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_objective_mismatches_and_a_grpo_without_verifier_are_refused(tokenizer, tmp_path):
    records = arithmetic_records(3)
    with pytest.raises(ValueError, match=r"differs from config\.objective 'cut'"):
        train_objective(tiny_model(), tokenizer, records, config(tmp_path), objective="sft")
    with pytest.raises(ValueError, match=r"verify=cutkit\.online\.checkers\.verify_honestly"):
        train_objective(tiny_model(), tokenizer, records, config(tmp_path), objective="grpo")
    with pytest.raises(ValueError, match="resuming is for the CUT-family objectives"):
        train_objective(tiny_model(), tokenizer, records, config(tmp_path), objective="kto",
                        resume_from_checkpoint="x")  # fmt: skip


def test_cut_trains_through_cuttrainer_after_the_hook_with_a_seeded_lora(tokenizer, tmp_path):
    seen = []

    def hook(trainer):
        seen.append((type(trainer), trainer.state.global_step, trainer.build_reports["train"]))

    records = arithmetic_records(3)
    trainer = train_objective(tiny_model(seed=0), tokenizer, records, config(tmp_path), lora=lora(),
                              before_training=hook)  # fmt: skip
    assert isinstance(trainer, CUTTrainer) and trainer.state.global_step == 2
    assert [(kind, step) for kind, step, _ in seen] == [(CUTTrainer, 0)], "once, before a step"
    assert seen[0][2].n_records == 6 and seen[0][2].n_negative == 3  # the examples were built
    again = train_objective(tiny_model(seed=0), tokenizer, records, config(tmp_path), lora=lora())
    for (name, a), (_, b) in zip(trainer.model.named_parameters(), again.model.named_parameters(),
                                 strict=True):  # fmt: skip
        if "lora_" in name:
            assert torch.equal(a, b), f"{name}: the same seed gives the same adapter"


def test_kto_trains_through_trl_with_the_configs_shared_fields(tokenizer, tmp_path):
    hooked = []
    trainer = train_objective(tiny_model(seed=0), tokenizer, arithmetic_records(3),
                              config(tmp_path), objective="kto", lora=lora(), beta=0.2,
                              before_training=hooked.append)  # fmt: skip
    assert type(trainer).__name__ == "KTOTrainer" and hooked == [None]
    assert trainer.state.global_step == 2 and trainer.args.beta == 0.2
    assert trainer.args.learning_rate == 1e-3 and trainer.args.seed == 3
    assert trainer.args.max_length == config(tmp_path).max_length


def test_trl_keywords_carry_the_shared_fields_and_precision_only_when_set(tmp_path):
    kwargs = trl_kwargs(config(tmp_path))
    assert set(kwargs) == set(TRL_FIELDS) and kwargs["max_steps"] == 2
    assert "bf16" not in kwargs and "fp16" not in kwargs  # TRL's default precision then applies


def test_prebuilt_examples_are_trained_on_without_building_them_again(tokenizer, tmp_path):
    from cutkit.train.objectives import build_objective_examples

    records, settings = arithmetic_records(3), config(tmp_path)
    examples, _ = build_objective_examples(records, tokenizer, "cut", settings.template,
                                           max_length=settings.max_length,
                                           align_p_ratio=settings.align_p_ratio,
                                           seed=settings.seed)  # fmt: skip
    trainer = train_objective(tiny_model(seed=0), tokenizer, records, settings, lora=lora(),
                              examples=examples)  # fmt: skip
    assert trainer.state.global_step == 2 and "train" not in trainer.build_reports
    assert trainer.train_dataset is examples
