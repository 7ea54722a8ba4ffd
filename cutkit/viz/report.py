"""A self-contained HTML token report of the tokens each judgment flags."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from cutkit.data.records import JudgmentRecord
from cutkit.data.templates import PromptTemplate
from cutkit.eval.tokens import score_tokens, truncation_text
from cutkit.train.vocabulary import DEFAULT_MAX_LENGTH, DEFAULT_TEMPLATE, DEFAULT_THRESHOLD


def write_report(
    model,
    tokenizer,
    records: Sequence[JudgmentRecord],
    path,
    *,
    template: str | PromptTemplate = DEFAULT_TEMPLATE,
    threshold: float = DEFAULT_THRESHOLD,
    max_length: int = DEFAULT_MAX_LENGTH,
    batch_size: int = 8,
    progress: bool = False,
    title: str = "cutkit token inspection",
) -> pd.DataFrame:
    """Score ``records`` and save them as a standalone :class:`~cutkit.viz.tokenview.TokenView` page
    at ``path``; returns the scores (one row per token, :func:`score_tokens` columns). A page
    whose scoring cut long responses says so above the records (:func:`truncation_text`)."""
    from cutkit.viz.tokenview import TokenView

    scores = score_tokens(
        model,
        tokenizer,
        records,
        template=template,
        threshold=threshold,
        max_length=max_length,
        batch_size=batch_size,
        progress=progress,
    )
    note = truncation_text(scores)
    if note:
        note = f"{note}; raise max_length to score them whole"
    TokenView(scores, records, threshold=threshold).save(path, title=title, note=note)
    return scores
