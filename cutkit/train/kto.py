r"""KTO baseline: learn from unpaired good / bad labels, through TRL (docs/method.md §8).

A judgment record's label is exactly what KTO (Ethayarajh et al. 2024) learns from: no pair and
no refinement is needed. With x the plain prompt and r(x, y) = log pi(y | x) - log pi_ref(y | x),

    L = E_D[ w_D (1 - sigmoid(beta (r - z))) ] + E_U[ w_U (1 - sigmoid(beta (z - r))) ],

D the desirable completions (the responses of positive records), U the undesirable ones (the
responses of negative records), z a detached estimate of KL(pi || pi_ref) from mismatched
(prompt, completion) pairs of the same micro-batch (so the micro-batch needs >= 2 examples).
``refinements=True`` also makes each negative's refinement a desirable completion.

Records: the Align-P downsampling of the other objectives applies (``align_p_ratio``), so KTO sees
the records CUT sees. The class weights default to the KTO paper's balance (its Eq. 8: w_D n_D /
(w_U n_U) in [1, 4/3]) at its lower end: w_U = 1, w_D = n_U / n_D. TRL samples the micro-batches
in order (its KL estimate pairs neighbours), so the examples are shuffled here with ``seed``.

This module prepares the data and calls TRL's ``KTOTrainer`` (TRL 1.16; the optional extra
``pip install cutkit[dpo]``); the reference model is chosen as for DPO (:mod:`cutkit.train.dpo`).

>>> examples = kto_examples(records, tok)                                   # doctest: +SKIP
>>> trainer = train_kto(model, tok, records, output_dir="runs/kto", max_steps=100)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cutkit._checks import check_number
from cutkit.data.records import JudgmentRecord, refuse_junk
from cutkit.data.templates import PromptTemplate, get_template
from cutkit.train.examples import downsample_positives
from cutkit.train.trl_bridge import default_precision, require_trl, trl_prompt
from cutkit.train.vocabulary import DEFAULT_TEMPLATE


def kto_examples(
    records: Sequence[JudgmentRecord],
    tokenizer,
    template: str | PromptTemplate = DEFAULT_TEMPLATE,
    *,
    align_p_ratio: float | None = None,
    refinements: bool = False,
    seed: int = 42,
):
    """A shuffled ``datasets.Dataset`` of (id, prompt, completion, label) rows for TRL's KTO.

    ``prompt`` is the template's plain prompt, ``completion`` a response (TRL appends EOS),
    ``label`` True for a positive record's response (and, with ``refinements=True``, a negative's
    refinement, id ``<id>/refinement``), False for a negative record's response. Junk judgments
    raise :class:`~cutkit.data.records.RecordError`; data without a desirable or without an
    undesirable completion raises ValueError (KTO weighs one class against the other).
    """
    import datasets

    template = get_template(template, tokenizer)
    records = list(records)
    refuse_junk(records)
    kept, _ = downsample_positives(records, align_p_ratio, seed)
    rows: dict[str, list] = {"id": [], "prompt": [], "completion": [], "label": []}

    def add(record_id: str, record: JudgmentRecord, completion: str, label: bool) -> None:
        rows["id"].append(record_id)
        prompt = trl_prompt(record.prompt_instruction, tokenizer, template, record.history)
        rows["prompt"].append(prompt)
        rows["completion"].append(completion)
        rows["label"].append(label)

    for record in kept:
        add(record.id, record, record.response, record.is_positive)
        if refinements and record.is_negative and record.refinement is not None:
            add(f"{record.id}/refinement", record, record.refinement, True)
    n_desirable = sum(rows["label"])
    if not n_desirable or n_desirable == len(rows["label"]):
        missing = "desirable (positive)" if not n_desirable else "undesirable (negative)"
        raise ValueError(
            f"KTO needs both desirable and undesirable completions, and the {len(records)} "
            f"records give no {missing} one"
            + (
                f" after keeping align_p_ratio={align_p_ratio:g} positives per negative"
                if align_p_ratio is not None and not n_desirable and records
                else ""
            )
            + "; add such records, pass refinements=True to use the negatives' refinements as "
            "desirable completions, or choose another objective"
        )
    return datasets.Dataset.from_dict(rows).shuffle(seed=seed)


def balanced_weights(dataset) -> dict[str, float]:
    """KTO's class weights at the lower end of the paper's balance (Eq. 8): undesirable 1,
    desirable n_undesirable / n_desirable."""
    n_desirable = sum(dataset["label"])
    return {
        "desirable_weight": (len(dataset) - n_desirable) / n_desirable,
        "undesirable_weight": 1.0,
    }


def train_kto(
    model,
    tokenizer,
    records: Sequence[JudgmentRecord],
    *,
    output_dir: str,
    template: str | PromptTemplate = DEFAULT_TEMPLATE,
    beta: float = 0.1,
    align_p_ratio: float | None = None,
    refinements: bool = False,
    peft_config=None,
    callbacks: Sequence | None = None,
    **training_kwargs: Any,
):
    """Train ``model`` with KTO on :func:`kto_examples` of ``records``; returns the TRL trainer.

    Args:
        model: a causal LM, typically a ``PeftModel`` (the reference is then the initial adapter).
        tokenizer: its tokenizer.
        records: judgment records (positives are desirable, negatives undesirable).
        output_dir: run directory.
        template: "alpaca" or "chat", as for the other objectives.
        beta: KTO temperature.
        align_p_ratio, refinements: as for :func:`kto_examples` (shuffled with ``seed``).
        peft_config: a ``peft.PeftConfig`` for TRL to wrap a plain ``model`` with.
        callbacks: ``transformers.TrainerCallback`` objects for the trainer.
        **training_kwargs: any ``trl.KTOConfig`` field (``max_steps``, ``learning_rate``,
            ``per_device_train_batch_size`` >= 2, ``seed``, ``desirable_weight``, ...). The class
            weights default to :func:`balanced_weights`; bf16 only on a GPU that supports it.
    """
    trl = require_trl("KTO")
    template = get_template(template, tokenizer)
    seed = training_kwargs.get("seed", 42)
    train = kto_examples(
        records,
        tokenizer,
        template,
        align_p_ratio=align_p_ratio,
        refinements=refinements,
        seed=seed,
    )
    training_kwargs = {**balanced_weights(train), **default_precision(training_kwargs)}
    check_number(
        "per_device_train_batch_size",
        training_kwargs.get("per_device_train_batch_size", 8),
        minimum=2,
        integer=True,
        why="KTO estimates its KL term from mismatched pairs within a micro-batch",
    )
    config = trl.KTOConfig(output_dir=str(output_dir), beta=beta, **training_kwargs)
    trainer = trl.KTOTrainer(
        model=model,
        args=config,
        train_dataset=train.remove_columns("id"),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=list(callbacks or ()),
    )
    trainer.train()
    return trainer
