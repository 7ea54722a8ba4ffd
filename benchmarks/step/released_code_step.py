"""A faithful re-implementation of the released CUT code's training step, for benchmarks only.

What the released implementation (github.com/wwxu21/CUT) does per micro-batch of R records, and
what cutkit avoids (docs/method.md §10):

- the batch is doubled: rows 0..R-1 hold each record's first context (judged prompt for a negative,
  plain prompt for a positive), rows R..2R-1 the plain context of each negative and an all-pad
  dummy row for each positive; all 2R rows are right-padded to the longest one;
- the model returns the logits of every position of every row, (2R, T, V);
- the head takes ``softmax`` of the fp32 logits, then ``log`` of it for the likelihood term (NLL on
  the first half), and gathers probabilities for the unlikelihood term, pairing the judged and
  plain rows' response tokens in order (each half masked by its own labels); a negative's token is
  flagged when p_judged / p_plain > threshold, then contributes -alpha * log(1 - p_plain) (with
  +1e-5 where 1 - p == 0), other tokens -log p_plain; loss = (likelihood + unlikelihood) / 2.

This is the "official" normalisation of :func:`cutkit.train.losses.cut_loss`: on the same records both
give the same loss (tests/test_benchmarks.py checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from cutkit.train.batching import pad_contexts

IGNORE_INDEX = -100


def released_collate(examples: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, Tensor]:
    """CUT examples -> the released code's doubled batch: input_ids, attention_mask, labels (2R, T)
    right-padded, and ``negative`` (R,) bool. Positives get an all-pad dummy plain row."""
    first = [
        (ex["judged_prompt_ids"] if ex["negative"] else ex["plain_prompt_ids"], ex["response_ids"])
        for ex in examples
    ]
    # the dummy row is an empty context: all padding, all ignored, but computed all the same
    plain = [
        (ex["plain_prompt_ids"], ex["response_ids"]) if ex["negative"] else ([], [])
        for ex in examples
    ]
    batch = pad_contexts(first + plain, pad_token_id)
    negative = torch.tensor([bool(ex["negative"]) for ex in examples])
    return {**batch, "negative": negative}


def released_loss(
    logits: Tensor, labels: Tensor, negative: Tensor, threshold: float = 1.1, alpha: float = 1.0
) -> Tensor:
    """The released head: logits (2R, T, V) of the doubled batch, labels (2R, T), negative (R,)."""
    R = labels.shape[0] // 2
    # .float() as released; an fp64 model (the equivalence test) stays fp64
    probs = torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=2)
    V = probs.shape[-1]
    shift_probs = probs[:, :-1].contiguous()  # (2R, T-1, V)
    shift_labels = labels[:, 1:]  # (2R, T-1)
    like = F.nll_loss(torch.log(shift_probs[:R].view(-1, V)), shift_labels[:R].reshape(-1))
    if not negative.any():
        return like
    clamped = shift_labels.clamp(0, V - 1)[..., None]
    p_first = shift_probs[:R].gather(-1, clamped[:R]).squeeze(-1)[negative]  # (n_neg, T-1)
    p_plain = shift_probs[R:].gather(-1, clamped[R:]).squeeze(-1)[negative]
    # each half keeps its own scored positions: the k-th response token of the judged row meets
    # the k-th of the plain row (row-major flattening), whatever the two prompt lengths
    p_first = p_first[shift_labels[:R][negative] != IGNORE_INDEX]
    p_plain = p_plain[shift_labels[R:][negative] != IGNORE_INDEX]
    flagged = (p_first / p_plain).detach() > threshold
    p_plain = torch.where(flagged, 1 - p_plain, p_plain)
    p_plain = torch.where(p_plain == 0, p_plain + 1e-5, p_plain)
    logp = torch.log(p_plain)
    logp = torch.where(flagged, alpha * logp, logp)
    return (like + -logp.sum() / logp.shape[0]) / 2


def released_step(model, batch: dict[str, Tensor]) -> Tensor:
    """Forward (full logits of all 2R rows) + the released head + backward; returns the loss."""
    logits = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
    ).logits
    loss = released_loss(logits, batch["labels"], batch["negative"])
    loss.backward()
    return loss.detach()
