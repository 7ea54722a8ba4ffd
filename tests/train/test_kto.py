"""KTO through TRL: unpaired examples in cutkit's prompts, the class balance, refusals, and a
real 2-step KTOTrainer run."""

from __future__ import annotations

import sys

import pytest
import torch

from cutkit.data.records import JudgmentRecord, RecordError
from cutkit.data.templates import ALPACA_PLAIN
from cutkit.train.kto import balanced_weights, kto_examples, train_kto
from tests.helpers import arithmetic_records

NEG = JudgmentRecord(
    "n1", "Capital of Australia?", "Sydney.", "Wrong: Canberra.", refinement="Canberra."
)
POS = JudgmentRecord("p1", "Say hi.", "Hi!")


def test_positives_are_desirable_and_negatives_undesirable_in_the_plain_prompt(tokenizer):
    rows = kto_examples([NEG, POS], tokenizer).sort("id")
    assert rows.column_names == ["id", "prompt", "completion", "label"]
    assert rows["id"] == ["n1", "p1"] and rows["label"] == [False, True]
    assert rows["completion"] == ["Sydney.", "Hi!"]
    assert rows["prompt"][0] == ALPACA_PLAIN.format(instruction="Capital of Australia?")
    with_refinements = kto_examples([NEG, POS], tokenizer, refinements=True).sort("id")
    assert with_refinements["id"] == ["n1", "n1/refinement", "p1"]
    assert with_refinements["label"] == [False, True, True]
    assert with_refinements["completion"][1] == "Canberra."


def test_downsampling_and_shuffling_follow_the_seed(tokenizer):
    data = arithmetic_records(8)
    rows = kto_examples(data, tokenizer, align_p_ratio=0.25, seed=3)
    assert sum(rows["label"]) == 2 and len(rows) == 10, "8 negatives and 0.25 x 8 positives"
    assert rows["id"] == kto_examples(data, tokenizer, align_p_ratio=0.25, seed=3)["id"]
    assert rows["id"] != sorted(rows["id"]), "TRL samples in order, so the rows are shuffled"
    assert balanced_weights(rows) == {"desirable_weight": 4.0, "undesirable_weight": 1.0}


def test_one_sided_data_and_junk_are_refused(tokenizer):
    with pytest.raises(ValueError, match=r"no desirable \(positive\).*refinements=True"):
        kto_examples([NEG], tokenizer)
    with pytest.raises(ValueError, match=r"no undesirable \(negative\)"):
        kto_examples([POS], tokenizer)
    with pytest.raises(RecordError, match=r"'junk'.*lenient=True"):
        kto_examples([NEG, POS, JudgmentRecord("junk", "Q?", "A.", "$ERROR$")], tokenizer)
    assert len(kto_examples([NEG], tokenizer, refinements=True)) == 2


def test_missing_trl_says_how_to_install_it(tokenizer, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "trl", None)
    with pytest.raises(ImportError, match=r"KTO baseline.*pip install cutkit\[dpo\]"):
        train_kto(None, tokenizer, [NEG, POS], output_dir=str(tmp_path))


def test_micro_batches_of_one_are_refused_before_training(tokenizer, tmp_path):
    with pytest.raises(ValueError, match="per_device_train_batch_size must be an integer >= 2"):
        train_kto(
            None, tokenizer, [NEG, POS], output_dir=str(tmp_path), per_device_train_batch_size=1
        )


def test_a_two_step_kto_run_trains_the_lora_adapter(tokenizer, tmp_path):
    from cutkit.models.lora import apply_lora
    from cutkit.models.tiny import tiny_model

    torch.manual_seed(0)
    model = apply_lora(tiny_model(seed=0), {"r": 4, "lora_dropout": 0.0})
    before = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
    trainer = train_kto(
        model,
        tokenizer,
        arithmetic_records(4),
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
    )
    assert trainer.state.global_step == 2
    assert trainer.args.desirable_weight == 1.0, "4 positives and 4 negatives are balanced"
    after = dict(trainer.model.named_parameters())
    changed = [k for k in before if ".default." in k and not torch.equal(before[k], after[k])]
    assert changed, "the trained adapter moved"
    logs = [h for h in trainer.state.log_history if "loss" in h]
    # at the reference the rewards and the KL estimate are 0: each loss is 1 - sigmoid(0) = 0.5
    assert logs and logs[0]["loss"] == pytest.approx(0.5, abs=1e-3)
