"""A tiny, randomly initialised Llama-family model for fast unit tests and examples.

Same architecture family as the default SmolLM2 model (Llama, tied embeddings, grouped-query
attention, SiLU MLP with gate/up/down projections so the paper's LoRA targets exist), but with a
hidden size of 8: about 0.4 M parameters at the real 49,152-token vocabulary, a forward pass in
milliseconds. Nothing is downloaded.

>>> model = tiny_model(vocab_size=64, seed=0)
>>> sum(p.numel() for p in model.parameters()) < 5_000
True
"""

from __future__ import annotations

import torch

SMOLLM2_VOCAB_SIZE = 49_152


def tiny_model(
    vocab_size: int = SMOLLM2_VOCAB_SIZE,
    *,
    hidden_size: int = 8,
    num_layers: int = 2,
    num_heads: int = 2,
    num_kv_heads: int = 1,
    intermediate_size: int = 16,
    tie_word_embeddings: bool = True,
    pad_token_id: int = 2,
    eos_token_id: int = 2,
    bos_token_id: int = 1,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
):
    """Return a randomly initialised ``LlamaForCausalLM`` (eval mode, on CPU).

    Args:
        vocab_size: number of token ids; the default matches the SmolLM2 tokenizer so the real
            tokenizer can drive it.
        hidden_size, num_layers, num_heads, num_kv_heads, intermediate_size: the shape.
        tie_word_embeddings: share the input embedding and the output layer, as SmolLM2 does.
        seed: initialisation seed (the same seed gives the same weights).
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=4096,
        tie_word_embeddings=tie_word_embeddings,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
        bos_token_id=bos_token_id,
        initializer_range=0.5,
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = LlamaForCausalLM(config).to(dtype)
    finally:
        torch.random.set_rng_state(state)
    return model.eval()
