"""Variable-length attention for packed micro-batches (``CUTCollator(packing=True)``).

A packed micro-batch is ONE row of contexts laid end to end, position ids restarting at 0 where each
context begins, no attention mask. transformers' own ``sdpa`` / ``eager`` attention handle it
correctly by building a dense (S, S) block-diagonal mask, which costs O(S^2) memory and compute
over the whole row. ``"cutkit_varlen"`` (registered here in transformers' ``AttentionInterface``)
attends within each context only:

- on CUDA in bf16/fp16, through PyTorch's variable-length flash attention
  (``torch.nn.attention.varlen.varlen_attn``, torch >= 2.10): no mask, no padding, sum_i s_i^2 work;
- elsewhere (CPU, fp32), one causal ``scaled_dot_product_attention`` per context: the same maths,
  exact, and what the CPU tests check against the padded path.

>>> from cutkit.models.tiny import tiny_model
>>> model = tiny_model()
>>> use_varlen_attention(model)
'cutkit_varlen'
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn

logger = logging.getLogger(__name__)

VARLEN_ATTENTION = "cutkit_varlen"
"""Name under which the packed attention is registered in transformers."""

PACKING_READY = ("flash_attention_2", "flash_attention_3", VARLEN_ATTENTION)
"""Implementations that already attend per context from restarting position ids."""


def context_boundaries(position_ids: Tensor) -> Tensor:
    """(1, S) position ids restarting at 0 per context -> (n + 1,) int32 cumulative lengths."""
    starts = (position_ids[0] == 0).nonzero().flatten()
    end = torch.tensor([position_ids.shape[1]], device=position_ids.device)
    return torch.cat([starts, end]).to(torch.int32)


def packed_attention_kwargs(position_ids: Tensor) -> dict:
    """The flash-attention varlen keywords of a packed row, computed once per forward pass:
    ``cu_seq_lens_q/k`` (n + 1,) int32 and ``max_length_q/k`` (python ints). Passed to the model,
    transformers hands them to every attention layer (``flash_attention_2`` uses them as they are;
    ``cutkit_varlen`` too), which then never reads boundaries back from the GPU layer by layer."""
    cu = context_boundaries(position_ids)
    longest = int((cu[1:] - cu[:-1]).max())
    return dict(cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=longest, max_length_k=longest)


@functools.cache
def _flash_varlen():
    """torch's varlen flash attention and its keyword names, or None where torch lacks it."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn, set(inspect.signature(varlen_attn).parameters)


def _varlen_flash(query, key, value, cu, longest, scaling, n_groups) -> Tensor:
    """(1, H, S, D) q/k/v -> (1, S, H, D) through torch's varlen flash attention."""
    varlen_attn, params = _flash_varlen()
    q, k, v = (x[0].transpose(0, 1).contiguous() for x in (query, key, value))  # (S, h, D)
    kwargs = {"scale": scaling}
    if n_groups > 1:
        if "enable_gqa" in params:
            kwargs["enable_gqa"] = True
        else:
            k, v = (x.repeat_interleave(n_groups, dim=1) for x in (k, v))
    if "is_causal" in params:
        kwargs["is_causal"] = True
    else:
        kwargs["window_size"] = (-1, 0)  # causal
    out = varlen_attn(q, k, v, cu, cu, longest, longest, **kwargs)  # (S, H, D)
    return out[None]


def _per_context_sdpa(query, key, value, cu, longest, scaling, n_groups) -> Tensor:
    """(1, H, S, D) q/k/v -> (1, S, H, D): one causal SDPA per context (exact, any device)."""
    if n_groups > 1:
        key, value = (x.repeat_interleave(n_groups, dim=1) for x in (key, value))
    pieces = []
    bounds = cu.tolist()
    for start, end in itertools.pairwise(bounds):
        pieces.append(
            F.scaled_dot_product_attention(
                query[:, :, start:end],
                key[:, :, start:end],
                value[:, :, start:end],
                is_causal=True,
                scale=scaling,
            )
        )
    return torch.cat(pieces, dim=2).transpose(1, 2)


def varlen_attention_forward(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    position_ids: Tensor | None = None,
    **kwargs,
) -> tuple[Tensor, None]:
    """transformers attention function: query (B, H, S, D), key/value (B, Hkv, S, D) -> (B, S, H, D).

    With one row and ``position_ids`` that restart (a packed batch) it attends within each context;
    otherwise (padded batches, generation) it is plain SDPA, so a model can keep it set.
    """
    packed = (
        position_ids is not None
        and attention_mask is None
        and query.shape[0] == 1
        and query.shape[2] == key.shape[2] > 1
    )
    if not packed:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if dropout:
        raise ValueError("cutkit_varlen attention does not implement attention dropout")
    if kwargs.get("cu_seq_lens_q") is not None and kwargs.get("max_length_q") is not None:
        cu, longest = kwargs["cu_seq_lens_q"], int(kwargs["max_length_q"])
    else:  # boundaries not precomputed (a caller other than cutkit.train.logprobs): derive them here
        cu = context_boundaries(position_ids)
        longest = int((cu[1:] - cu[:-1]).max())
    n_groups = query.shape[1] // key.shape[1]
    flash = query.is_cuda and query.dtype in (torch.bfloat16, torch.float16) and _flash_varlen()
    attend = _varlen_flash if flash else _per_context_sdpa
    return attend(query, key, value, cu, longest, scaling, n_groups), None


def register_varlen_attention() -> str:
    """Register ``"cutkit_varlen"`` (attention and mask function) with transformers; idempotent."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(VARLEN_ATTENTION, varlen_attention_forward)

    def mask(*args, attention_mask=None, **kwargs):
        # a packed batch has no 2D mask: build nothing (the attention reads the position ids);
        # anything else gets the SDPA mask its SDPA fallback expects
        if attention_mask is None and kwargs.get("q_length", 2) > 1:
            return None
        return sdpa_mask(*args, attention_mask=attention_mask, **kwargs)

    AttentionMaskInterface.register(VARLEN_ATTENTION, mask)
    return VARLEN_ATTENTION


def use_varlen_attention(model: nn.Module) -> str:
    """Make ``model`` attend per context in packed batches; returns the implementation in use.

    Models already on flash attention 2/3 keep it (transformers unpads them from the position ids);
    every other model is switched to ``"cutkit_varlen"``.
    """
    config = getattr(model, "config", None)
    current = getattr(config, "_attn_implementation", None)
    if current in PACKING_READY:
        return current
    register_varlen_attention()
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.set_attn_implementation(VARLEN_ATTENTION)
    logger.info("packing: attention %s -> %s", current, VARLEN_ATTENTION)
    return VARLEN_ATTENTION
