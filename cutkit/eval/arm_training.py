"""Training one arm of a comparison (:func:`cutkit.eval.comparison.compare`): a fresh LoRA on the
base model, trained with the arm's objective for a fixed number of optimizer steps, through
:class:`~cutkit.train.trainer.CUTTrainer` or, for DPO, KTO and GRPO, through TRL.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cutkit.data.records import JudgmentRecord
from cutkit.models.lora import apply_lora
from cutkit.train.vocabulary import TRL_OBJECTIVES

if TYPE_CHECKING:
    from cutkit.eval.comparison import CompareSettings


def train_objective(
    objective: str,
    model,
    tokenizer,
    train: Sequence[JudgmentRecord],
    settings: CompareSettings,
    *,
    seed: int,
    steps: int,
    run_dir: str | Path | None = None,
    callbacks: Sequence = (),
    lr_scheduler_type: str = "cosine",
    verify=None,
    **config,
):
    """A fresh LoRA on ``model`` trained with ``objective`` for ``steps`` optimizer steps of
    ``settings.batch_size`` records; returns the trained (PEFT) model.

    ``callbacks`` are ``transformers.TrainerCallback`` objects given to the trainer (for example
    one that saves the adapter at intermediate steps: a learning curve from one run, best with
    ``lr_scheduler_type="constant_with_warmup"``); ``lr_scheduler_type`` is any transformers
    schedule name.

    ``run_dir`` is the trainer's output folder (default ``<settings.output>/<objective>-seed<seed>``);
    further keyword arguments are :class:`~cutkit.train.config.CUTConfig` fields that override the
    shared settings for this run (an arm's levers, e.g. ``unflagged="ignore"``, ``detector="spans"``,
    ``learning_rate=3e-4``); DPO and KTO take ``learning_rate`` only (KTO sees the records after
    the same Align-P downsampling, and its micro-batch is the shared batch size).

    GRPO (:func:`cutkit.train.grpo.train_grpo`) samples ``settings.batch_size`` completions per
    step (4 per prompt) of the records' tasks (``meta["task"]``) and needs ``verify``, its
    reward's verifier: ``cutkit.online.checkers.verify_honestly`` (constraints met and content
    sound). Its trainer's timing (generation vs total seconds) is kept as ``model.cutkit_timing``."""
    import torch
    from transformers import set_seed

    if objective == "grpo" and verify is None:
        raise ValueError(
            "GRPO rewards completions that pass a verifier of their task: pass verify="
            "cutkit.online.checkers.verify_honestly (or a (task dict, completion, finished) -> "
            "bool of your own)"
        )

    set_seed(seed)  # the LoRA A matrices are drawn at random
    model = apply_lora(model, settings.lora_config())
    run_dir = Path(run_dir or Path(settings.output) / f"{objective}-seed{seed}")
    # the budget is counted in steps here, so a warm-up fraction becomes a step count (rounded
    # down; passed as a fraction of a step, transformers would read it as a fraction once more)
    warmup_steps = int(settings.warmup * steps) if settings.warmup < 1 else settings.warmup
    shared = settings.training_kwargs() | dict(
        output_dir=str(run_dir),
        max_steps=steps,
        lr_scheduler_type=lr_scheduler_type,
        warmup_steps=warmup_steps,
        seed=seed,
        save_strategy="no",
        logging_steps=max(1, steps // 10),
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
    )
    if "learning_rate" in config:
        shared["learning_rate"] = config.pop("learning_rate")
    if objective in TRL_OBJECTIVES:
        if config:
            raise ValueError(f"{objective.upper()} takes no CUT settings, got {sorted(config)}")
        if objective == "grpo":
            from cutkit.train.grpo import train_grpo

            trainer = train_grpo(model, tokenizer, train, template=settings.template,
                                 verify=verify, callbacks=list(callbacks), **shared)  # fmt: skip
            model.cutkit_timing = trainer.cutkit_timing
            return model
        if objective == "dpo":
            from cutkit.train.dpo import train_dpo as train_trl

            extra = dict(beta=settings.dpo_beta)
        else:
            from cutkit.train.kto import train_kto as train_trl

            extra = dict(beta=settings.kto_beta, align_p_ratio=settings.align_p_ratio)
        train_trl(model, tokenizer, train, template=settings.template,
                  max_length=settings.max_length, callbacks=list(callbacks), **extra,
                  **shared)  # fmt: skip
        return model
    from cutkit.train.config import CUTConfig
    from cutkit.train.trainer import CUTTrainer

    cut = dict(objective=objective, packing=settings.packing)
    args = CUTConfig(**(settings.cut_config_kwargs() | shared | cut | config))
    trainer = CUTTrainer(
        model, args, train_dataset=train, processing_class=tokenizer, callbacks=list(callbacks)
    )
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # with disable_tqdm it prints every log line
    trainer.train()
    return model
