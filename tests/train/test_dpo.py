"""ILF-DPO through TRL: preference pairs in cutkit's prompts, and a real 2-step DPOTrainer run."""

from __future__ import annotations

import sys

import pytest
import torch

from cutkit.data.records import JudgmentRecord, RecordError
from cutkit.data.templates import ALPACA_PLAIN, get_template
from cutkit.train.dpo import dpo_pairs, train_dpo
from tests.helpers import arithmetic_records

NEG = JudgmentRecord(
    "n1", "Capital of Australia?", "Sydney.", "Wrong: Canberra.", refinement="Canberra."
)
NEG_INPUT = JudgmentRecord("n2", "Add.", "5", "Wrong sum.", input="2 + 2", refinement="4")
POS = JudgmentRecord("p1", "Say hi.", "Hi!")


def test_dpo_pairs_prefer_the_refinement_in_the_plain_prompt(tokenizer):
    pairs = dpo_pairs([NEG, POS, NEG_INPUT], tokenizer)
    assert pairs.column_names == ["id", "prompt", "chosen", "rejected"]
    assert pairs["id"] == ["n1", "n2"], "positives have no rejected response"
    assert pairs["prompt"] == [
        ALPACA_PLAIN.format(instruction="Capital of Australia?"),
        ALPACA_PLAIN.format(instruction="Add.\n2 + 2"),
    ]
    assert pairs["chosen"] == ["Canberra.", "4"] and pairs["rejected"] == ["Sydney.", "5"]
    (chat,) = dpo_pairs([NEG], tokenizer, "chat")["prompt"]
    assert chat == get_template("chat", tokenizer).plain(NEG.instruction)


def test_dpo_pairs_refuse_missing_refinements_and_data_without_negatives(tokenizer):
    with pytest.raises(RecordError, match=r"field 'refinement'.*'bare'"):
        dpo_pairs([POS, JudgmentRecord("bare", "Q?", "A.", "Wrong.")], tokenizer)
    with pytest.raises(RecordError, match=r"record 1, field 'judgment': .*'junk'.*lenient=True"):
        dpo_pairs([NEG, JudgmentRecord("junk", "Q?", "A.", "$ERROR$")], tokenizer)
    with pytest.raises(ValueError, match="none of the 1 records is negative"):
        dpo_pairs([POS], tokenizer)


def test_missing_trl_says_how_to_install_it(tokenizer, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "trl", None)
    with pytest.raises(ImportError, match=r"pip install cutkit\[dpo\]"):
        train_dpo(None, tokenizer, [NEG], output_dir=str(tmp_path))


def test_a_two_step_dpo_run_trains_the_lora_adapter(tokenizer, tmp_path):
    pytest.importorskip("trl")
    from cutkit.models.lora import apply_lora
    from cutkit.models.tiny import tiny_model

    torch.manual_seed(0)
    model = apply_lora(tiny_model(seed=0), {"r": 4, "lora_dropout": 0.0})
    before = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
    trainer = train_dpo(
        model,
        tokenizer,
        arithmetic_records(4, 0, refinements=True),
        output_dir=str(tmp_path),
        beta=0.1,
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
    )
    assert trainer.state.global_step == 2
    after = dict(trainer.model.named_parameters())
    changed = [k for k in before if ".default." in k and not torch.equal(before[k], after[k])]
    assert changed, "the trained adapter moved"
    if "ref" in trainer.model.peft_config:  # TRL keeps a frozen copy of the initial adapter
        for key in before:
            ref = after[key.replace(".default.", ".ref.")]
            assert torch.equal(ref, before[key])
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert logs and logs[0]["loss"] == pytest.approx(0.6931, abs=1e-3), "log 2 at the reference"
