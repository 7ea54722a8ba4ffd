"""Evaluation: does the model prefer the corrected response, and what does its detection flag?

``evaluate`` returns one row of figures for a model on held-out judgment records:

- ``pref_accuracy``: share of negatives with a refinement whose refinement has a higher mean token
  log-prob than the bad response, both under the plain prompt (the model prefers the fix);
- ``pref_margin``: mean of (mean log p refinement - mean log p bad response), nats per token;
- ``logp_bad`` / ``logp_refined``: mean token log-prob of the bad responses / refinements;
- ``logp_good``: mean token log-prob of the positive records' responses (the alignment tax: it
  should not fall);
- ``flagged_frac``: share of negative response tokens the judgment flags at ``threshold``;
- ``logp_error_tokens`` / ``logp_other_tokens``: mean plain-prompt log-prob of the bad responses'
  tokens inside / outside their gold error spans (CUT should lower the first, not the second);
- ``detect_precision`` / ``detect_recall`` / ``detect_f1``: flagged tokens against the records'
  gold ``error_spans`` (token level).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cutkit.batching import build_examples
from cutkit.inspection import score_tokens
from cutkit.records import JudgmentRecord
from cutkit.scoring import score_examples
from cutkit.templates import PromptTemplate


def mean_response_logprobs(
    model,
    tokenizer,
    pairs: Sequence[tuple[str, str]],
    *,
    template="alpaca",
    max_length=2048,
    batch_size=8,
) -> np.ndarray:
    """Mean token log-prob (nats) of each ``(instruction, response)`` under the plain prompt."""
    records = [
        JudgmentRecord(str(i), instruction, response, is_positive=True)
        for i, (instruction, response) in enumerate(pairs)
    ]
    examples, _ = build_examples(records, tokenizer, template, max_length=max_length)
    scores = score_examples(model, examples, tokenizer.pad_token_id, batch_size=batch_size)
    return np.array([s.logp_plain.mean() for s in scores])


def detection_scores(tokens: pd.DataFrame) -> dict[str, float]:
    """Token-level precision, recall and F1 of ``flagged`` against ``in_error_span`` over the rows
    of a :func:`cutkit.inspection.score_tokens` frame that have gold spans."""
    gold_known = tokens[tokens["in_error_span"].notna()]
    flagged = gold_known["flagged"].astype(bool)
    gold = gold_known["in_error_span"].astype(bool)
    true_pos = int((flagged & gold).sum())
    precision = true_pos / int(flagged.sum()) if flagged.any() else float("nan")
    recall = true_pos / int(gold.sum()) if gold.any() else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan")
    return {"detect_precision": precision, "detect_recall": recall, "detect_f1": f1}


def evaluate(
    model,
    tokenizer,
    records: Sequence[JudgmentRecord],
    *,
    template: str | PromptTemplate = "alpaca",
    threshold: float = 1.1,
    max_length: int = 2048,
    batch_size: int = 8,
) -> dict[str, float]:
    """One row of figures (module docstring) for ``model`` on ``records``."""
    negatives = [r for r in records if r.is_negative]
    with_fix = [r for r in negatives if r.refinement]
    result: dict[str, float] = {"n_records": len(records), "n_pairs": len(with_fix)}
    if with_fix:
        pairs = [(r.prompt_instruction, r.response) for r in with_fix]
        pairs += [(r.prompt_instruction, r.refinement) for r in with_fix]
        logps = mean_response_logprobs(
            model, tokenizer, pairs, template=template, max_length=max_length, batch_size=batch_size
        )
        bad, refined = logps[: len(with_fix)], logps[len(with_fix) :]
        result |= {
            "pref_accuracy": float((refined > bad).mean()),
            "pref_margin": float((refined - bad).mean()),
            "logp_bad": float(bad.mean()),
            "logp_refined": float(refined.mean()),
        }
    good = [(r.prompt_instruction, r.response) for r in records if r.is_positive]
    if good:
        result["logp_good"] = float(
            mean_response_logprobs(
                model,
                tokenizer,
                good,
                template=template,
                max_length=max_length,
                batch_size=batch_size,
            ).mean()
        )
    if negatives:
        tokens = score_tokens(
            model,
            tokenizer,
            negatives,
            template=template,
            threshold=threshold,
            max_length=max_length,
            batch_size=batch_size,
        )
        result["flagged_frac"] = float(tokens["flagged"].mean())
        result |= detection_scores(tokens)
        gold = tokens[tokens["in_error_span"].notna()]
        in_span = gold["in_error_span"].astype(bool)
        if in_span.any():
            result["logp_error_tokens"] = float(gold.loc[in_span, "logp_plain"].mean())
            result["logp_other_tokens"] = float(gold.loc[~in_span, "logp_plain"].mean())
    return result
