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
    """One decoded response per instruction (special tokens dropped, surrounding space stripped).

    Args:
        model: a causal LM (PEFT-wrapped or not); put in eval mode for the call, then restored.
        tokenizer: its tokenizer (needs a pad token; :func:`cutkit.load_model` sets one).
        instructions: the instructions, rendered with ``template.plain`` (as in training).
        template: "alpaca", "chat" or a PromptTemplate.
        max_new_tokens: longest answer, in tokens.
        batch_size: prompts per ``generate`` call.
        do_sample: False for greedy decoding (default).
        progress: show a tqdm bar over batches.
        **generate_kwargs: passed to ``model.generate`` (e.g. ``temperature``, ``top_p``).
    """
    template = get_template(template, tokenizer)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    batches = range(0, len(instructions), batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="generating", unit="batch")
    answers: list[str] = []
    try:
        for start in batches:
            prompts = [
                template.prompt_ids(tokenizer, template.plain(instruction))
                for instruction in instructions[start : start + batch_size]
            ]
            batch = left_padded_batch(prompts, tokenizer.pad_token_id, device)
            out = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **generate_kwargs,
            )
            new_tokens = out[:, batch["input_ids"].shape[1] :]
            answers += [
                text.strip()
                for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            ]
    finally:
        model.train(was_training)
    return answers
