"""Training one arm of a comparison (:func:`cutkit.eval.comparison.compare`): a fresh LoRA on the
base model, trained with the arm's objective for a fixed number of optimizer steps. The arm's
:class:`~cutkit.train.config.CUTConfig` is the comparison's shared settings plus the arm's levers
(:func:`arm_config`); training is :func:`cutkit.train.entry.train_objective`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cutkit.data.records import JudgmentRecord
from cutkit.train.entry import train_objective
from cutkit.train.vocabulary import TRL_OBJECTIVES

if TYPE_CHECKING:
    from cutkit.eval.comparison import CompareSettings
    from cutkit.train.config import CUTConfig


def arm_config(
    objective: str,
    settings: CompareSettings,
    *,
    seed: int,
    steps: int,
    run_dir: str | Path | None = None,
    lr_scheduler_type: str = "cosine",
    **levers,
) -> CUTConfig:
    """The :class:`~cutkit.train.config.CUTConfig` of one arm: ``steps`` optimizer steps of
    ``settings.batch_size`` records with the shared settings, ``seed``, no checkpoints, and the
    arm's ``levers`` (CUTConfig fields: ``unflagged="ignore"``, ``learning_rate=3e-4``, ...; DPO,
    KTO and GRPO take ``learning_rate`` only). ``run_dir`` is the trainer's output folder (default
    ``<settings.output>/<objective>-seed<seed>``)."""
    import torch

    from cutkit.train.config import CUTConfig

    if objective in TRL_OBJECTIVES and set(levers) - {"learning_rate"}:
        raise ValueError(f"{objective.upper()} takes no CUT settings, got {sorted(levers)}")
    run_dir = Path(run_dir or Path(settings.output) / f"{objective}-seed{seed}")
    # the budget is counted in steps here, so a warm-up fraction becomes a step count (rounded
    # down; passed as a fraction of a step, transformers would read it as a fraction once more)
    warmup_steps = int(settings.warmup * steps) if settings.warmup < 1 else settings.warmup
    run = dict(
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
    cut = {} if objective in TRL_OBJECTIVES else {"objective": objective}
    return CUTConfig(
        **(settings.cut_config_kwargs() | run | {"packing": settings.packing} | cut | levers)
    )


def train_arm(
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
    **levers,
):
    """A fresh LoRA on ``model`` trained with ``objective`` for ``steps`` optimizer steps of
    ``settings.batch_size`` records (:func:`arm_config`); returns the trained (PEFT) model.

    ``callbacks`` are ``transformers.TrainerCallback`` objects given to the trainer (for example
    one that saves the adapter at intermediate steps: a learning curve from one run, best with
    ``lr_scheduler_type="constant_with_warmup"``); ``lr_scheduler_type`` is any transformers
    schedule name. DPO and KTO use ``settings.dpo_beta`` / ``settings.kto_beta`` (KTO sees the
    records after the same Align-P downsampling, and its micro-batch is the shared batch size).

    GRPO (:func:`cutkit.train.grpo.train_grpo`) samples ``settings.batch_size`` completions per
    step (4 per prompt) of the records' tasks (``meta["task"]``) and needs ``verify``, its
    reward's verifier: ``cutkit.online.checkers.verify_honestly`` (constraints met and content
    sound). Its trainer's timing (generation vs total seconds) is kept as ``model.cutkit_timing``."""
    config = arm_config(objective, settings, seed=seed, steps=steps, run_dir=run_dir,
                        lr_scheduler_type=lr_scheduler_type, **levers)  # fmt: skip
    beta = {"dpo": settings.dpo_beta, "kto": settings.kto_beta}.get(objective)
    trainer = train_objective(
        model, tokenizer, train, config, objective=objective, lora=settings.lora_config(),
        beta=beta, verify=verify, callbacks=callbacks, quiet=True,
    )  # fmt: skip
    model = trainer.model
    timing = getattr(trainer, "cutkit_timing", None)
    if timing is not None:
        model.cutkit_timing = timing
    return model
