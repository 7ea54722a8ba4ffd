"""Plotly figures of detection reports and per-token log ratios."""

from __future__ import annotations

import html
from collections.abc import Mapping

import pandas as pd

from cutkit.eval.detection import flags_at
from cutkit.train.detection import log_threshold
from cutkit.train.vocabulary import DEFAULT_THRESHOLD
from cutkit.viz.escaping import plain_escapes


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
    shown = token.replace(" ", "·").replace("\n", "↵").replace("\t", "→")
    return html.escape(plain_escapes(shown))


def plot_token_log_ratios(
    scores: pd.DataFrame | Mapping[str, pd.DataFrame], threshold: float = DEFAULT_THRESHOLD
):
    """Plotly bar chart of one record's log p_judged - log p_plain per token (nats), one bar
    series per model (a mapping label -> frame), dashed line at log(threshold), flagged bars
    opaque, gold error-span tokens shaded."""
    import plotly.graph_objects as go

    frames = {"model": scores} if isinstance(scores, pd.DataFrame) else dict(scores)
    log_lambda = log_threshold(threshold)
    figure = go.Figure()
    for (name, frame), colour in zip(frames.items(), MODEL_COLOURS, strict=False):
        opacity = [1.0 if flag else 0.4 for flag in flags_at(frame, threshold)]
        hover = (
            "%{hovertext}<br>log ratio %{y:.4f}<extra>"
            + html.escape(plain_escapes(name))
            + "</extra>"
        )
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
    figure.add_hline(y=log_lambda, line_dash="dash", line_color="#111",
                     annotation_text=f"log λ = {log_lambda:.3f}")  # fmt: skip
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
