"""Which response tokens did a judgment flag? Per-token scores as a tidy DataFrame.

``score_tokens`` scores every response token of each record under the plain prompt and, for
negative records, the judged prompt, and marks the tokens CUT would push down (log p_judged -
log p_plain > log lambda, docs/method.md §3), together with the record's gold error spans.
On such a frame, :func:`detection_quality` measures how well the log ratio finds the gold error
tokens (AUC, precision, recall; overall and per group) and :func:`push_balance` how hard CUT's
plain-prompt term pushes the bad responses down (flagged tokens) versus up (the others).

>>> scores = score_tokens(model, tokenizer, records, template="chat")        # doctest: +SKIP
>>> scores[scores.flagged][["record_id", "token", "log_ratio"]]               # doctest: +SKIP
>>> detection_quality(scores, groups=record_groups(records))                  # doctest: +SKIP
>>> push_balance(scores, threshold=1.1)["push_ratio"]                         # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cutkit.data.records import JudgmentRecord
from cutkit.data.templates import PromptTemplate
from cutkit.eval.scoring import score_examples
from cutkit.train.detection import check_threshold, is_flagged
from cutkit.train.examples import build_examples, overlaps_span, response_char_spans
from cutkit.train.vocabulary import DEFAULT_MAX_LENGTH, DEFAULT_TEMPLATE, DEFAULT_THRESHOLD

TOKEN_COLUMNS = [
    "record_id",
    "position",
    "token_id",
    "token",
    "start",
    "end",
    "logp_plain",
    "logp_judged",
    "log_ratio",
    "flagged",
    "in_error_span",
]


def score_tokens(
    model,
    tokenizer,
    records: Sequence[JudgmentRecord],
    *,
    template: str | PromptTemplate = DEFAULT_TEMPLATE,
    threshold: float = DEFAULT_THRESHOLD,
    max_length: int = DEFAULT_MAX_LENGTH,
    batch_size: int = 8,
    progress: bool = False,
) -> pd.DataFrame:
    """Score every response token of ``records``; one row per token.

    Columns: record_id, position (0-based response token index), token_id, token (its text in
    the response; the EOS token's own text for EOS), start and end (character span in the
    response), logp_plain, logp_judged (NaN for positive records, which have no judged context),
    log_ratio (logp_judged - logp_plain, natural log), flagged (log_ratio > log threshold),
    in_error_span (the token overlaps a gold error span; None when the record has no spans).

    A response longer than its budget (``max_length // 2`` tokens) is scored on its first tokens
    only; ``frame.attrs["truncation"]`` says how many records and tokens
    (:func:`truncation_text`).
    """
    check_threshold(threshold)  # before scoring, not after
    examples, report = build_examples(records, tokenizer, template, max_length=max_length)
    scores = score_examples(
        model, examples, tokenizer.pad_token_id, batch_size=batch_size, progress=progress
    )
    frames = [
        _record_frame(tokenizer, record, s, threshold)
        for record, s in zip(records, scores, strict=True)
    ]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TOKEN_COLUMNS)
    frame.attrs["truncation"] = {
        "n_records": report.n_response_truncated,
        "n_tokens": report.n_response_tokens_cut,
        "max_response_tokens": report.max_response_tokens,
        "n_scored": len(records),
    }
    return frame


def truncation_text(scores: pd.DataFrame) -> str | None:
    """ "N of M records had responses longer than K tokens: T tokens were not scored", for a
    :func:`score_tokens` frame whose scoring cut responses (None when none was cut)."""
    cut = scores.attrs.get("truncation") or {}
    if not cut.get("n_records"):
        return None
    return (
        f"{cut['n_records']} of {cut['n_scored']} records had responses longer than "
        f"{cut['max_response_tokens']} tokens (half of max_length): only their first "
        f"{cut['max_response_tokens']} tokens were scored, {cut['n_tokens']} tokens were not"
    )


def _record_frame(tokenizer, record: JudgmentRecord, scores, threshold: float) -> pd.DataFrame:
    n = len(scores.response_ids)
    spans = response_char_spans(tokenizer, record.response, n)
    texts = [record.response[s:e] for s, e in spans]
    if (
        n
        and scores.response_ids[-1] == tokenizer.eos_token_id
        and spans[-1][0] == len(record.response)
    ):
        texts[-1] = tokenizer.eos_token
    plain = scores.logp_plain
    judged = scores.logp_first if record.is_negative else np.full(n, math.nan)
    in_span = [
        overlaps_span(s, e, record.error_spans) if record.error_spans else None for s, e in spans
    ]
    return pd.DataFrame(
        {
            "record_id": record.id,
            "position": np.arange(n),
            "token_id": scores.response_ids,
            "token": texts,
            "start": [s for s, _ in spans],
            "end": [e for _, e in spans],
            "logp_plain": plain,
            "logp_judged": judged,
            "log_ratio": judged - plain,
            "flagged": is_flagged(judged - plain, threshold),
            "in_error_span": in_span,
        }
    )
