"""Which tokens did a judgment flag? Per-token scores as self-contained, deterministic HTML.

:class:`TokenView` draws a :func:`cutkit.eval.tokens.score_tokens` frame: each record's instruction
and judgment, then its response as coloured token spans.

- background: log p_judged - log p_plain on a diverging scale (white at 0; red: the judgment raised
  the token's probability, blue: lowered it; square-root scale clipped at +-``clip`` nats, so small
  ratios stay visible); grey for positive records, which have no judged context;
- outline: flagged at ``threshold`` (log ratio > log lambda, recomputed here, docs/method.md §3);
- underline: the token overlaps a gold error span;
- "·" a space, "→" a tab, "↵" a newline (followed by a real line break), "◌" a token holding only
  part of a character (byte-level BPE); special tokens such as EOS are boxed;
- tooltip (``title``): the token, p_plain, p_judged and their ratio.

Where records have gold error spans, each record's summary line adds the base rate (share of its
tokens in gold spans) and the AUC of the log ratio for the gold tokens (0.5: chance; independent of
lambda), and a line above the records gives them, with precision and recall at lambda, over all
shown records (:func:`cutkit.eval.detection.detection_quality`).

The HTML has no scripts, no external URLs and every text escaped (control and bidirectional
characters from the data shown as marked escapes, never raw: :mod:`cutkit.viz.escaping`); layout rules sit in one
``<style>`` block, the encodings above are inline styles (they survive JupyterLab's sanitizer in
untrusted notebooks, which drops ``<style>``). Identical input gives byte-identical HTML (nbval).

>>> TokenView(scores, records, threshold=1.2)            # renders in Jupyter   # doctest: +SKIP
>>> TokenView(scores, records).save("flags.html")                              # doctest: +SKIP
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cutkit.data.records import JudgmentRecord
from cutkit.train.detection import check_threshold, is_flagged, log_threshold
from cutkit.train.vocabulary import DEFAULT_THRESHOLD
from cutkit.viz.escaping import escape_attribute, escape_text, plain_escapes

RAISED_RGB = (214, 96, 77)  # judgment raised p(token)
LOWERED_RGB = (67, 147, 195)  # judgment lowered p(token)
NO_CONTEXT = "#e8e8e8"  # positive record: no judged context
LEGEND_STOPS = (-3.0, -1.0, -0.3, 0.0, 0.3, 1.0, 3.0)

STYLE = """\
.ck-tv{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;font-size:14px;color:#222;max-width:60em}
.ck-tv-legend{font-size:12px;color:#444;margin:4px 0 10px;line-height:2}
.ck-tv-legend .ck-tv-t{margin-right:2px}
.ck-tv-record{border-top:1px solid #ddd;padding:8px 0 10px}
.ck-tv-head{font-size:13px;color:#444;margin-bottom:4px}
.ck-tv-head code{font-size:13px;color:#000}
.ck-tv-badge{border-radius:3px;padding:0 5px;font-size:11px;color:#fff}
.ck-tv-neg{background:#b2182b}.ck-tv-pos{background:#4d9221}
.ck-tv-label{font-size:11px;font-weight:600;text-transform:uppercase;color:#777;margin-top:6px}
.ck-tv-text{white-space:pre-wrap;max-height:12em;overflow:auto;background:#fafafa;padding:3px 6px;border-radius:3px}
.ck-tv-tokens{line-height:2.1;word-break:break-word;padding:2px 0}
.ck-tv-t{padding:1px 1px;border-radius:2px}
.ck-tv-sp{font-family:monospace;font-size:11px;border:1px solid #999;border-radius:3px;padding:0 2px}
.ck-tv-gap{color:#999;font-style:italic}
.ck-tv-table{border-collapse:collapse;font-size:12px}
.ck-tv-table td,.ck-tv-table th{border-bottom:1px solid #eee;padding:1px 8px;text-align:right}
.ck-tv-table td.ck-tv-tok{text-align:left;font-family:monospace}
"""

# The encodings are inline styles (longhand properties), so they survive JupyterLab's sanitizer,
# which drops <style> blocks from the outputs of untrusted notebooks.
FLAGGED_CSS = "outline-style:solid;outline-width:2px;outline-color:#111"
GOLD_CSS = "border-bottom-style:solid;border-bottom-width:3px;border-bottom-color:#e69f00"
MARKER = '<span class="ck-tv-ws" style="color:#999">{}</span>'
_WHITESPACE = {" ": "·", "\t": "→", "\r": "␍"}


def ratio_colour(log_ratio: float, clip: float = 3.0) -> str:
    """Background colour (``#rrggbb``) of a log ratio in nats: white at 0, red > 0, blue < 0,
    full colour at ``|log_ratio| >= clip`` (square-root scale); grey for NaN (no judged context)."""
    if log_ratio is None or math.isnan(log_ratio):
        return NO_CONTEXT
    strength = math.sqrt(min(abs(log_ratio) / clip, 1.0))
    end = RAISED_RGB if log_ratio > 0 else LOWERED_RGB
    rgb = (round(255 + (channel - 255) * strength) for channel in end)
    return "#" + "".join(f"{c:02x}" for c in rgb)


def visible_text(text: str, *, line_breaks: bool = True) -> str:
    """HTML for ``text`` with whitespace made visible (module docstring); everything escaped.
    ``line_breaks``: follow each "↵" with a real ``<br>``."""
    parts = []
    for char in text:
        if char == "\n":
            parts.append(MARKER.format("↵") + ("<br>" if line_breaks else ""))
        elif char in _WHITESPACE or char.isspace():
            parts.append(MARKER.format(_WHITESPACE.get(char, "␣")))
        else:
            parts.append(escape_text(char))
    return "".join(parts)


def in_gold(value) -> bool:
    """True when an ``in_error_span`` cell says the token is in a gold span (None/NaN: unknown)."""
    return not pd.isna(value) and bool(value)


def _exp(x: float) -> float:
    with np.errstate(over="ignore"):
        return float(np.exp(x))


def token_tooltip(row, threshold: float) -> str:
    """Plain-text tooltip of one token row (escape it before putting it in an attribute)."""
    lines = [
        f"{row.token!r}  (id {row.token_id}, position {row.position})",
        f"p_plain = {_exp(row.logp_plain):.4g}",
    ]
    if math.isnan(row.log_ratio):
        lines.append("p_judged: none (positive record, no judged context)")
    else:
        lines += [
            f"p_judged = {_exp(row.logp_judged):.4g}",
            f"ratio = {_exp(row.log_ratio):.4g}  (log ratio {row.log_ratio:+.4f} nats)",
        ]
        if is_flagged(row.log_ratio, threshold):
            lines.append(f"FLAGGED at lambda = {threshold:g}")
    if in_gold(row.in_error_span):
        lines.append("in a gold error span")
    return "\n".join(lines)


def _attr(text: str) -> str:
    return escape_attribute(text)


def tokens_html(
    tokens: pd.DataFrame, threshold: float, *, response: str | None = None, clip: float = 3.0
) -> str:
    """The response of one record as token spans (rows of one record, any order).

    ``response`` (the record's text) lets characters no token covers, e.g. a truncated tail, show
    as grey "not scored" text."""
    parts, covered = [], 0
    for row in tokens.sort_values("position").itertuples(index=False):
        start, end, token = int(row.start), int(row.end), str(row.token)
        if response is not None and start > covered:
            parts.append(_gap(response[covered:start]))
        if start == end and token:  # special token (EOS) at the end of the text
            shown = f'<span class="ck-tv-sp">{escape_text(token)}</span>'
        else:
            # Byte-level BPE can split one character over several tokens that share its span.
            new = token[max(0, covered - start) :] if len(token) == end - start else token
            shown = visible_text(new) if new else MARKER.format("◌")
        flagged, gold = is_flagged(row.log_ratio, threshold), in_gold(row.in_error_span)
        parts.append(
            f"<span {_token_attributes(row.log_ratio, flagged, gold, clip)}"
            f' title="{_attr(token_tooltip(row, threshold))}">{shown}</span><wbr>'
        )
        covered = max(covered, end)
    if response is not None and covered < len(response):
        parts.append(_gap(response[covered:]))
    return f'<div class="ck-tv-tokens">{"".join(parts)}</div>'


def _token_attributes(log_ratio: float, flagged: bool, gold: bool, clip: float) -> str:
    """``class`` and inline ``style`` of a token span: colour, flagged outline, gold underline."""
    classes, style = "ck-tv-t", f"background-color:{ratio_colour(log_ratio, clip)}"
    if flagged:
        classes, style = classes + " ck-tv-f", f"{style};{FLAGGED_CSS}"
    if gold:
        classes, style = classes + " ck-tv-g", f"{style};{GOLD_CSS}"
    return f'class="{classes}" style="{style}"'


def _gap(text: str) -> str:
    return f'<span class="ck-tv-gap" title="not scored">{visible_text(text)}</span>'


def record_header_html(record: JudgmentRecord) -> str:
    """Earlier turns, instruction, input, judgment and refinement of a record (escaped), for
    above its tokens."""
    fields = [(f"Earlier turn ({m['role']})", m["content"]) for m in record.history]
    fields.append(("Instruction", record.instruction))
    if record.input:
        fields.append(("Input", record.input))
    judgment = record.judgment if record.judgment else "(none: positive record)"
    fields.append(("Judgment", judgment))
    out = [
        f'<div class="ck-tv-label">{name}</div><div class="ck-tv-text">{escape_text(text)}</div>'
        for name, text in fields
    ]
    if record.refinement:
        out.append(
            '<details><summary class="ck-tv-label">Refinement</summary>'
            f'<div class="ck-tv-text">{escape_text(record.refinement)}</div></details>'
        )
    return "".join(out)


def summary_html(record_id: str, tokens: pd.DataFrame, threshold: float) -> str:
    """One line: record id, negative/positive badge, token, flagged and gold-span counts, and for
    a negative record with gold spans its base rate and AUC (:func:`detection_html`)."""
    negative = bool(tokens["log_ratio"].notna().any())
    badge = (
        '<span class="ck-tv-badge ck-tv-neg">negative</span>'
        if negative
        else '<span class="ck-tv-badge ck-tv-pos">positive</span>'
    )
    n_flagged = int(is_flagged(tokens["log_ratio"], threshold).sum())
    line = (
        f"record <code>{escape_text(str(record_id))}</code> {badge} · {len(tokens)} tokens · "
        f"{n_flagged} flagged at λ = {threshold:g} (log λ = {log_threshold(threshold):.4f})"
    )
    n_gold = sum(in_gold(value) for value in tokens["in_error_span"])
    if tokens["in_error_span"].notna().any():
        line += f" · {n_gold} in gold error spans" + detection_html(tokens, threshold)
    return f'<div class="ck-tv-head">{line}</div>'


AUC_TOOLTIP = (
    "AUC of the log ratio for the gold error tokens: the chance that a token inside a gold span "
    "has a higher log p_judged - log p_plain than a token outside (ties count half). 0.5: the "
    "judgment ranks the errors no better than chance; 1: every error token above every other. "
    "It does not depend on lambda (precision and recall do)."
)


def detection_html(tokens: pd.DataFrame, threshold: float, *, details: bool = False) -> str:
    """`` · base rate … · AUC …`` of :func:`cutkit.eval.detection.detection_quality` over the tokens of
    negative records with gold spans ("" when there are none); ``details`` adds precision and
    recall at ``threshold``."""
    from cutkit.eval.detection import detection_quality  # inspection imports torch: only when drawn

    quality = detection_quality(tokens, threshold).iloc[0]
    if quality["n_tokens"] == 0:
        return ""
    auc = "n/a" if math.isnan(quality["auc"]) else f"{quality['auc']:.2f}"
    text = (
        f" · base rate {quality['base_rate']:.2f} · "
        f'<span class="ck-tv-auc" title="{_attr(AUC_TOOLTIP)}">AUC {auc}</span>'
    )
    if details:
        text += "".join(
            f" · {name} {'n/a' if math.isnan(quality[name]) else format(quality[name], '.2f')}"
            for name in ("precision", "recall")
        )
        text += f" at λ = {threshold:g}"
    return text


def legend_html(threshold: float, clip: float = 3.0) -> str:
    """Colour scale, outline, underline and whitespace markers, in one small line."""
    swatches = "".join(
        f"<span {_token_attributes(x, False, False, clip)}>{x:+g}</span>" for x in LEGEND_STOPS
    )
    return (
        f'<div class="ck-tv-legend">log p_judged − log p_plain (nats): {swatches} '
        "blue: the judgment lowered the token's probability, red: raised it · "
        f"<span {_token_attributes(math.nan, False, False, clip)}>positive</span> no judged "
        f"context · <span {_token_attributes(0.0, True, False, clip)}>flagged</span> ratio &gt; "
        f"λ = {threshold:g} · <span {_token_attributes(0.0, False, True, clip)}>gold</span> in a "
        f"gold error span · {MARKER.format('·')} space {MARKER.format('→')} tab "
        f"{MARKER.format('↵')} newline · hover a token for its probabilities</div>"
    )


def flagged_table_html(frames: Mapping[str, pd.DataFrame], threshold: float) -> str:
    """Table of the tokens flagged at ``threshold``, one block per labelled score frame."""
    show_label = len(frames) > 1
    head = "<th>model</th>" if show_label else ""
    rows = []
    for label, tokens in frames.items():
        flagged = tokens[is_flagged(tokens["log_ratio"], threshold)].sort_values("position")
        for row in flagged.itertuples(index=False):
            gold = (
                ""
                if pd.isna(row.in_error_span)
                else ("yes" if in_gold(row.in_error_span) else "no")
            )
            cells = f"<td>{escape_text(label)}</td>" if show_label else ""
            cells += (
                f"<td>{row.position}</td>"
                f'<td class="ck-tv-tok">{visible_text(str(row.token), line_breaks=False)}</td>'
                f"<td>{_exp(row.logp_plain):.4g}</td><td>{_exp(row.logp_judged):.4g}</td>"
                f"<td>{_exp(row.log_ratio):.4g}</td><td>{gold}</td>"
            )
            rows.append(f"<tr>{cells}</tr>")
    if not rows:
        return f'<div class="ck-tv-head">no token flagged at λ = {threshold:g}</div>'
    return (
        f'<table class="ck-tv-table"><tr>{head}<th>pos</th><th>token</th><th>p_plain</th>'
        f"<th>p_judged</th><th>ratio</th><th>gold</th></tr>{''.join(rows)}</table>"
    )


class TokenView:
    """Coloured token view of a :func:`~cutkit.eval.tokens.score_tokens` frame.

    Args:
        scores: one row per response token (score_tokens columns).
        records: the scored records; adds instruction and judgment above each response.
        threshold: lambda >= 1, finite; a token is outlined when log_ratio > log(threshold),
            recomputed from ``log_ratio`` (the frame's ``flagged`` column is ignored).
        record_ids: which records to draw, in this order (default: all, in frame order).
        clip: |log ratio| in nats at which the colour saturates.
        show_context: draw each record's instruction and judgment (when ``records`` are given).
        show_legend: draw the legend above the records.
    """

    def __init__(
        self,
        scores: pd.DataFrame,
        records: Sequence[JudgmentRecord] | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        record_ids: Iterable | None = None,
        *,
        clip: float = 3.0,
        show_context: bool = True,
        show_legend: bool = True,
    ):
        self.scores, self.threshold, self.clip = scores, check_threshold(threshold), clip
        self.records = {r.id: r for r in records or ()}
        self.show_context, self.show_legend = show_context, show_legend
        ids = scores["record_id"].astype(str)
        self._tokens = {key: frame for key, frame in scores.groupby(ids, sort=False)}
        known = list(self._tokens)
        self.record_ids = known if record_ids is None else [str(i) for i in record_ids]
        unknown = [i for i in self.record_ids if i not in self._tokens and i not in self.records]
        if unknown:
            raise ValueError(f"record ids {unknown} are neither in the scores nor in the records")

    def record_html(self, record_id: str) -> str:
        """One record: summary line, instruction and judgment, response tokens."""
        tokens = self._tokens.get(record_id, self.scores.iloc[:0])
        record = self.records.get(record_id)
        parts = [summary_html(record_id, tokens, self.threshold)]
        if record is not None and self.show_context:
            parts.append(record_header_html(record))
            parts.append('<div class="ck-tv-label">Response</div>')
        parts.append(
            tokens_html(
                tokens,
                self.threshold,
                clip=self.clip,
                response=record.response if record is not None else None,
            )
        )
        return f'<section class="ck-tv-record">{"".join(parts)}</section>'

    def overall_html(self) -> str:
        """Detection over all shown records (AUC, base rate, precision, recall), when two or more
        of them are negative records with gold spans; "" otherwise."""
        frames = [self._tokens[i] for i in self.record_ids if i in self._tokens]
        if not frames:
            return ""
        tokens = pd.concat(frames, ignore_index=True)
        gold = tokens[tokens["log_ratio"].notna() & tokens["in_error_span"].notna()]
        n_records = gold["record_id"].nunique()
        if n_records < 2:
            return ""
        return (
            f'<div class="ck-tv-head">detection over the {n_records} shown records with gold '
            f"spans ({len(gold)} tokens){detection_html(tokens, self.threshold, details=True)}</div>"
        )

    def body_html(self) -> str:
        """Legend, overall detection line and records, without the style block."""
        legend = legend_html(self.threshold, self.clip) if self.show_legend else ""
        records = "".join(self.record_html(i) for i in self.record_ids)
        return legend + self.overall_html() + records

    def to_html(self) -> str:
        """Self-contained HTML fragment (style block included)."""
        return f'<div class="ck-tv"><style>{STYLE}</style>{self.body_html()}</div>'

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:  # deterministic: notebooks store it as the text/plain output
        return f"TokenView({len(self.record_ids)} records, threshold={self.threshold:g})"

    def save(
        self, path: str | Path, *, title: str = "cutkit token inspection", note: str | None = None
    ) -> Path:
        """Write a standalone HTML page with all records; returns the path. ``note``: a line
        shown under the title (e.g. what the scoring truncated)."""
        path = Path(path)
        shown = f'<div class="ck-tv-head ck-tv-note">{escape_text(note)}</div>' if note else ""
        page = (
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(plain_escapes(title))}</title><style>{STYLE}</style></head>\n"
            f'<body><div class="ck-tv"><h2>{escape_text(title)}</h2>{shown}{self.body_html()}</div>'
            "</body></html>\n"
        )
        path.write_text(page, encoding="utf-8")
        return path
