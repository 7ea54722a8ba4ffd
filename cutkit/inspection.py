"""Which response tokens did a judgment flag? Per-token scores as a tidy DataFrame.

``score_tokens`` scores every response token of each record under the plain prompt and, for
negative records, the judged prompt, and marks the tokens CUT would push down (log p_judged -
log p_plain > log lambda, CUT_METHOD.md section 4), together with the record's gold error spans.
On such a frame, :func:`detection_quality` measures how well the log ratio finds the gold error
tokens (AUC, precision, recall; overall and per group) and :func:`push_balance` how hard CUT's
plain-prompt term pushes the bad responses down (flagged tokens) versus up (the others).

>>> scores = score_tokens(model, tokenizer, records, template="chat")        # doctest: +SKIP
>>> scores[scores.flagged][["record_id", "token", "log_ratio"]]               # doctest: +SKIP
>>> detection_quality(scores, groups=record_groups(records))                  # doctest: +SKIP
>>> push_balance(scores, threshold=1.1)["push_ratio"]                         # doctest: +SKIP
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from cutkit.batching import build_examples, overlaps_span, response_char_spans
from cutkit.losses import UNFLAGGED, detect_flagged, log1mexp
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
    spans = response_char_spans(tokenizer, record.response, n)
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


def rank_auc(scores, labels) -> float:
    """ROC AUC of ``scores`` for the boolean ``labels``: the chance that a random positive scores
    higher than a random negative, ties counted half (the Mann-Whitney U / (n_pos * n_neg)).

    Computed from average ranks; rows whose score is NaN are left out. NaN when either class is
    empty."""
    values = np.asarray(scores, dtype=float)
    positive = np.asarray(labels, dtype=bool)
    if values.shape != positive.shape:
        raise ValueError(f"scores {values.shape} and labels {positive.shape} differ in shape")
    keep = ~np.isnan(values)
    values, positive = values[keep], positive[keep]
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = pd.Series(values).rank(method="average").to_numpy()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def record_groups(records: Sequence[JudgmentRecord]) -> dict[str, str]:
    """record id -> group name for :func:`detection_quality`: ``meta["kind"]`` (bundled records),
    else ``meta["task"]["family"]`` (online records), else ``meta["family"]``, else ``"all"``."""
    groups = {}
    for record in records:
        meta = record.meta or {}
        task = meta.get("task")
        family = task.get("family") if isinstance(task, Mapping) else None
        groups[record.id] = str(meta.get("kind") or family or meta.get("family") or "all")
    return groups


QUALITY_COLUMNS = [
    "group",
    "n_records",
    "n_tokens",
    "base_rate",
    "auc",
    "precision",
    "recall",
    "f1",
    "flagged_frac",
]


def _gold_mask(tokens: pd.DataFrame) -> np.ndarray:
    """Rows with a judged context (negative records) whose record has gold error spans."""
    return (tokens["log_ratio"].notna() & tokens["in_error_span"].notna()).to_numpy(dtype=bool)


def _in_gold(values) -> np.ndarray:
    """``in_error_span`` cells as bools (None/NaN: not in a gold span)."""
    return np.array([not pd.isna(v) and bool(v) for v in values], dtype=bool)


def _quality_row(group: str, gold: pd.DataFrame, threshold: float) -> dict:
    from cutkit.evaluation import detection_scores  # evaluation imports this module

    in_span = _in_gold(gold["in_error_span"])
    flagged = flags_at(gold, threshold).to_numpy(dtype=bool)
    scores = detection_scores(gold.assign(flagged=flagged))
    return {
        "group": group,
        "n_records": int(gold["record_id"].nunique()),
        "n_tokens": len(gold),
        "base_rate": float(in_span.mean()) if len(gold) else math.nan,
        "auc": rank_auc(gold["log_ratio"], in_span),
        "precision": scores["detect_precision"],
        "recall": scores["detect_recall"],
        "f1": scores["detect_f1"],
        "flagged_frac": float(flagged.mean()) if len(gold) else math.nan,
    }


def detection_quality(
    tokens: pd.DataFrame, threshold: float = 1.1, *, groups: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """How well the judgment's log ratio finds the gold error tokens: row "all", then one row per
    group (sorted by name).

    Over the tokens of negative records that have gold ``error_spans`` (a :func:`score_tokens`
    frame): n_records, n_tokens, base_rate (share of them inside a gold span: the precision of
    flagging at random), auc (:func:`rank_auc` of ``log_ratio`` for ``in_error_span``; 0.5 is
    chance, 1 a perfect ranking; it does not depend on lambda), precision, recall, f1 and
    flagged_frac of the flags at ``threshold`` (recomputed from ``log_ratio``, scored by
    :func:`cutkit.evaluation.detection_scores`). NaN where undefined (e.g. no gold spans).

    ``groups`` maps record id -> group name (e.g. :func:`record_groups`); records it leaves out or
    maps to ``"all"`` count only in the "all" row. A group of negative records without gold spans
    gets a row with n_records = 0.
    """
    gold = _gold_mask(tokens)
    rows = [_quality_row("all", tokens[gold], threshold)]
    if groups:
        names = np.array([groups.get(i) for i in tokens["record_id"].astype(str)], dtype=object)
        judged = tokens["log_ratio"].notna().to_numpy(dtype=bool)
        for name in sorted({n for n in names[judged] if n is not None and n != "all"}):
            rows.append(_quality_row(name, tokens[gold & (names == name)], threshold))
    return pd.DataFrame(rows, columns=QUALITY_COLUMNS)


def push_balance(
    tokens: pd.DataFrame,
    threshold: float = 1.1,
    *,
    ul_weight: float = 1.0,
    unflagged: str = "mle",
    gamma: float = 0.0,
) -> dict[str, float]:
    """How hard CUT's plain-prompt (Misalign) term pushes the bad responses down versus up.

    Over the tokens of negative records (a :func:`score_tokens` frame), each token flagged at
    ``threshold`` gets unlikelihood -alpha log(1 - p), whose gradient weight on log p is
    ``push_down`` = alpha p / (1 - p) (p = exp(logp_plain); alpha = ``ul_weight``, times
    p_judged^gamma when ``gamma`` != 0), and each unflagged token gets likelihood, weight
    ``push_up`` = 1 (0 with ``unflagged="ignore"``). So ``push_ratio`` = push_down / push_up < 1
    means that, on balance, this term raises the probability of the bad responses rather than
    lowering it (before the judged-prompt likelihood, which raises them given their judgment).

    Returns: push_down, push_up, push_ratio (NaN when push_up is 0), n_flagged, n_tokens, and,
    when some of the records have gold error spans, push_down_error and push_up_error: the same
    two masses over the tokens inside gold spans.
    """
    if unflagged not in UNFLAGGED:
        raise ValueError(f"unflagged must be one of {UNFLAGGED}, got {unflagged!r}")
    judged = tokens[tokens["log_ratio"].notna().to_numpy(dtype=bool)]
    flagged = flags_at(judged, threshold).to_numpy(dtype=bool)
    logp = torch.tensor(judged["logp_plain"].to_numpy(dtype=float), dtype=torch.float64)
    odds = torch.exp(logp - log1mexp(logp)).numpy()  # p / (1 - p), stable near p = 1
    weight = np.full(len(judged), float(ul_weight))
    if gamma != 0:
        weight = weight * np.exp(gamma * judged["logp_judged"].to_numpy(dtype=float))
    down = np.where(flagged, weight * odds, 0.0)
    up = (~flagged).astype(float) if unflagged == "mle" else np.zeros(len(judged))
    push_down, push_up = float(down.sum()), float(up.sum())
    result: dict[str, float] = {
        "push_down": push_down,
        "push_up": push_up,
        "push_ratio": push_down / push_up if push_up > 0 else math.nan,
        "n_flagged": int(flagged.sum()),
        "n_tokens": len(judged),
    }
    if judged["in_error_span"].notna().any():
        error = _in_gold(judged["in_error_span"])
        result["push_down_error"] = float(down[error].sum())
        result["push_up_error"] = float(up[error].sum())
    return result


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
