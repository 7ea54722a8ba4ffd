"""The training settings every entry point shares, declared once.

``cutkit demo`` (:class:`cutkit.cli.demo.DemoSettings`), ``cutkit compare``
(:class:`cutkit.eval.comparison.CompareSettings`) and ``cutkit online``
(:class:`cutkit.online.config.OnlineConfig`) inherit :class:`TrainSettings`: the base model and its
LoRA adapter (:class:`cutkit.models.lora.ModelSettings`), the prompt template, the context length
and the optimisation budget. The two that train CUT itself with their own levers also inherit
:class:`CUTLevers`. Inheritance keeps the attribute names and the command-line options flat
(``settings.lora_r``, ``--lora_r``) and the same in every command. ``cutkit train`` takes
:class:`~cutkit.models.lora.ModelSettings` and every :class:`~cutkit.train.config.CUTConfig` field.

Each setting these classes share with CUTConfig is declared once, in :data:`SETTINGS` (its default
and help text); CUTConfig and the entry points take their field from there (:func:`setting`), and
the defaults an entry point changes are its named preset in :data:`PRESET_OVERRIDES` (``train``:
CUTConfig's; ``short_run``, ``compare``, ``demo``, ``online``), which the settings class names in
``PRESET``; a subclass changes an inherited default with :func:`shared_field` and its preset.

Importing this module pulls in neither torch nor transformers (checking the levers of a
:class:`CUTLevers` does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from cutkit._checks import MIN_CONTEXT, check_number
from cutkit.data.templates import TEMPLATES
from cutkit.models.lora import ModelSettings
from cutkit.train.detection import check_threshold
from cutkit.train.tracking import check_report_to, trackers
from cutkit.train.vocabulary import (
    COUNT_WHY,
    DEFAULT_MAX_LENGTH,
    DEFAULT_TEMPLATE,
    DEFAULT_THRESHOLD,
    DETECTORS,
    LR_WHY,
    RATIO_WHY,
    UL_WEIGHT_WHY,
    UNFLAGGED,
)

SCORING_FIELDS = ("template", "threshold", "max_length")
"""The settings that decide how a response's tokens are scored and flagged; training and every
evaluation of a run must agree on them."""


@dataclass(frozen=True)
class Setting:
    """The one declaration of a training setting: its default (CUTConfig's, the paper's recipe),
    its help text and the rule of its values."""

    default: Any
    help: str
    check: Callable[[str, Any], Any] | None = None
    """The one rule of its values, called with the name the settings give it and the value
    (:func:`check_setting`); None where the settings check it themselves."""


def _number(**rule: Any) -> Callable[[str, Any], Any]:
    """A setting's rule: :func:`cutkit._checks.check_number` with these bounds and reason."""
    return lambda name, value: check_number(name, value, **rule)


_COUNT = _number(minimum=1, integer=True, why=COUNT_WHY)


SETTINGS: dict[str, Setting] = {
    "template": Setting(
        DEFAULT_TEMPLATE,
        "Prompt template: 'alpaca' (paper-exact) or 'chat' (the tokenizer's chat template); the "
        "same one for answering, training, evaluation and inference.",
    ),
    "max_length": Setting(
        DEFAULT_MAX_LENGTH,
        "Longest context in tokens, >= 64 (training and scoring): prompts are cut from the left "
        "so the response survives, responses from the right to max_length // 2 tokens (cutkit "
        "train: max_response_length), and a negative record whose judgment would push its "
        "instruction out of the judged prompt is refused (cutkit.train.batching.build_examples).",
        lambda name, value: check_max_length(value),
    ),
    "threshold": Setting(
        DEFAULT_THRESHOLD,
        "Detection lambda (training and evaluation): a token is flagged when p(y_t | x, j) > "
        "lambda * p(y_t | x) (1.1 online, 1.2 Shepherd).",
        lambda name, value: check_threshold(value),
    ),
    "align_p_ratio": Setting(
        0.25,
        "Positive (Align-P) records kept per negative, chosen with the seed (paper: 0.25); "
        "'none' keeps all.",
        _number(minimum=0, optional=True, why=RATIO_WHY),
    ),
    "learning_rate": Setting(
        4e-4,
        "Peak learning rate (paper: 4e-4 with LoRA).",
        _number(minimum=0, min_open=True, why=LR_WHY),
    ),
    "num_train_epochs": Setting(1.0, "Training epochs (paper: 1)."),
    "per_device_train_batch_size": Setting(1, "Records per micro-batch (paper: 1).", _COUNT),
    "gradient_accumulation_steps": Setting(
        8, "Micro-batches per optimizer step (paper: 8).", _COUNT
    ),
    "warmup_steps": Setting(
        100,
        "Linear warm-up: a fraction of the steps (< 1) or a step count (paper: 100 steps).",
        _number(minimum=0, why="a fraction of the steps (< 1) or a step count"),
    ),
    "detector": Setting(
        "model",
        "CUT lever, which tokens get unlikelihood: 'model' (the paper: p(y_t | x, j) > lambda * "
        "p(y_t | x)) or 'spans' (oracle: the tokens inside each negative record's gold "
        "error_spans; every negative record must have spans); docs/method.md.",
    ),
    "unflagged": Setting(
        "mle",
        "CUT lever, the unflagged tokens of a bad response under the plain prompt: 'mle' (the "
        "paper: likelihood) or 'ignore' (no loss). 'mle' teaches the rest of the bad response "
        "back; docs/method.md.",
    ),
    "align_n": Setting(
        True, "CUT lever (ablation switch): the likelihood of a bad response given its judgment."
    ),
    "ul_weight": Setting(
        1.0,
        "Unlikelihood weight alpha >= 0, finite, on the flagged tokens (1.0 online, 0.5 Shepherd).",
        _number(minimum=0, why=UL_WEIGHT_WHY),
    ),
    "packing": Setting(
        False,
        "Padding-free micro-batches for the CUT-family objectives: every context of a "
        "micro-batch laid end to end in one row with restarting position ids; the model attends "
        "per context (flash attention 2/3 if set, else cutkit.train.attention's "
        "'cutkit_varlen'). Same loss and gradients as the padded layout, no pad tokens computed. "
        "For the padded layout of cutkit train, train_sampling_strategy='group_by_length' "
        "batches records of similar length instead.",
    ),
}
"""Every training setting that :class:`~cutkit.train.config.CUTConfig` shares with an entry
point's settings (:class:`TrainSettings`, :class:`CUTLevers`, the demo's, compare's, online's and
inspect's), declared once under CUTConfig's name: every one of those dataclasses takes its field
from here (:func:`setting`), with its preset's default (:data:`PRESET_OVERRIDES`)."""

OWN_MEANING = ("output_dir", "seed", "objective", "report_to")
"""CUTConfig (``transformers.TrainingArguments``) names that an entry point declares with a
meaning of its own, not as a training setting: ``output_dir`` (online's run directory, resumed),
``seed`` (it also draws the tasks), ``objective`` (online's own choices) and ``report_to`` (a
tracker list whose summaries compare and online add to)."""

SHORT_NAMES = {
    "epochs": "num_train_epochs",
    "batch_size": "per_device_train_batch_size",
    "warmup": "warmup_steps",
}
"""The entry points' option names of three CUTConfig settings (``--epochs`` for
``--num_train_epochs``, ...)."""

_SHORT_RUN = {
    "template": "chat",
    "max_length": 512,
    "learning_rate": 1e-3,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "warmup_steps": 0.1,
}

PRESET_OVERRIDES: dict[str, dict[str, Any]] = {
    # cutkit train and inspect: CUTConfig's own defaults, the paper's recipe
    "train": {},
    # TrainSettings: the short CPU runs (chat template, 512 tokens, lr 1e-3, one epoch of
    # micro-batches of 8, 10% warm-up)
    "short_run": _SHORT_RUN,
    "compare": _SHORT_RUN,
    # four passes over the demo's 48 judged answers: 24 steps of 8, where the learning curves
    # (benchmarks/curves, validation split) find the lever setting has risen and at 12 it has not
    "demo": _SHORT_RUN | {"num_train_epochs": 4.0},
    # training contexts hold a prompt, a judgment and an answer of up to max_new_tokens (192)
    # tokens, so 1024 keeps them whole; the rounds train with the paper's learning rate
    "online": _SHORT_RUN | {"max_length": 1024, "learning_rate": SETTINGS["learning_rate"].default},
}
"""Each entry point's named preset: the settings whose default differs from :data:`SETTINGS`
(CUTConfig's), by CUTConfig's name. A settings class names its preset in ``PRESET``."""


def preset_default(preset: str, name: str) -> Any:
    """The default of the setting ``name`` (CUTConfig's name or a :data:`SHORT_NAMES` one) in
    ``preset``."""
    name = SHORT_NAMES.get(name, name)
    return PRESET_OVERRIDES[preset].get(name, SETTINGS[name].default)


def check_setting(settings: Any, name: str) -> None:
    """Check the setting ``name`` of ``settings`` by its one declared rule (ValueError naming
    ``name``, the value, the range and why)."""
    SETTINGS[SHORT_NAMES.get(name, name)].check(name, getattr(settings, name))


def setting(name: str, preset: str = "train", **metadata: Any):
    """The dataclass field of the setting ``name`` (CUTConfig's name or a :data:`SHORT_NAMES`
    one): its help text from :data:`SETTINGS`, its default from ``preset``; ``metadata`` adds an
    entry point's own (``aliases``, ``choices``)."""
    help_text = SETTINGS[SHORT_NAMES.get(name, name)].help
    return field(default=preset_default(preset, name), metadata={"help": help_text, **metadata})


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


def shared_field(settings_class: type, name: str, preset: str | None = None):
    """The declaration of the setting ``name`` of ``settings_class`` (its help text and option
    aliases), with the default of ``preset`` if given (:data:`PRESET_OVERRIDES`): how an entry
    point takes one shared setting without inheriting the rest, or its preset's default of an
    inherited one (write the annotation beside it)."""
    declared = next(f for f in fields(settings_class) if f.name == name)
    if preset is None:
        return field(
            default=declared.default,
            default_factory=declared.default_factory,
            metadata=declared.metadata,
        )
    return field(default=preset_default(preset, name), metadata=declared.metadata)


@dataclass
class TrainSettings(ModelSettings):
    """The base model, its LoRA adapter, the prompt template, the context and the budget of a
    training run: what every entry point that trains a fresh LoRA shares.

    The fields are declared in :data:`SETTINGS`; the defaults are the ``short_run`` preset of the
    demo and the comparisons (chat template, 512 tokens, lr 1e-3, one epoch of micro-batches of
    8); :class:`~cutkit.train.config.CUTConfig` keeps the paper's (alpaca, 2048, 4e-4,
    micro-batch 1 x accumulation 8)."""

    PRESET: ClassVar[str] = "short_run"

    template: str = setting("template", "short_run", choices=TEMPLATES)
    max_length: int = setting("max_length", "short_run")
    threshold: float = setting("threshold", "short_run")
    align_p_ratio: float | None = setting("align_p_ratio", "short_run")
    learning_rate: float = setting("learning_rate", "short_run", aliases=["--lr"])
    epochs: float = setting(
        "epochs", "short_run", aliases=["--num_train_epochs", "--num-train-epochs"]
    )
    batch_size: int = setting(
        "batch_size",
        "short_run",
        aliases=["--per_device_train_batch_size", "--per-device-train-batch-size"],
    )
    gradient_accumulation_steps: int = setting("gradient_accumulation_steps", "short_run")
    warmup: float = setting("warmup", "short_run")
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
        for name in ("max_length", "threshold", "align_p_ratio", "learning_rate"):
            check_setting(self, name)
        check_number("epochs", self.epochs, minimum=0, min_open=True, why="passes over the records")
        for name in ("batch_size", "gradient_accumulation_steps", "warmup"):
            check_setting(self, name)
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

    detector: str = setting("detector")
    unflagged: str = setting("unflagged")
    align_n: bool = setting("align_n")
    ul_weight: float = setting("ul_weight")

    def __post_init__(self) -> None:
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:  # the settings beside the levers (e.g. TrainSettings)
            parent()
        if self.detector not in DETECTORS or self.unflagged not in UNFLAGGED:
            raise ValueError(
                f"detector must be one of {DETECTORS} and unflagged one of {UNFLAGGED}, got "
                f"{self.detector!r} and {self.unflagged!r}"
            )
        check_setting(self, "ul_weight")

    def lever_kwargs(self) -> dict[str, Any]:
        """The :class:`~cutkit.train.config.CUTConfig` keywords of the levers (same names)."""
        return {f.name: getattr(self, f.name) for f in fields(CUTLevers)}
