"""The one training entry point: judgment records and a :class:`~cutkit.train.config.CUTConfig` in,
a trained LoRA out, for every objective.

``cutkit train``, ``cutkit demo``, the online loop (:mod:`cutkit.online.training`), ``compare``
(:func:`cutkit.eval.arm_training.train_arm`) and the benchmark scripts all train through
:func:`train_objective`. It checks the records first (:func:`check_training_records`, before any
weight changes), seeds, adds the LoRA adapter, then trains the CUT-family objectives with
:class:`~cutkit.train.trainer.CUTTrainer` and DPO, KTO and GRPO through TRL
(:mod:`cutkit.train.dpo`, :mod:`cutkit.train.kto`, :mod:`cutkit.train.grpo`), which take the
config's shared training fields (:data:`TRL_FIELDS`).

>>> from cutkit import load_model, load_records                                # doctest: +SKIP
>>> model, tok = load_model()                                                  # doctest: +SKIP
>>> config = CUTConfig(output_dir="runs/cut", max_steps=24, unflagged="ignore")  # doctest: +SKIP
>>> trainer = train_objective(model, tok, load_records("train.jsonl"), config,
...                           lora=LoraConfig(r=16))                           # doctest: +SKIP
>>> trainer.model.save_pretrained("runs/cut/adapter")                          # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from cutkit.data.records import JudgmentRecord, RecordError, refuse_missing_refinements
from cutkit.train.grpo import refuse_records_without_tasks
from cutkit.train.vocabulary import LEARNS_FROM_NEGATIVES, TRL_OBJECTIVES

if TYPE_CHECKING:
    from cutkit.train.config import CUTConfig

TRL_FIELDS = (
    "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "gradient_accumulation_steps", "warmup_steps", "lr_scheduler_type", "logging_steps",
    "save_strategy", "report_to", "disable_tqdm", "seed", "data_seed", "use_cpu", "optim",
    "weight_decay", "max_grad_norm",
)  # fmt: skip
"""The :class:`~cutkit.train.config.CUTConfig` fields DPO, KTO and GRPO take (TRL's configs are
``TrainingArguments`` too); ``bf16`` / ``fp16`` pass only when set, else TRL runs in bf16 on a GPU
that supports it (:func:`cutkit.train.trl_bridge.default_precision`)."""


def check_training_records(
    records: Sequence[JudgmentRecord],
    objective: str,
    *,
    source: str = "the training records",
    align_p_ratio: float | None = None,
) -> None:
    """Refuse records ``objective`` cannot train on, before the model loads: none at all (an empty
    file, or only junk skipped by ``--lenient``), no negatives for the objectives that learn from
    judged mistakes (or whose Align-P downsampling keeps positives in proportion to negatives), no
    positives for ``sft`` and ``kto``, negatives without refinements for ``ilf`` and ``dpo``, no
    tasks for ``grpo``. Raises ValueError (RecordError for a record) naming ``source``."""
    if not records:
        raise ValueError(
            f"{source} holds no trainable records (an empty file, or every record skipped as "
            "junk); pass a file with judged records"
        )
    n_negative = sum(r.is_negative for r in records)
    n_positive = len(records) - n_negative
    if objective == "sft" and not n_positive:
        raise ValueError(
            f"{source}: objective 'sft' trains on positive records only, and none of the "
            f"{len(records)} records is positive; use 'ilf' to train on refinements, or another "
            "objective"
        )
    if objective == "grpo":  # its prompts and reward come from the tasks, not the judgments
        refuse_records_without_tasks(records, source=source)
        return
    if objective == "kto" and not n_positive:
        raise ValueError(
            f"{source}: objective 'kto' weighs desirable (positive) against undesirable "
            f"(negative) responses, and none of the {len(records)} records is positive; add "
            "positive records, or choose another objective"
        )
    needs_negatives = objective in LEARNS_FROM_NEGATIVES or (
        objective != "sft" and align_p_ratio is not None
    )
    if needs_negatives and not n_negative:
        why = (
            "learns from judged mistakes"
            if objective in LEARNS_FROM_NEGATIVES
            else f"keeps align_p_ratio={align_p_ratio:g} positives per negative"
        )
        raise ValueError(
            f"{source}: objective {objective!r} {why}, and none of the {len(records)} records is "
            "negative (has a critical judgment); add negative records, or use objective 'sft'"
        )
    if objective in ("ilf", "dpo"):
        try:
            refuse_missing_refinements(
                records, needed_by=f"objective {objective!r} trains on the refinements"
            )
        except RecordError as error:
            raise RecordError(
                error.problem, source=source, index=error.index, field=error.field, fix=error.fix
            ) from None


def train_objective(
    model,
    tokenizer,
    records: Sequence[JudgmentRecord],
    config: CUTConfig,
    *,
    objective: str | None = None,
    lora=None,
    beta: float | None = None,
    verify: Callable | None = None,
    callbacks: Sequence = (),
    quiet: bool = False,
    before_training: Callable[[Any], None] | None = None,
    resume_from_checkpoint: str | None = None,
    source: str = "the training records",
    examples: Sequence[dict] | None = None,
):
    """Train ``model`` on ``records`` with ``objective`` (default ``config.objective``); returns the
    trained trainer (``trainer.model`` is the model with its trained adapter).

    Args:
        model, tokenizer: the base model (or one that already carries its adapter) and tokenizer.
        records: judgment records; checked first (:func:`check_training_records`).
        config: every training setting (budget, schedule, seed, the CUT levers; for DPO, KTO and
            GRPO the fields of :data:`TRL_FIELDS`, ``max_length`` and ``align_p_ratio``).
        objective: one of :data:`~cutkit.train.vocabulary.OBJECTIVES` (then it must equal
            ``config.objective``) or :data:`~cutkit.train.vocabulary.TRL_OBJECTIVES`.
        lora: a ``peft.LoraConfig`` to add a fresh adapter with, after seeding with ``config.seed``
            (its initialisation draws random numbers); None trains ``model`` as given.
        beta: the DPO / KTO temperature (default 0.1) or GRPO's KL weight (default 0).
        verify: GRPO's verifier, ``(task dict, completion, finished) -> bool``
            (:func:`cutkit.online.checkers.verify_honestly`); required for GRPO.
        callbacks: ``transformers.TrainerCallback`` objects for the trainer.
        quiet: no log line per logging step (the progress bar stays unless ``disable_tqdm``).
        before_training: called with the built trainer just before it trains (CUT objectives;
            TRL's trainers are built and trained in one call, so it gets None before them):
            ``cutkit train`` claims its run directory there, so a run that fails to build its
            examples leaves an earlier run in place.
        resume_from_checkpoint: a checkpoint folder to resume (CUT objectives).
        source: how error messages name ``records`` (e.g. the file they came from).
        examples: the CUT objectives' examples of ``records``, already built with the config's
            settings (:func:`cutkit.train.objectives.build_objective_examples`, as the online loop
            builds them to see whether a round has anything to train on): trained on as they are
            instead of being built again.
    """
    objective = objective or config.objective
    if objective not in TRL_OBJECTIVES and objective != config.objective:
        raise ValueError(
            f"objective {objective!r} differs from config.objective {config.objective!r}: set "
            "the objective in the config"
        )
    if objective == "grpo" and verify is None:
        raise ValueError(
            "GRPO rewards completions that pass a verifier of their task: pass verify="
            "cutkit.online.checkers.verify_honestly (or a (task dict, completion, finished) -> "
            "bool of your own)"
        )
    if objective in TRL_OBJECTIVES and resume_from_checkpoint:
        raise ValueError(f"resuming is for the CUT-family objectives, not {objective!r}")
    check_training_records(records, objective, source=source, align_p_ratio=config.align_p_ratio)
    if lora is not None:
        from cutkit.models.lora import apply_lora

        seed_everything(config)
        model = apply_lora(model, lora)
    if objective in TRL_OBJECTIVES:
        if before_training is not None:
            before_training(None)
        return _train_with_trl(model, tokenizer, records, config, objective, beta, verify,
                               list(callbacks))  # fmt: skip
    from transformers import PrinterCallback

    from cutkit.train.trainer import CUTTrainer

    data = records if examples is None else examples
    trainer = CUTTrainer(
        model, config, train_dataset=data, processing_class=tokenizer, callbacks=list(callbacks)
    )
    if quiet:
        trainer.remove_callback(PrinterCallback)  # with disable_tqdm it prints every log line
    if before_training is not None:
        before_training(trainer)
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return trainer


def seed_everything(config: CUTConfig) -> None:
    """Seed python, numpy and torch with ``config.seed`` as the Trainer does (fully deterministic
    when ``config.full_determinism``), before anything random (a LoRA initialisation) happens."""
    from transformers import enable_full_determinism, set_seed

    if config.full_determinism:
        enable_full_determinism(config.seed)
    else:
        set_seed(config.seed)


def trl_kwargs(config: CUTConfig) -> dict[str, Any]:
    """The keywords of TRL's configs that ``config`` fixes (:data:`TRL_FIELDS`, and ``bf16`` /
    ``fp16`` when set)."""
    kwargs = {name: getattr(config, name) for name in TRL_FIELDS}
    kwargs |= {name: True for name in ("bf16", "fp16") if getattr(config, name)}
    return kwargs


def _train_with_trl(model, tokenizer, records, config, objective, beta, verify, callbacks):
    shared = dict(output_dir=config.output_dir, template=config.template, callbacks=callbacks)
    if objective == "grpo":
        from cutkit.train.grpo import train_grpo

        return train_grpo(model, tokenizer, records, verify=verify, beta=beta or 0.0, **shared,
                          **trl_kwargs(config))  # fmt: skip
    if objective == "dpo":
        from cutkit.train.dpo import train_dpo

        return train_dpo(model, tokenizer, records, beta=0.1 if beta is None else beta,
                         max_length=config.max_length, **shared, **trl_kwargs(config))  # fmt: skip
    from cutkit.train.kto import train_kto

    return train_kto(model, tokenizer, records, beta=0.1 if beta is None else beta,
                     align_p_ratio=config.align_p_ratio, max_length=config.max_length, **shared,
                     **trl_kwargs(config))  # fmt: skip
