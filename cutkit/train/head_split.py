"""Splitting a causal LM into its decoder body and its output layer, so that only the scored rows
reach the head (:mod:`cutkit.train.chunked_head`). A model whose head transforms the logits after
the matmul, or is not linear, cannot be split: :func:`split_model` says why, and
:func:`cutkit.train.logprobs.label_logprobs` falls back to the full logits with a warning.
"""

from __future__ import annotations

import inspect

from torch import nn

from cutkit.train.chunked_head import CHUNK_MEMORY_MB, chunk_rows

# config attributes of heads that transform the logits after the matmul (or could), with the value
# that means "no transform"; any other value sends label_logprobs to the plain path.
LOGIT_TRANSFORMS: dict[str, object] = {
    "final_logit_softcapping": None,  # Gemma2/3: tanh soft-cap
    "logit_scale": None,  # Cohere: logits * scale
    "logits_scaling": 1.0,  # Granite: logits / scaling
    "lm_head_multiplier": 1.0,  # Falcon-H1: logits * multiplier
}


def unwrap_peft(model: nn.Module) -> tuple[nn.Module, str | None]:
    """The transformers model inside a PEFT wrapper, or a reason it cannot be bypassed."""
    if not hasattr(model, "get_base_model"):
        return model, None
    config = getattr(model, "active_peft_config", None)
    if getattr(config, "is_prompt_learning", False):
        return model, "a prompt-learning adapter adds virtual tokens outside the base model"
    return model.get_base_model(), None


def unwrap_ddp(model: nn.Module) -> nn.Module:
    """The module inside ``DistributedDataParallel`` (where the Trainer wraps it), else ``model``."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def keeps_logits(model: nn.Module) -> bool:
    """Whether the (PEFT-unwrapped) model's forward takes ``logits_to_keep``."""
    base, _ = unwrap_peft(model)
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def is_linear_head(head: nn.Module | None) -> bool:
    """A row-wise linear map: nn.Linear (any subclass), a PEFT tuner layer (LoRA, ...) around one,
    or a PEFT modules_to_save wrapper whose copies are all nn.Linear."""
    if isinstance(head, nn.Linear):
        return True
    get_base_layer = getattr(head, "get_base_layer", None)
    if callable(get_base_layer) and isinstance(get_base_layer(), nn.Linear):
        return True
    copies = getattr(head, "modules_to_save", None)
    return (
        isinstance(getattr(head, "original_module", None), nn.Linear)
        and isinstance(copies, nn.ModuleDict)
        and all(isinstance(m, nn.Linear) for m in copies.values())
    )


def head_vocab_size(head: nn.Module) -> int:
    """V, the rows of an output layer :func:`_is_linear_head` accepts (through a PEFT layer)."""
    get_base_layer = getattr(head, "get_base_layer", None)
    layer = get_base_layer() if callable(get_base_layer) else head
    layer = getattr(layer, "original_module", layer)  # PEFT modules_to_save: the same shape
    return int(layer.weight.shape[0])


def model_chunk_rows(model: nn.Module, memory_mb: float = CHUNK_MEMORY_MB) -> int:
    """:func:`chunk_rows` for the model's output layer (what ``chunk_size="auto"`` gives it).

    V is the output layer's rows when :func:`split_model` can split the model (PEFT-wrapped too),
    else the (text) config's ``vocab_size``.
    """
    _, head, _ = split_model(model)
    if head is not None:
        return chunk_rows(head_vocab_size(head), memory_mb)
    base, _ = unwrap_peft(model)
    config = getattr(base, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    vocab_size = getattr(config, "vocab_size", None)
    if vocab_size is None:
        raise ValueError("cannot tell the model's vocabulary size: pass an integer chunk_size")
    return chunk_rows(vocab_size, memory_mb)


def split_model(model: nn.Module) -> tuple[nn.Module | None, nn.Module | None, str | None]:
    """(decoder body, output layer, None), or (None, None, why the head cannot be chunked)."""
    base, reason = unwrap_peft(model)
    if reason:
        return None, None, reason
    config = getattr(base, "config", None)
    configs = [config]
    if config is not None and hasattr(config, "get_text_config"):
        configs.append(config.get_text_config())
    if any(getattr(c, "is_encoder_decoder", False) for c in configs):
        return None, None, "encoder-decoder models are not supported by the chunked path"
    for name, identity in LOGIT_TRANSFORMS.items():
        for holder in [*configs, base]:
            value = getattr(holder, name, identity)
            if value is not None and value != identity:
                return (
                    None,
                    None,
                    f"the model transforms its logits after the head ({name}={value})",
                )
    if getattr(base, "final_logits_bias", None) is not None:
        return None, None, "the model adds final_logits_bias after the head"
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    if not is_linear_head(head):
        return None, None, f"the output layer is {type(head).__name__}, not a linear layer"
    body = base.get_decoder() if hasattr(base, "get_decoder") else getattr(base, "model", None)
    if body is None or body is base:
        return None, None, "no separate decoder body (get_decoder() / .model) was found"
    return body, head, None
