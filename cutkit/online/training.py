"""One online round's training step: a fresh LoRA on the current model, trained on the round's
judged records with the configured objective, then merged into the weights."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cutkit.data.records import JudgmentRecord
from cutkit.online.config import OnlineConfig
from cutkit.train.tracking import trackers


@dataclass
class RoundTraining:
    """What a round's training step did.

    Attributes:
        model: the model after the round (the LoRA merged in; the input model if not trained).
        summary: entries for the round's ``metrics["train"]``: ``skip_reason`` and / or
            ``build_report``, and when trained ``trained``, ``n_examples``, ``steps``,
            ``train_loss`` and ``log_history``.
        args: the trainer's settings (``CUTConfig.to_dict()``); None when not trained.
        seconds: wall time of the LoRA training (None when not trained).
    """

    model: Any
    summary: dict[str, Any]
    args: dict[str, Any] | None = None
    seconds: float | None = None


def training_args(config: OnlineConfig, output_dir: Path, seed: int, *, use_cpu: bool):
    """The :class:`~cutkit.train.config.CUTConfig` of one round (``config.training`` overrides).
    For ``kto`` (trained through TRL) it carries the shared training fields only, with objective
    ``"cut"``; :func:`train_round` records the round's objective as ``"kto"``."""
    from cutkit.train.config import CUTConfig

    c = config
    return CUTConfig(
        **{
            "output_dir": str(output_dir),
            "objective": "cut" if c.objective == "kto" else c.objective,
            **c.cut_config_kwargs(),
            **c.lever_kwargs(),
            "logging_steps": 1,
            "save_strategy": "no",
            "report_to": trackers(c.report_to) or "none",
            "disable_tqdm": not c.show_progress,
            "seed": seed,
            "data_seed": seed,
            "use_cpu": use_cpu,
            **c.training,
        }
    )


def train_round(
    model,
    tokenizer,
    records: Sequence[JudgmentRecord],
    config: OnlineConfig,
    stage: Path,
    seed: int,
) -> RoundTraining:
    """Train a fresh LoRA on ``model`` with ``records`` (trainer state in ``stage/trainer``, the
    adapter saved to ``stage/adapter``) and merge it; nothing is trained when the records give
    no training example (the summary's ``skip_reason`` says why)."""
    from cutkit.train import objectives
    from cutkit.train.entry import check_training_records, train_objective

    c = config
    args = training_args(c, stage / "trainer", seed, use_cpu=str(model.device) == "cpu")
    summary: dict[str, Any] = {}
    examples, report = [], None
    try:
        if records:
            check_training_records(records, c.objective, source=f"round records ({stage.name})",
                                   align_p_ratio=args.align_p_ratio)  # fmt: skip
        if records and c.objective == "kto":
            from cutkit.train.kto import kto_examples

            examples = kto_examples(
                records, tokenizer, c.template, align_p_ratio=args.align_p_ratio, seed=seed
            )
        elif records:
            examples, report = objectives.build_objective_examples(
                records,
                tokenizer,
                c.objective,
                c.template,
                max_length=args.max_length,
                max_response_length=args.max_response_length,
                align_p_ratio=args.align_p_ratio,
                seed=seed,
            )
    except ValueError as error:  # e.g. sft (or kto) without any accepted response
        summary["skip_reason"] = str(error)
    if report is not None:
        summary["build_report"] = asdict(report)
    if not examples:
        summary.setdefault("skip_reason", "no training examples (see build_report / excluded)")
        return RoundTraining(model, summary)
    start = time.perf_counter()
    trainer = train_objective(
        model, tokenizer, records, args, objective=c.objective, lora=c.lora_config(),
        quiet=not c.show_progress, examples=None if c.objective == "kto" else examples,
    )  # fmt: skip
    peft_model = trainer.model
    trainer.save_state()
    peft_model.save_pretrained(stage / "adapter")
    merged = peft_model.merge_and_unload()
    merged.eval()
    summary |= {
        "trained": True,
        "n_examples": len(examples),
        "steps": trainer.state.global_step,
        "train_loss": _training_loss(trainer.state.log_history),
        "log_history": trainer.state.log_history,
    }
    seconds = round(time.perf_counter() - start, 2)
    return RoundTraining(merged, summary, args.to_dict() | {"objective": c.objective}, seconds)


def _training_loss(log_history: list[dict]) -> float | None:
    """The run's mean training loss, as transformers logs it at the end of training."""
    return next((h["train_loss"] for h in reversed(log_history) if "train_loss" in h), None)
