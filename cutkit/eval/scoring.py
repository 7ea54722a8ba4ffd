"""Batched, gradient-free scoring of CUT examples: per-token log-probs in both contexts.

The one place inspection and evaluation get their numbers from; it reuses the training path
(:class:`~cutkit.train.batching.CUTCollator` and :func:`~cutkit.train.logprobs.label_logprobs_left_aligned`), so what
a user inspects is exactly what the loss sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cutkit.train.batching import CUTCollator
from cutkit.train.logprobs import ChunkSize, label_logprobs_left_aligned


@dataclass
class ExampleScores:
    """Per-response-token log-probs of one example (natural log, one value per response token).

    ``logp_first`` is the example's first context (judged prompt for a negative, plain for a
    positive); ``logp_plain`` the plain context (equal to ``logp_first`` for a positive).
    """

    id: str
    negative: bool
    response_ids: list[int]
    logp_first: np.ndarray  # (n,) float64
    logp_plain: np.ndarray  # (n,) float64

    @property
    def logp_judged(self) -> np.ndarray | None:
        return self.logp_first if self.negative else None


@torch.no_grad()
def score_examples(
    model,
    examples: Sequence[dict[str, Any]],
    pad_token_id: int,
    *,
    batch_size: int = 8,
    chunk_size: ChunkSize = "auto",
    progress: bool = False,
) -> list[ExampleScores]:
    """Score examples from :func:`cutkit.train.batching.build_examples` in eval mode, without gradients.

    Examples are batched by length (fewer pad tokens) and returned in their input order.
    ``chunk_size`` is the output layer's rows per chunk, as for
    :func:`~cutkit.train.logprobs.label_logprobs_left_aligned` (``"auto"`` follows the vocabulary).
    """
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    collate = CUTCollator(pad_token_id)
    lengths = [
        len(ex["response_ids"]) + len(ex["judged_prompt_ids"] or ex["plain_prompt_ids"])
        for ex in examples
    ]
    order = np.argsort(lengths, kind="stable")
    results: list[ExampleScores | None] = [None] * len(examples)
    starts = range(0, len(examples), batch_size)
    try:
        for start in tqdm(starts, desc="scoring", disable=not progress, unit="batch"):
            indices = order[start : start + batch_size]
            batch = collate([examples[i] for i in indices])
            logp, mask = label_logprobs_left_aligned(
                model,
                batch["input_ids"].to(device),
                batch["attention_mask"].to(device),
                batch["labels"].to(device),
                chunk_size=chunk_size,
            )  # (R, Lr)
            logp, mask = logp.double().cpu().numpy(), mask.cpu().numpy()
            for row, index in enumerate(indices):
                example = examples[index]
                n = int(mask[row].sum())
                plain_row = int(batch["plain_row"][row])
                results[index] = ExampleScores(
                    id=example["id"],
                    negative=bool(example["negative"]),
                    response_ids=list(example["response_ids"]),
                    logp_first=logp[row, :n],
                    logp_plain=logp[plain_row, :n],
                )
    finally:
        model.train(was_training)
    return results
