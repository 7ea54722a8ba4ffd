"""Loading models and tokenizers offline (known names, checkpoint folders, GGUF files)."""

from __future__ import annotations

import os
from pathlib import Path

from cutkit.models.lora import apply_lora
from cutkit.models.registry import (
    DEFAULT_MODEL,
    ModelNotFoundError,
    known_names_hint,
    resolve_checkpoint,
)


def load_tokenizer(name_or_path: str | os.PathLike = DEFAULT_MODEL):
    """The tokenizer of a model, ready for CUT: a pad token and right padding.

    A missing pad token becomes the EOS token. cutkit never derives masks from pad ids, so a pad
    that equals EOS (as in SmolLM2) is safe.
    """
    from transformers import AutoTokenizer

    checkpoint = resolve_checkpoint(name_or_path)
    tokenizer = _from_pretrained(AutoTokenizer, checkpoint)
    return prepare_tokenizer(tokenizer)


def prepare_tokenizer(tokenizer):
    """Give ``tokenizer`` a pad token (EOS if it has none) and right padding; returns it."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(
                "the tokenizer has neither a pad nor an EOS token; set "
                "tokenizer.pad_token before using it with cutkit"
            )
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def _resolve_dtype(dtype, device: str):
    import torch

    if dtype is None or dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if isinstance(dtype, str):
        return getattr(torch, dtype)
    return dtype


def _from_pretrained(cls, checkpoint: str, **kwargs):
    """``cls.from_pretrained`` that never trusts remote code and explains hub failures."""
    try:
        return cls.from_pretrained(checkpoint, trust_remote_code=False, **kwargs)
    except OSError as error:
        if Path(checkpoint).exists():
            raise
        raise ModelNotFoundError(
            f"could not load {checkpoint!r}: it is not a local path and the Hugging Face hub did "
            f"not provide it (offline?). {known_names_hint()}"
        ) from error


def load_model(
    name_or_path: str | os.PathLike = DEFAULT_MODEL,
    *,
    lora=None,
    dtype=None,
    device: str | None = None,
):
    """Load a causal LM and its tokenizer, optionally wrapped with a fresh LoRA adapter.

    Args:
        name_or_path: a known name (default ``"smollm2-135m-instruct"``, the bundled model), a local
            Hugging Face checkpoint folder, a ``.gguf`` file (converted once and cached), or a hub id.
        lora: None for the bare model; ``True`` for the paper's LoRA recipe; a dict of LoraConfig
            fields overriding that recipe; or a ``peft.LoraConfig``.
        dtype: torch dtype or its name; None picks bf16 on a CUDA device that supports it, else fp32.
        device: "cpu", "cuda", "cuda:1"...; None picks CUDA when available.

    Returns:
        ``(model, tokenizer)``; the model is a ``peft.PeftModel`` when ``lora`` is given.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    checkpoint = resolve_checkpoint(name_or_path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = _from_pretrained(AutoModelForCausalLM, checkpoint, dtype=_resolve_dtype(dtype, device))
    model.to(device)
    tokenizer = prepare_tokenizer(_from_pretrained(AutoTokenizer, checkpoint))
    if lora is not None and lora is not False:
        model = apply_lora(model, lora)
    return model, tokenizer
