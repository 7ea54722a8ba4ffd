"""What the TRL baselines (:mod:`cutkit.train.dpo`, :mod:`cutkit.train.kto`) share: the import
with its install hint, cutkit's plain prompt as TRL text, and TRL's precision default."""

from __future__ import annotations

from typing import Any

from cutkit.data.templates import PromptTemplate


def require_trl(baseline: str):
    """The ``trl`` module, or ImportError saying how to install it for ``baseline``."""
    try:
        import trl
    except ImportError as err:
        raise ImportError(
            f"the {baseline} baseline runs through TRL, which is not installed: pip install "
            "cutkit[dpo] (or pip install trl==1.16.0)"
        ) from err
    return trl


def trl_prompt(instruction: str, tokenizer, template: PromptTemplate, history=()) -> str:
    """The template's plain prompt of ``instruction`` (after ``history``) as text for TRL.

    TRL tokenizes text prompts with the tokenizer's special tokens; a chat template that writes
    BOS itself would then start with two, so that BOS is dropped from the text."""
    prompt = template.plain(instruction, history)
    bos = tokenizer.bos_token
    if template.add_special_tokens or not bos or not prompt.startswith(bos):
        return prompt
    adds_bos = tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]
    return prompt[len(bos) :] if adds_bos else prompt


def default_precision(training_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``training_kwargs`` with bf16 defaulting to True only on a GPU that supports it (TRL's
    own default is True everywhere, which fails on a CPU)."""
    import torch

    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return {"bf16": bf16 and not training_kwargs.get("use_cpu", False), **training_kwargs}
