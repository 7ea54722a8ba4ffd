"""Greedy (or sampled) answers to instructions, batched, under the same prompt template as training.

:func:`generate_answers` (and :func:`generate_from_ids` with ``return_status=True``) also say for
each answer whether it *finished*, i.e. the model produced an EOS token, or was cut off at
``max_new_tokens``: a cut-off answer is not a complete response, and training on it with the EOS
the prompt template appends would teach the model an ending it never wrote.

>>> # answers = generate_responses(model, tokenizer, ["Name a prime number."], template="chat")
>>> # [g.finished for g in generate_answers(model, tokenizer, ["Hi"], max_new_tokens=4)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from cutkit.data.templates import PromptTemplate, get_template
from cutkit.train.vocabulary import DEFAULT_TEMPLATE


@dataclass(frozen=True)
class Generation:
    """One generated answer.

    Attributes:
        text: the decoded continuation (special tokens dropped, surrounding space stripped).
        finished: True when the model produced an EOS token (the answer ended by itself); False
            when it was cut off at ``max_new_tokens`` (truncated).
        n_tokens: tokens generated, up to and including the EOS of a finished answer (pad tokens
            after it not counted).
    """

    text: str
    finished: bool
    n_tokens: int

    @property
    def truncated(self) -> bool:
        """True for an answer cut off at the token limit (``not finished``)."""
        return not self.finished


def eos_token_ids(model, tokenizer) -> list[int]:
    """Every end-of-sequence id: ``tokenizer.eos_token_id`` and the model's
    ``generation_config.eos_token_id`` (an id or a list), without duplicates, tokenizer's first."""
    ids: list[int] = []
    candidates = [getattr(tokenizer, "eos_token_id", None)]
    config = getattr(model, "generation_config", None)
    configured = getattr(config, "eos_token_id", None) if config is not None else None
    candidates += list(configured) if isinstance(configured, list | tuple) else [configured]
    for token_id in candidates:
        if token_id is not None and int(token_id) not in ids:
            ids.append(int(token_id))
    return ids


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


def _status(new_tokens: torch.Tensor, eos_ids: Sequence[int]) -> list[tuple[bool, int]]:
    """``(finished, n_tokens)`` of each row of generated tokens: finished iff an EOS id occurs
    among them; n_tokens up to and including the first EOS (else the row's full width)."""
    width = new_tokens.shape[1]
    if not eos_ids or width == 0:
        return [(False, width)] * new_tokens.shape[0]
    is_eos = torch.isin(new_tokens, torch.tensor(list(eos_ids), device=new_tokens.device))
    first = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1), width)
    return [(n < width, n + 1 if n < width else width) for n in first.tolist()]


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
    return_status: bool = False,
    **generate_kwargs,
) -> list[str] | list[Generation]:
    """Continue prompts given as token ids; one decoded continuation per prompt, in input order
    (special tokens dropped, surrounding space stripped).

    Generation stops at any EOS id (:func:`eos_token_ids`: the tokenizer's and the model's
    generation config's). A row of a batch that finished early is padded after its EOS; the
    answer counts as finished when an EOS id occurs among its new tokens.

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
        return_status: return :class:`Generation` objects (text, finished, n_tokens) instead of
            plain strings.
        **generate_kwargs: passed to ``model.generate`` (e.g. ``temperature``, ``top_p``).
    """
    order = list(range(len(prompt_ids)))
    if longest_first:
        order.sort(key=lambda i: -len(prompt_ids[i]))
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    if desc is not None:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=desc, unit="batch")
    eos_ids = eos_token_ids(model, tokenizer)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[Generation | None] = [None] * len(prompt_ids)
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
                eos_token_id=eos_ids[0] if len(eos_ids) == 1 else (eos_ids or None),
                **generate_kwargs,
            )
            new_tokens = generated[:, inputs["input_ids"].shape[1] :]
            status = _status(new_tokens, eos_ids)
            texts = tokenizer.batch_decode(
                [row[:n].tolist() for row, (_, n) in zip(new_tokens, status, strict=True)],
                skip_special_tokens=True,
            )
            for i, text, (finished, n) in zip(batch, texts, status, strict=True):
                out[i] = Generation(text.strip(), finished, n)
    finally:
        model.train(was_training)
    if return_status:
        return out  # type: ignore[return-value]
    return [g.text for g in out]  # type: ignore[union-attr]


def generate_answers(
    model,
    tokenizer,
    instructions: Sequence[str],
    *,
    template: str | PromptTemplate = DEFAULT_TEMPLATE,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    do_sample: bool = False,
    progress: bool = False,
    histories: Sequence[Sequence[Mapping[str, str]]] | None = None,
    **generate_kwargs,
) -> list[Generation]:
    """One :class:`Generation` (text, finished, n_tokens) per instruction, rendered with
    ``template.plain`` (as in training) and continued by :func:`generate_from_ids` in input
    order.

    Args:
        model, tokenizer: as for :func:`generate_from_ids`.
        instructions: the instructions.
        template: "alpaca", "chat" or a PromptTemplate.
        max_new_tokens, batch_size, do_sample, **generate_kwargs: as for :func:`generate_from_ids`.
        progress: show a tqdm bar over batches.
        histories: per instruction, the conversation's earlier messages (chat template), as a
            conversational record's ``history``; None: single-turn.
    """
    template = get_template(template, tokenizer)
    histories = histories if histories is not None else [()] * len(instructions)
    prompts = [
        template.prompt_ids(tokenizer, template.plain(text, history))
        for text, history in zip(instructions, histories, strict=True)
    ]
    return generate_from_ids(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        do_sample=do_sample,
        desc="generating" if progress else None,
        return_status=True,
        **generate_kwargs,
    )


def generate_responses(model, tokenizer, instructions: Sequence[str], **options) -> list[str]:
    """The texts of :func:`generate_answers`, which takes the same arguments (``template``,
    ``max_new_tokens``, ``batch_size``, ``do_sample``, ``progress``, generate keywords): one
    decoded response per instruction, without whether it finished or was cut off at
    ``max_new_tokens`` (:func:`generate_answers` reports that)."""
    answers = generate_answers(model, tokenizer, instructions, **options)
    return [answer.text for answer in answers]
