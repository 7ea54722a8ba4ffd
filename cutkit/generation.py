"""Greedy (or sampled) answers to instructions, batched, under the same prompt template as training.

>>> # answers = generate_responses(model, tokenizer, ["Name a prime number."], template="chat")
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cutkit.templates import PromptTemplate, get_template


def left_padded_batch(
    prompts: Sequence[list[int]], pad_token_id: int, device
) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` (batch, longest prompt), padded on the left so every
    row's next token is generated at the same position."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


@torch.no_grad()
def generate_from_ids(
    model,
    tokenizer,
    prompt_ids: Sequence[Sequence[int]],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    do_sample: bool = False,
    longest_first: bool = False,
    desc: str | None = None,
    **generate_kwargs,
) -> list[str]:
    """Continue prompts given as token ids; one decoded continuation per prompt, in input order
    (special tokens dropped, surrounding space stripped).

    Args:
        model: a causal LM (PEFT-wrapped or not); put in eval mode for the call, then restored.
        tokenizer: its tokenizer (needs a pad token; :func:`cutkit.load_model` sets one).
        prompt_ids: one list of token ids per prompt, special tokens included.
        max_new_tokens: longest continuation, in tokens.
        batch_size: prompts per ``generate`` call (left-padded).
        do_sample: False for greedy decoding (default).
        longest_first: form the batches from the longest prompts down (less padding, memory
            peaks early); False batches the prompts in input order.
        desc: label of a tqdm bar over batches; None shows none.
        **generate_kwargs: passed to ``model.generate`` (e.g. ``temperature``, ``top_p``).
    """
    order = list(range(len(prompt_ids)))
    if longest_first:
        order.sort(key=lambda i: -len(prompt_ids[i]))
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    if desc is not None:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=desc, unit="batch")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = [""] * len(prompt_ids)
    try:
        for batch in batches:
            inputs = left_padded_batch(
                [list(prompt_ids[i]) for i in batch], tokenizer.pad_token_id, device
            )
            generated = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **generate_kwargs,
            )
            new_tokens = generated[:, inputs["input_ids"].shape[1] :]
            texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for i, text in zip(batch, texts, strict=True):
                out[i] = text.strip()
    finally:
        model.train(was_training)
    return out


def generate_responses(
    model,
    tokenizer,
    instructions: Sequence[str],
    *,
    template: str | PromptTemplate = "alpaca",
    max_new_tokens: int = 64,
    batch_size: int = 16,
    do_sample: bool = False,
    progress: bool = False,
    **generate_kwargs,
) -> list[str]:
    """One decoded response per instruction, rendered with ``template.plain`` (as in training) and
    continued by :func:`generate_from_ids` in input order.

    Args:
        model, tokenizer: as for :func:`generate_from_ids`.
        instructions: the instructions.
        template: "alpaca", "chat" or a PromptTemplate.
        max_new_tokens, batch_size, do_sample, **generate_kwargs: as for :func:`generate_from_ids`.
        progress: show a tqdm bar over batches.
    """
    template = get_template(template, tokenizer)
    prompts = [template.prompt_ids(tokenizer, template.plain(text)) for text in instructions]
    return generate_from_ids(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        do_sample=do_sample,
        desc="generating" if progress else None,
        **generate_kwargs,
    )
