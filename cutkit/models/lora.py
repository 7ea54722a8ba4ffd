"""LoRA settings: the paper's recipe and applying a fresh adapter."""

from __future__ import annotations

from typing import Any

PAPER_LORA = {
    "r": 16,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "target_modules": ["gate_proj", "up_proj", "down_proj"],
    "bias": "none",
    "task_type": "CAUSAL_LM",
}
"""LoRA recipe of the CUT paper: rank 16, alpha 16, dropout 0.05 on the MLP projections only."""


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
