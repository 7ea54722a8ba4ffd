"""LoRA settings: the paper's recipe, the base model and adapter every entry point trains, and
applying a fresh adapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cutkit._checks import check_number
from cutkit.models.registry import DEFAULT_MODEL

PAPER_LORA = {
    "r": 16,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "target_modules": ["gate_proj", "up_proj", "down_proj"],
    "bias": "none",
    "task_type": "CAUSAL_LM",
}
"""LoRA recipe of the CUT paper: rank 16, alpha 16, dropout 0.05 on the MLP projections only."""


@dataclass
class ModelSettings:
    """The base model and the fresh LoRA adapter trained on it (the paper's recipe by default).

    Every command that trains (``cutkit train``, ``demo``, ``compare``, ``online``) takes these
    settings, with the same names and defaults."""

    model: str = field(
        default=DEFAULT_MODEL,
        metadata={"help": "Base model: a name, checkpoint folder, .gguf file or hub id."},
    )
    lora_r: int = field(
        default=PAPER_LORA["r"],
        metadata={"help": "LoRA rank (paper: 16); 0 trains the full model (cutkit train only)."},
    )
    lora_alpha: int = field(
        default=PAPER_LORA["lora_alpha"],
        metadata={"help": "LoRA alpha, the adapter's scale is alpha / rank (paper: 16)."},
    )
    lora_dropout: float = field(
        default=PAPER_LORA["lora_dropout"], metadata={"help": "LoRA dropout (paper: 0.05)."}
    )

    def __post_init__(self) -> None:
        check_number(
            "lora_r",
            self.lora_r,
            minimum=0,
            integer=True,
            why="the LoRA rank; 0 trains the full model (cutkit train only), a negative rank "
            "means nothing",
        )
        check_number(
            "lora_alpha",
            self.lora_alpha,
            minimum=0,
            min_open=True,
            why="the adapter's scale is alpha / rank: 0 switches it off, a negative alpha flips it",
        )
        check_number(
            "lora_dropout",
            self.lora_dropout,
            minimum=0,
            maximum=1,
            max_open=True,
            why="a probability; 1 would drop every input of the adapter",
        )

    def lora_config(self):
        """The ``peft.LoraConfig`` of these settings (the rest of :data:`PAPER_LORA` as it is)."""
        return default_lora_config(
            r=self.lora_r, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout
        )


def default_lora_config(**overrides: Any):
    """A ``peft.LoraConfig`` with the paper's recipe (:data:`PAPER_LORA`), updated by ``overrides``."""
    from peft import LoraConfig

    return LoraConfig(**{**PAPER_LORA, **overrides})


def apply_lora(model, lora=True):
    """Wrap ``model`` with a new LoRA adapter (``True``, a dict of overrides, or a LoraConfig)."""
    from peft import LoraConfig, get_peft_model

    if lora is True:
        config = default_lora_config()
    elif isinstance(lora, dict):
        config = default_lora_config(**lora)
    elif isinstance(lora, LoraConfig):
        config = lora
    else:
        raise TypeError(
            f"lora must be True, a dict of LoraConfig fields or a peft.LoraConfig, "
            f"not {type(lora).__name__}"
        )
    return get_peft_model(model, config)
