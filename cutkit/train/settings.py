"""The training settings every entry point shares, declared once.

``cutkit demo`` (:class:`cutkit.cli.demo.DemoSettings`), ``cutkit compare``
(:class:`cutkit.eval.comparison.CompareSettings`) and ``cutkit online``
(:class:`cutkit.online.config.OnlineConfig`) inherit :class:`TrainSettings`: the base model and its
LoRA adapter (:class:`cutkit.models.lora.ModelSettings`), the prompt template, the context length
and the optimisation budget. The two that train CUT itself with their own levers also inherit
:class:`CUTLevers`. Inheritance keeps the attribute names and the command-line options flat
(``settings.lora_r``, ``--lora_r``) and the same in every command. An entry point that needs
another default says so once, with :func:`shared_field`; ``cutkit train`` takes
:class:`~cutkit.models.lora.ModelSettings` and every :class:`~cutkit.train.config.CUTConfig` field.

Importing this module pulls in neither torch nor transformers (checking the levers of a
:class:`CUTLevers` does).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from cutkit._checks import MIN_CONTEXT, check_number
from cutkit.data.templates import TEMPLATES
from cutkit.models.lora import ModelSettings
from cutkit.train.detection import check_threshold
from cutkit.train.tracking import check_report_to, trackers
from cutkit.train.vocabulary import (
    COUNT_WHY,
    DETECTORS,
    LR_WHY,
    RATIO_WHY,
    UL_WEIGHT_WHY,
    UNFLAGGED,
)

SCORING_FIELDS = ("template", "threshold", "max_length")
"""The settings that decide how a response's tokens are scored and flagged; training and every
evaluation of a run must agree on them."""


def check_max_length(max_length) -> int:
    """``max_length`` as an int; ValueError unless it is a whole number >= :data:`MIN_CONTEXT`."""
    return check_number(
        "max_length",
        max_length,
        minimum=MIN_CONTEXT,
        integer=True,
        why="the prompt templates alone take about 40 tokens, so a shorter context cuts the "
        "instruction (and, shorter still, the judgment) out of the judged prompt and leaves the "
        "judged and plain contexts the same text",
    )


def scoring_kwargs(settings) -> dict[str, Any]:
    """``template``, ``threshold`` and ``max_length`` of ``settings`` (a :class:`TrainSettings`
    or a :class:`~cutkit.train.config.CUTConfig`), as keywords for the scoring functions
    (:func:`cutkit.evaluate`, :func:`cutkit.score_tokens`)."""
    return {name: getattr(settings, name) for name in SCORING_FIELDS}


def shared_field(settings_class: type, name: str, default: Any = MISSING):
    """The declaration of the setting ``name`` of ``settings_class`` (its help text), with another
    default if given: how an entry point states a default of its own in one place, or takes one
    shared setting without inheriting the rest (write the annotation beside it)."""
    declared = next(f for f in fields(settings_class) if f.name == name)
    if default is MISSING:
        return field(
            default=declared.default,
            default_factory=declared.default_factory,
            metadata=declared.metadata,
        )
    return field(default=default, metadata=declared.metadata)


@dataclass
class TrainSettings(ModelSettings):
    """The base model, its LoRA adapter, the prompt template, the context and the budget of a
    training run: what every entry point that trains a fresh LoRA shares.

    The defaults are the short-run recipe of the demo and the comparisons (chat template, 512
    tokens, lr 1e-3, one epoch of micro-batches of 8); :class:`~cutkit.train.config.CUTConfig`
    keeps the paper's (alpaca, 2048, 4e-4, micro-batch 1 x accumulation 8)."""

    template: str = field(
        default="chat",
        metadata={
            "help": "Prompt template: 'chat' (the tokenizer's chat template) or 'alpaca' "
            "(paper-exact); the same one for answering, training and evaluation.",
            "choices": TEMPLATES,
        },
    )
    max_length: int = field(
        default=512,
        metadata={"help": "Longest context in tokens (training and scoring)."},
    )
    threshold: float = field(
        default=1.1, metadata={"help": "Detection lambda (training and evaluation)."}
    )
    align_p_ratio: float | None = field(
        default=0.25,
        metadata={"help": "Positives kept per negative (paper: 0.25); 'none' keeps all."},
    )
    learning_rate: float = field(
        default=1e-3,
        metadata={"help": "Peak learning rate of the LoRA.", "aliases": ["--lr"]},
    )
    epochs: float = field(
        default=1.0,
        metadata={
            "help": "Training epochs.",
            "aliases": ["--num_train_epochs", "--num-train-epochs"],
        },
    )
    batch_size: int = field(
        default=8,
        metadata={
            "help": "Records per micro-batch.",
            "aliases": ["--per_device_train_batch_size", "--per-device-train-batch-size"],
        },
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Micro-batches per optimizer step."}
    )
    warmup: float = field(
        default=0.1,
        metadata={"help": "Linear warm-up: a fraction of the steps (< 1) or a step count."},
    )
    report_to: str = field(
        default="none",
        metadata={
            "help": "Where the training logs go, as transformers' report_to: 'none' (its "
            "default), 'tensorboard', 'trackio', 'wandb', ..., a comma-separated list, or "
            "'all'. compare and online also write their held-out summaries to TensorBoard."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()  # the model and LoRA
        check_number(
            "lora_r",
            self.lora_r,
            minimum=1,
            integer=True,
            why="these settings train a fresh LoRA adapter of that rank (full fine-tuning, "
            "rank 0, is `cutkit train --lora_r 0` only)",
        )
        check_max_length(self.max_length)
        check_threshold(self.threshold)
        check_number("align_p_ratio", self.align_p_ratio, minimum=0, optional=True, why=RATIO_WHY)
        check_number("learning_rate", self.learning_rate, minimum=0, min_open=True, why=LR_WHY)
        check_number("epochs", self.epochs, minimum=0, min_open=True, why="passes over the records")
        for name in ("batch_size", "gradient_accumulation_steps"):
            check_number(name, getattr(self, name), minimum=1, integer=True, why=COUNT_WHY)
        check_number(
            "warmup", self.warmup, minimum=0, why="a fraction of the steps (< 1) or a step count"
        )
        check_report_to(self.report_to)

    @property
    def records_per_step(self) -> int:
        """Records per optimizer step (micro-batch size x accumulation)."""
        return self.batch_size * self.gradient_accumulation_steps

    def training_kwargs(self) -> dict[str, Any]:
        """The ``transformers.TrainingArguments`` keywords these settings fix (any trainer)."""
        return dict(
            learning_rate=self.learning_rate,
            num_train_epochs=self.epochs,
            per_device_train_batch_size=self.batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            warmup_steps=self.warmup,
            report_to=trackers(self.report_to) or "none",
        )

    def cut_config_kwargs(self) -> dict[str, Any]:
        """The :class:`~cutkit.train.config.CUTConfig` keywords these settings fix: the
        :meth:`training_kwargs` and the layout and detection of CUT (add
        :meth:`CUTLevers.lever_kwargs` where the entry point has levers)."""
        return self.training_kwargs() | scoring_kwargs(self) | {"align_p_ratio": self.align_p_ratio}


@dataclass
class CUTLevers:
    """The research levers of CUT's loss (docs/method.md), for the entry points that train CUT
    with one setting (``demo``, ``online``); ``compare`` sets them per arm instead."""

    detector: str = field(
        default="model",
        metadata={
            "help": "CUT lever: 'model' (the paper's judged/plain ratio) or 'spans' (the "
            "records' gold error_spans, oracle detection; docs/method.md)."
        },
    )
    unflagged: str = field(
        default="mle",
        metadata={
            "help": "CUT lever: 'mle' (paper) or 'ignore' (no plain-prompt loss on the "
            "unflagged tokens of a bad answer; docs/method.md)."
        },
    )
    align_n: bool = field(
        default=True,
        metadata={"help": "CUT lever: the likelihood of a bad answer given its judgment."},
    )
    ul_weight: float = field(default=1.0, metadata={"help": "Unlikelihood weight alpha."})

    def __post_init__(self) -> None:
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:  # the settings beside the levers (e.g. TrainSettings)
            parent()
        if self.detector not in DETECTORS or self.unflagged not in UNFLAGGED:
            raise ValueError(
                f"detector must be one of {DETECTORS} and unflagged one of {UNFLAGGED}, got "
                f"{self.detector!r} and {self.unflagged!r}"
            )
        check_number("ul_weight", self.ul_weight, minimum=0, why=UL_WEIGHT_WHY)

    def lever_kwargs(self) -> dict[str, Any]:
        """The :class:`~cutkit.train.config.CUTConfig` keywords of the levers (same names)."""
        return {f.name: getattr(self, f.name) for f in fields(CUTLevers)}
