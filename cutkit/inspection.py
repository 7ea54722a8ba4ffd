"""Which response tokens did a judgment flag? Per-token scores as a tidy DataFrame.

``score_tokens`` scores every response token of each record under the plain prompt and, for
negative records, the judged prompt, and marks the tokens CUT would push down (log p_judged -
log p_plain > log lambda, CUT_METHOD.md section 4), together with the record's gold error spans.

>>> scores = score_tokens(model, tokenizer, records, template="chat")        # doctest: +SKIP
>>> scores[scores.flagged][["record_id", "token", "log_ratio"]]               # doctest: +SKIP
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from cutkit.batching import build_examples
from cutkit.losses import detect_flagged
from cutkit.records import JudgmentRecord
from cutkit.scoring import score_examples
from cutkit.templates import PromptTemplate

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


def response_token_spans(tokenizer, response: str, n_tokens: int) -> list[tuple[int, int]]:
    """Character span (start, end) in ``response`` of each of its first ``n_tokens`` tokens
    (tokenized as :meth:`PromptTemplate.response_ids` does); the trailing EOS gets (len, len)."""
    encoded = tokenizer(response, add_special_tokens=False, return_offsets_mapping=True)
    spans = [tuple(span) for span in encoded["offset_mapping"]]
    spans.append((len(response), len(response)))  # EOS
    return spans[:n_tokens]


def score_tokens(
    model,
    tokenizer,
    records: Sequence[JudgmentRecord],
    *,
    template: str | PromptTemplate = "alpaca",
    threshold: float = 1.1,
    max_length: int = 2048,
    batch_size: int = 8,
    progress: bool = False,
) -> pd.DataFrame:
    """Score every response token of ``records``; one row per token.

    Columns: record_id, position (0-based response token index), token_id, token (its text in
    the response; the EOS token's own text for EOS), start and end (character span in the
    response), logp_plain, logp_judged (NaN for positive records, which have no judged context),
    log_ratio (logp_judged - logp_plain, natural log), flagged (log_ratio > log threshold),
    in_error_span (the token overlaps a gold error span; None when the record has no spans).
    """
    examples, _ = build_examples(records, tokenizer, template, max_length=max_length)
    scores = score_examples(
        model, examples, tokenizer.pad_token_id, batch_size=batch_size, progress=progress
    )
    frames = [
        _record_frame(tokenizer, record, s, threshold)
        for record, s in zip(records, scores, strict=True)
    ]
    if not frames:
        return pd.DataFrame(columns=TOKEN_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def _record_frame(tokenizer, record: JudgmentRecord, scores, threshold: float) -> pd.DataFrame:
    n = len(scores.response_ids)
    spans = response_token_spans(tokenizer, record.response, n)
    texts = [record.response[s:e] for s, e in spans]
    if (
        n
        and scores.response_ids[-1] == tokenizer.eos_token_id
        and spans[-1][0] == len(record.response)
    ):
        texts[-1] = tokenizer.eos_token
    plain = scores.logp_plain
    if record.is_negative:
        judged = scores.logp_first
        flagged = detect_flagged(
            torch.from_numpy(judged)[None],
            torch.from_numpy(plain)[None],
            torch.ones(1, n, dtype=torch.bool),
            threshold,
        )[0].numpy()
    else:
        judged = np.full(n, math.nan)
        flagged = np.zeros(n, dtype=bool)
    in_span = [
        any(
            s < gold_end and gold_start < max(e, s + 1)
            for gold_start, gold_end in record.error_spans
        )
        if record.error_spans
        else None
        for s, e in spans
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
            "flagged": flagged,
            "in_error_span": in_span,
        }
    )


DEFAULT_THRESHOLDS = (1.0, 1.05, 1.1, 1.2, 1.5, 2.0, 3.0)


def flags_at(scores: pd.DataFrame, threshold: float) -> pd.Series:
    """``log_ratio > log(threshold)`` per row (False where there is no judged context)."""
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0 (a probability ratio), got {threshold}")
    return scores["log_ratio"].astype(float) > math.log(threshold)


def detection_report(
    scores: pd.DataFrame, thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> pd.DataFrame:
    """How detection varies with lambda: one row per threshold.

    Columns: threshold, n_flagged (tokens flagged at that lambda), flagged_frac (share of the
    tokens with a judged context, i.e. of negative records), precision, recall, f1 (flagged
    against ``in_error_span``, over the rows with gold spans; NaN where undefined), computed by
    :func:`cutkit.evaluation.detection_scores` on the flags recomputed from ``log_ratio``.
    """
    from cutkit.evaluation import detection_scores  # evaluation imports this module

    judged = scores["log_ratio"].notna()
    rows = []
    for threshold in thresholds:
        flagged = flags_at(scores, threshold)
        quality = detection_scores(scores.assign(flagged=flagged))
        rows.append(
            {
                "threshold": float(threshold),
                "n_flagged": int(flagged.sum()),
                "flagged_frac": float(flagged[judged].mean()) if judged.any() else math.nan,
                "precision": quality["detect_precision"],
                "recall": quality["detect_recall"],
                "f1": quality["detect_f1"],
            }
        )
    return pd.DataFrame(
        rows, columns=["threshold", "n_flagged", "flagged_frac", "precision", "recall", "f1"]
    )


def plot_detection_report(report: pd.DataFrame):
    """Plotly figure: precision, recall, F1 and flagged share against lambda (log x axis)."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for column, dash in [
        ("precision", "solid"),
        ("recall", "solid"),
        ("f1", "solid"),
        ("flagged_frac", "dot"),
    ]:
        figure.add_trace(
            go.Scatter(
                x=report["threshold"],
                y=report[column],
                name=column,
                mode="lines+markers",
                line={"dash": dash},
            )
        )
    figure.update_layout(
        xaxis={"type": "log", "title": {"text": "threshold λ (p_judged / p_plain)"}},
        yaxis={"range": [0, 1.05], "title": {"text": "token-level score"}},
        title={"text": "Detection against gold error spans"},
        template="plotly_white",
        height=360,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
    )
    return figure


MODEL_COLOURS = ("#4d4d4d", "#e66101")


def _plotly_text(token: str) -> str:
    """Token text for plotly (which reads HTML entities): whitespace visible, escaped."""
    return html.escape(token.replace(" ", "·").replace("\n", "↵").replace("\t", "→"))


def plot_token_log_ratios(
    scores: pd.DataFrame | Mapping[str, pd.DataFrame], threshold: float = 1.1
):
    """Plotly bar chart of one record's log p_judged - log p_plain per token (nats), one bar
    series per model (a mapping label -> frame), dashed line at log(threshold), flagged bars
    opaque, gold error-span tokens shaded."""
    import plotly.graph_objects as go

    frames = {"model": scores} if isinstance(scores, pd.DataFrame) else dict(scores)
    log_threshold = math.log(threshold)
    figure = go.Figure()
    for (name, frame), colour in zip(frames.items(), MODEL_COLOURS, strict=False):
        opacity = [1.0 if flag else 0.4 for flag in flags_at(frame, threshold)]
        hover = "%{hovertext}<br>log ratio %{y:.4f}<extra>" + html.escape(name) + "</extra>"
        figure.add_trace(go.Bar(
            x=frame["position"], y=frame["log_ratio"], name=name, marker_color=colour,
            marker_opacity=opacity, hovertext=[_plotly_text(t) for t in frame["token"]],
            hovertemplate=hover,
        ))  # fmt: skip
    first = next(iter(frames.values()))
    for position, gold in zip(first["position"], first["in_error_span"], strict=True):
        if not pd.isna(gold) and gold:
            figure.add_vrect(x0=position - 0.5, x1=position + 0.5, fillcolor="#e69f00",
                             opacity=0.2, line_width=0, layer="below")  # fmt: skip
    figure.add_hline(y=log_threshold, line_dash="dash", line_color="#111",
                     annotation_text=f"log λ = {log_threshold:.3f}")  # fmt: skip
    if len(first) <= 80:
        figure.update_xaxes(tickvals=list(first["position"]), tickangle=-60,
                            ticktext=[_plotly_text(t) for t in first["token"]])  # fmt: skip
    if first["log_ratio"].isna().all():
        figure.add_annotation(text="positive record: no judged context", showarrow=False,
                              x=0.5, y=0.5, xref="paper", yref="paper")  # fmt: skip
    figure.update_layout(
        barmode="group", template="plotly_white", height=320, bargap=0.15,
        margin={"l": 60, "r": 20, "t": 30, "b": 80}, legend={"orientation": "h", "y": 1.12},
        yaxis={"title": {"text": "log p_judged − log p_plain (nats)"}},
    )  # fmt: skip
    return figure


def write_report(
    model,
    tokenizer,
    records: Sequence[JudgmentRecord],
    path,
    *,
    template: str | PromptTemplate = "alpaca",
    threshold: float = 1.1,
    max_length: int = 2048,
    batch_size: int = 8,
    progress: bool = False,
    title: str = "cutkit token inspection",
) -> pd.DataFrame:
    """Score ``records`` and save them as a standalone :class:`~cutkit.tokenview.TokenView` page
    at ``path``; returns the scores (one row per token, :func:`score_tokens` columns)."""
    from cutkit.tokenview import TokenView

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
    TokenView(scores, records, threshold=threshold).save(path, title=title)
    return scores
