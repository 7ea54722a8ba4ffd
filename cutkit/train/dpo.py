r"""ILF-DPO baseline: DPO with the refinement preferred over the judged response, through TRL.

docs/method.md §8 compares CUT with DPO on (y' preferred over y) pairs, y' the refinement of a bad
response y. Objective (Rafailov et al. 2023), x the plain prompt:

    L = -log sigmoid( beta * [ (log pi(y' | x) - log pi_ref(y' | x))
                               - (log pi(y | x) - log pi_ref(y | x)) ] )

This module only prepares the data and calls TRL's ``DPOTrainer`` (TRL 1.16; the optional extra
``pip install cutkit[dpo]``). Prompts are cutkit's plain prompts (``template.plain``), so DPO sees
the same context as every other objective at training and inference. Reference model, as TRL 1.16
chooses it: for a ``PeftModel`` TRL copies the trainable adapter into a frozen ``"ref"`` adapter (the
initial adapter, i.e. the base model when LoRA starts at B = 0, cutkit's default); for a plain model
with ``peft_config`` TRL adds the adapter and uses the model with adapters disabled; for a plain
model without, a fresh copy loaded from the checkpoint path. TRL saves the frozen ``"ref"`` copy
beside the trained adapter (``output_dir/ref/``); the trained one is ``output_dir``'s own.

>>> from cutkit.data.records import JudgmentRecord
>>> pairs = dpo_pairs([JudgmentRecord("1", "2+2?", "5", "Wrong.", refinement="4")], tok)  # doctest: +SKIP
>>> trainer = train_dpo(model, tok, records, output_dir="runs/dpo", max_steps=100)       # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cutkit.data.records import JudgmentRecord, refuse_junk, refuse_missing_refinements
from cutkit.data.templates import PromptTemplate, get_template
from cutkit.train.trl_bridge import default_precision, require_trl, trl_prompt
from cutkit.train.vocabulary import DEFAULT_TEMPLATE


def dpo_pairs(
    records: Sequence[JudgmentRecord],
    tokenizer,
    template: str | PromptTemplate = DEFAULT_TEMPLATE,
):
    """A ``datasets.Dataset`` of (prompt, chosen, rejected) preference pairs for TRL.

    One row per negative record: ``prompt`` = the template's plain prompt of the instruction,
    ``chosen`` = its refinement, ``rejected`` = its response (TRL appends EOS to both), plus the
    record ``id``. Positive records have no rejected response and are left out. Junk judgments and
    negatives without a refinement raise :class:`~cutkit.data.records.RecordError`.
    """
    import datasets

    template = get_template(template, tokenizer)
    refuse_junk(records)
    refuse_missing_refinements(records, needed_by="DPO prefers the refinement over the response")
    rows: dict[str, list[str]] = {"id": [], "prompt": [], "chosen": [], "rejected": []}
    for record in records:
        if record.is_positive:
            continue
        rows["id"].append(record.id)
        rows["prompt"].append(
            trl_prompt(record.prompt_instruction, tokenizer, template, record.history)
        )
        rows["chosen"].append(record.refinement)
        rows["rejected"].append(record.response)
    if not rows["id"]:
        raise ValueError(
            f"none of the {len(records)} records is negative: DPO needs (refinement, response) "
            "pairs of negative records"
        )
    return datasets.Dataset.from_dict(rows)


def train_dpo(
    model,
    tokenizer,
    records: Sequence[JudgmentRecord],
    *,
    output_dir: str,
    template: str | PromptTemplate = DEFAULT_TEMPLATE,
    beta: float = 0.1,
    eval_records: Sequence[JudgmentRecord] | None = None,
    peft_config=None,
    callbacks: Sequence | None = None,
    **training_kwargs: Any,
):
    """Train ``model`` with DPO on :func:`dpo_pairs` of ``records``; returns the TRL trainer.

    Args:
        model: a causal LM, typically a ``PeftModel`` (e.g. ``cutkit.load_model(lora=True)``; the
            reference is then the initial adapter, see the module docstring).
        tokenizer: its tokenizer.
        records: judgment records; negatives need a refinement.
        output_dir: run directory (checkpoints, adapter).
        template: "alpaca" or "chat", as for the other objectives.
        beta: DPO temperature.
        eval_records: optional records for evaluation pairs.
        peft_config: a ``peft.PeftConfig`` for TRL to wrap a plain ``model`` with.
        callbacks: ``transformers.TrainerCallback`` objects for the trainer.
        **training_kwargs: any ``trl.DPOConfig`` field (``max_steps``, ``learning_rate``,
            ``per_device_train_batch_size``, ...). bf16 defaults to True only on a GPU that
            supports it (TRL's own default is True everywhere).
    """
    trl = require_trl("DPO")
    template = get_template(template, tokenizer)
    training_kwargs = default_precision(training_kwargs)
    config = trl.DPOConfig(output_dir=str(output_dir), beta=beta, **training_kwargs)
    trainer = trl.DPOTrainer(
        model=model,
        args=config,
        train_dataset=dpo_pairs(records, tokenizer, template),
        eval_dataset=dpo_pairs(eval_records, tokenizer, template) if eval_records else None,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=list(callbacks or ()),
    )
    trainer.train()
    return trainer
