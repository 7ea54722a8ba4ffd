"""From tokenized CUT examples to padded (or packed) micro-batches.

The examples come from :mod:`cutkit.train.examples` (one per record: its response ids, its plain
prompt and, for a negative, its judged prompt over the same response ids; docs/method.md §10.1).
Their builders (:func:`build_examples`, :class:`BuildReport`, ...) lived here before and are
re-exported.

:class:`CUTCollator` lays a micro-batch of B examples out as R = B + (number of negatives) rows, with
no all-pad dummy rows for positives (docs/method.md §10.2)::

    row 0..B-1   the example's first context: judged prompt (negative) or plain prompt (positive)
    row B..R-1   the plain context of each negative example, in order

and returns ``input_ids``, ``attention_mask``, ``labels`` (R, T), right-padded, labels -100 outside
the response; ``negative`` (B,) bool; and ``plain_row`` (B,) long, the row holding each example's
plain context (its own row for positives).

With ``packing=True`` the same R contexts, in the same order, are laid end to end in ONE row with no
padding at all: ``input_ids``, ``labels`` and ``position_ids`` of shape (1, S), S = total context
tokens, position ids restarting at 0 where each context begins, and no ``attention_mask``. A model
given these attends within each context only (transformers turns restarting position ids into a
block-diagonal mask, or variable-length flash attention: :mod:`cutkit.train.attention`); "row r" then
means "context r". Scores, loss and gradients equal the padded layout's.

The examples' ``error_token_flags`` (gold error spans as one bool per response id, or None) are
stacked as ``error_token_flags`` (B, L), left-aligned like the response log-probs, when any example
has them: the oracle detector (``CUTConfig(detector="spans")``) trains on these flags.

Two optional example fields serve the baselines of :mod:`cutkit.train.objectives`: a negative example
whose ``plain_prompt_ids`` is None gets no plain row (its ``plain_row`` is its own row: objectives
without the Misalign term, e.g. Hindsight, never read it), and ``response_labels`` (same length as
``response_ids``, -100 where a token is context rather than target) leaves parts of the
continuation unscored (forward prediction's judgment marker).

>>> from cutkit.data.records import JudgmentRecord
>>> from cutkit.models import load_tokenizer
>>> tok = load_tokenizer()                                                    # doctest: +SKIP
>>> examples, report = build_examples([JudgmentRecord("1", "2+2?", "5", "Wrong: 4.")], tok)  # doctest: +SKIP
>>> batch = CUTCollator(tok.pad_token_id)(examples)                          # doctest: +SKIP
>>> batch["input_ids"].shape[0]   # judged row + plain row                   # doctest: +SKIP
2
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from cutkit.train.examples import BuildReport as BuildReport
from cutkit.train.examples import build_examples as build_examples
from cutkit.train.examples import check_judged_budget as check_judged_budget
from cutkit.train.examples import downsample_positives as downsample_positives
from cutkit.train.examples import error_token_flags as error_token_flags
from cutkit.train.examples import overlaps_span as overlaps_span
from cutkit.train.examples import response_budget_of as response_budget_of
from cutkit.train.examples import response_char_spans as response_char_spans
from cutkit.train.examples import tokenize_examples as tokenize_examples

IGNORE_INDEX = -100


def stack_flags(flags: Sequence[list[bool] | None]) -> torch.Tensor:
    """(B, L) bool, each example's flags left-aligned, False where an example has none."""
    width = max((len(f) for f in flags if f is not None), default=0)
    out = torch.zeros((len(flags), width), dtype=torch.bool)
    for row, f in enumerate(flags):
        if f:
            out[row, : len(f)] = torch.tensor(f)
    return out


@dataclass
class CUTCollator:
    """Pads a list of CUT examples into one micro-batch (layout in the module docstring).

    Args:
        pad_token_id: id written into padding positions (masks never depend on it, so a pad id that
            equals EOS is fine).
        pad_to_multiple_of: round the padded length up (e.g. 8 for tensor cores; padded layout only).
        packing: lay the contexts end to end in one row with restarting position ids, no padding
            (module docstring).
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None
    packing: bool = False

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        first = [
            (
                ex["judged_prompt_ids"] if ex["negative"] else ex["plain_prompt_ids"],
                ex["response_ids"],
                ex.get("response_labels"),
            )
            for ex in examples
        ]
        # a negative whose plain_prompt_ids is None has no plain row (see the module docstring)
        has_plain = torch.tensor(
            [bool(ex["negative"]) and ex["plain_prompt_ids"] is not None for ex in examples]
        )
        plain_of_negatives = [
            (ex["plain_prompt_ids"], ex["response_ids"], ex.get("response_labels"))
            for ex, plain in zip(examples, has_plain.tolist(), strict=True)
            if plain
        ]
        negative = torch.tensor([bool(ex["negative"]) for ex in examples])
        plain_row = torch.arange(len(examples))
        plain_row[has_plain] = len(examples) + torch.arange(int(has_plain.sum()))
        contexts = first + plain_of_negatives
        if self.packing:
            batch = pack_contexts(contexts)
        else:
            batch = pad_contexts(contexts, self.pad_token_id, self.pad_to_multiple_of)
        batch = {**batch, "negative": negative, "plain_row": plain_row}
        flags = [ex.get("error_token_flags") for ex in examples]
        if any(f is not None for f in flags):
            batch["error_token_flags"] = stack_flags(flags)
        return batch


def context_length(example: dict[str, Any]) -> int:
    """Tokens an example puts into a micro-batch: its first context, plus its plain context when
    it has one (a negative). What length-grouped batching sorts by."""
    first = example["judged_prompt_ids"] if example["negative"] else example["plain_prompt_ids"]
    n = len(first) + len(example["response_ids"])
    if example["negative"] and example["plain_prompt_ids"] is not None:
        n += len(example["plain_prompt_ids"]) + len(example["response_ids"])
    return n


def _context_targets(context: tuple) -> list[int]:
    """The label ids of a (prompt, response[, response labels]) context's response positions."""
    _, response, *rest = context
    targets = rest[0] if rest and rest[0] is not None else response
    if len(targets) != len(response):
        raise ValueError("response_labels must have one entry per response id")
    return list(targets)


def pack_contexts(contexts: Sequence[tuple]) -> dict[str, torch.Tensor]:
    """Lay (prompt ids, response ids[, response labels]) tuples end to end in one row.

    Returns ``input_ids``, ``labels`` and ``position_ids``, each (1, S) with S the total number of
    tokens; position ids count 0, 1, ... within each context; labels as in :func:`pad_contexts`,
    and always -100 on a context's first token (nothing in that context predicts it, as position 0
    of a padded row), so no context is ever scored from the one before it.
    """
    ids, labels, positions = [], [], []
    for context in contexts:
        prompt, response = context[0], context[1]
        n = len(prompt) + len(response)
        if n == 0:
            raise ValueError("cannot pack an empty context")
        context_labels = [IGNORE_INDEX] * len(prompt) + _context_targets(context)
        context_labels[0] = IGNORE_INDEX
        ids += [*prompt, *response]
        labels += context_labels
        positions += range(n)
    return {
        "input_ids": torch.tensor([ids]),
        "labels": torch.tensor([labels]),
        "position_ids": torch.tensor([positions]),
    }


def pad_contexts(
    contexts: Sequence[tuple],
    pad_token_id: int,
    pad_to_multiple_of: int | None = None,
) -> dict[str, torch.Tensor]:
    """Right-pad (prompt ids, response ids[, response labels]) tuples into ``input_ids``,
    ``attention_mask`` and ``labels`` of shape (R, T); labels are the response ids in place (or the
    given response labels, -100 for unscored continuation tokens) and -100 elsewhere."""
    length = max(len(c[0]) + len(c[1]) for c in contexts)
    if pad_to_multiple_of:
        length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
    input_ids = torch.full((len(contexts), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(contexts), length), dtype=torch.long)
    labels = torch.full((len(contexts), length), IGNORE_INDEX, dtype=torch.long)
    for row, context in enumerate(contexts):
        prompt, response = context[0], context[1]
        targets = _context_targets(context)
        n_prompt, n = len(prompt), len(prompt) + len(response)
        input_ids[row, :n] = torch.tensor([*prompt, *response])
        attention_mask[row, :n] = 1
        labels[row, n_prompt:n] = torch.tensor(targets)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
