"""Interactive token inspection in JupyterLab: pick a record, move lambda, switch template, compare models.

:class:`TokenInspector` is an ipywidgets app over :func:`cutkit.eval.tokens.score_tokens` and
:mod:`cutkit.viz.tokenview`::

    search [.........]  record [q17 · Name the capital of ... v]
    λ  1.0 ---o------ 10      template [alpaca|chat]
    status line
    legend, instruction, judgment
    token view (model)  |  token view (compare model)       side by side when compare_model is set
                  (each under a summary line: counts and, with gold spans, base rate and AUC)
    bar chart of log p_judged - log p_plain per token, dashed line at log λ, gold spans shaded
    table of the flagged tokens

Records are scored lazily when first shown and cached per (model, template, record); moving lambda
only redraws. The chart is a plotly figure shown in an ``ipywidgets.Output`` through the plotly
mimetype (rendered by JupyterLab's bundled plotly extension; no anywidget needed). The inspector can
be driven without a browser (``select``, ``set_threshold``, ``set_template``), and outside a kernel
it degrades to the static :class:`~cutkit.viz.tokenview.TokenView` HTML.

>>> inspector = TokenInspector(model, tokenizer, records, compare_model=cut_model)  # doctest: +SKIP
>>> inspector                                              # the app, in a notebook # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from contextlib import contextmanager

import pandas as pd

from cutkit._checks import check_number
from cutkit.data.records import JudgmentRecord
from cutkit.data.templates import TEMPLATES
from cutkit.eval.tokens import score_tokens
from cutkit.train.detection import check_threshold, log_threshold
from cutkit.train.settings import COUNT_WHY, check_max_length
from cutkit.train.vocabulary import DEFAULT_MAX_LENGTH, DEFAULT_TEMPLATE, DEFAULT_THRESHOLD
from cutkit.viz.escaping import escape_text
from cutkit.viz.plots import plot_token_log_ratios
from cutkit.viz.tokenview import (
    STYLE,
    TokenView,
    flagged_table_html,
    legend_html,
    record_header_html,
    summary_html,
    tokens_html,
)


def in_kernel() -> bool:
    """True inside a running IPython kernel (where widgets can have a front-end)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class TokenInspector:
    """Explore which response tokens each judgment flags, for one or two models.

    Args:
        model, tokenizer: the model to inspect (any causal LM cutkit can score) and its tokenizer.
        records: judgment records (junk records raise when scored: load with load_records).
        template: "alpaca" or "chat" (offered only when the tokenizer has a chat template).
        threshold: initial lambda, finite and >= 1 (the slider spans 1..10 on a log scale).
        compare_model: an optional second model, shown side by side (e.g. base vs CUT adapter).
        label, compare_label: names of the two models in the panels, chart and table.
        batch_size, max_length: passed to :func:`~cutkit.eval.tokens.score_tokens` (an integer
            >= 1, and one >= 64: ValueError with the reason otherwise).
        clip: |log ratio| in nats at which token colours saturate, finite and > 0.
    """

    def __init__(
        self,
        model,
        tokenizer,
        records: Sequence[JudgmentRecord],
        *,
        template: str = DEFAULT_TEMPLATE,
        threshold: float = DEFAULT_THRESHOLD,
        compare_model=None,
        label: str = "model",
        compare_label: str = "compare model",
        batch_size: int = 8,
        max_length: int = DEFAULT_MAX_LENGTH,
        clip: float = 3.0,
    ):
        import ipywidgets as w

        threshold = check_threshold(threshold)
        batch_size = check_number("batch_size", batch_size, minimum=1, integer=True, why=COUNT_WHY)
        max_length = check_max_length(max_length)
        clip = check_number(
            "clip",
            clip,
            minimum=0,
            min_open=True,
            why="the |log ratio| in nats at which token colours saturate",
        )
        self.records = list(records)
        if not self.records:
            raise ValueError("TokenInspector needs at least one record")
        self._by_id = {r.id: r for r in self.records}
        self.tokenizer, self.batch_size, self.max_length = tokenizer, batch_size, max_length
        self.clip = clip
        self.models = {label: model}
        if compare_model is not None:
            if compare_label == label:
                raise ValueError("label and compare_label must differ")
            self.models[compare_label] = compare_model
        templates = [
            t for t in TEMPLATES if t != "chat" or getattr(tokenizer, "chat_template", None)
        ]
        if template not in templates:
            raise ValueError(f"template {template!r} is not available; choose one of {templates}")
        self._cache: dict[tuple[str, str], dict[str, pd.DataFrame]] = {}
        self._quiet = False
        self.figure = None  # plotly Figure of the current record

        self._search = w.Text(
            placeholder="id, instruction, judgment or response text",
            description="search",
            layout=w.Layout(width="40%"),
        )
        self._picker = w.Dropdown(
            options=self._options(self.records), description="record", layout=w.Layout(width="58%")
        )
        self._slider = w.FloatLogSlider(
            value=threshold,
            base=10,
            min=0.0,
            max=1.0,
            step=0.005,
            description="λ",
            readout_format=".3g",
            continuous_update=False,
            layout=w.Layout(width="50%"),
        )
        self._toggle = w.ToggleButtons(options=templates, value=template, description="template")
        self._status = w.HTML()
        self._context = w.HTML()
        self._panels = {name: w.HTML() for name in self.models}
        self._chart = w.Output()
        self._table = w.HTML()
        panel_width = f"{100 // len(self.models) - 1}%"
        self._root = w.VBox(
            [
                w.HBox([self._search, self._picker]),
                w.HBox([self._slider, self._toggle]),
                self._status,
                self._context,
                w.HBox(
                    [w.Box([p], layout=w.Layout(width=panel_width)) for p in self._panels.values()]
                ),
                self._chart,
                self._table,
            ]
        )
        # Stable CSS classes for the parts (the browser test finds them by these; so can styles).
        for part, name in [
            (self._root, "ck-inspector"),
            (self._search, "ck-inspector-search"),
            (self._picker, "ck-inspector-picker"),
            (self._slider, "ck-inspector-lambda"),
            (self._toggle, "ck-inspector-template"),
            (self._status, "ck-inspector-status"),
            (self._context, "ck-inspector-context"),
            *[(panel, "ck-inspector-panel") for panel in self._panels.values()],
            (self._chart, "ck-inspector-chart"),
            (self._table, "ck-inspector-table"),
        ]:
            part.add_class(name)
        self._search.observe(self._on_search, names="value")
        for control in (self._picker, self._slider, self._toggle):
            control.observe(self._on_change, names="value")
        self.set_threshold(threshold)  # also widens the slider for lambda above 10

    # ---- state --------------------------------------------------------------------------------
    @property
    def widget(self):
        """The root ipywidgets box."""
        return self._root

    @property
    def record_id(self) -> str | None:
        return self._picker.value

    @property
    def threshold(self) -> float:
        return float(self._slider.value)

    @property
    def template(self) -> str:
        return self._toggle.value

    # ---- driving it from code ---------------------------------------------------------------
    def select(self, record_id) -> None:
        """Show record ``record_id`` (clears a search that hides it)."""
        record_id = str(record_id)
        if record_id not in self._by_id:
            raise KeyError(f"no record with id {record_id!r}")
        with self._hold():
            if record_id not in [value for _, value in self._picker.options]:
                self._search.value = ""
                self._picker.options = self._options(self.records)
            self._picker.value = record_id
        self.refresh()

    def set_threshold(self, threshold: float) -> None:
        """Set lambda (finite, >= 1); redraws without rescoring."""
        threshold = check_threshold(threshold)
        with self._hold():  # lambda >= 1: only the top of the 1..10 slider can need widening
            self._slider.max = max(self._slider.max, math.ceil(math.log10(threshold)))
            self._slider.value = threshold
        self.refresh()

    def set_template(self, name: str) -> None:
        """Switch between "alpaca" and "chat" prompts (scores once per model and template)."""
        if name not in self._toggle.options:
            raise ValueError(
                f"template {name!r} is not available; choose one of {self._toggle.options}"
            )
        with self._hold():
            self._toggle.value = name
        self.refresh()

    def search(self, text: str) -> list[str]:
        """Filter the record picker as the search box does; returns the matching ids."""
        self._search.value = text
        return [value for _, value in self._picker.options]

    # ---- scores -------------------------------------------------------------------------------
    def scores(
        self,
        template: str | None = None,
        label: str | None = None,
        record_ids: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """score_tokens frame of ``record_ids`` (default all) under one model and template,
        scoring only what is not cached yet."""
        template, label = template or self.template, label or next(iter(self.models))
        cache = self._cache.setdefault((label, template), {})
        ids = [str(i) for i in record_ids] if record_ids is not None else list(self._by_id)
        missing = [self._by_id[i] for i in ids if i not in cache]
        if missing:
            frame = score_tokens(
                self.models[label],
                self.tokenizer,
                missing,
                template=template,
                max_length=self.max_length,
                batch_size=self.batch_size,
            )
            for record in missing:
                cache[record.id] = frame[frame["record_id"] == record.id].reset_index(drop=True)
        return pd.concat([cache[i] for i in ids], ignore_index=True)

    def current_scores(self) -> dict[str, pd.DataFrame]:
        """Scores of the shown record, per model label (empty when no record is shown)."""
        if self.record_id is None:
            return {}
        return {name: self.scores(label=name, record_ids=[self.record_id]) for name in self.models}

    def view(self, label: str | None = None) -> TokenView:
        """Static TokenView of the shown record under one model (default the first)."""
        label = label or next(iter(self.models))
        frame = self.current_scores().get(label)
        if frame is None:
            frame = self.scores(label=label, record_ids=[self.records[0].id])
        return TokenView(frame, self.records, threshold=self.threshold, clip=self.clip)

    # ---- drawing ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Redraw every part for the current record, threshold and template."""
        record = self._by_id.get(self.record_id)
        if record is None:
            self._status.value = "<i>no record matches the search</i>"
            for part in (self._context, self._table, *self._panels.values()):
                part.value = ""
            self._chart.outputs = ()
            return
        self._status.value = "<i>scoring…</i>"
        frames = self.current_scores()
        position = list(self._by_id).index(record.id) + 1
        self._status.value = (
            f"record {position} of {len(self.records)} · template {html.escape(self.template)} · "
            f"λ = {self.threshold:.3g} (log λ = {log_threshold(self.threshold):.4f} nats)"
        )
        self._context.value = (
            f'<div class="ck-tv"><style>{STYLE}</style>'
            f"{legend_html(self.threshold, self.clip)}"
            f"{record_header_html(record)}</div>"
        )
        for name, frame in frames.items():
            self._panels[name].value = (
                f'<div class="ck-tv"><div class="ck-tv-label">{escape_text(name)}</div>'
                f"{summary_html(record.id, frame, self.threshold)}"
                f"{tokens_html(frame, self.threshold, response=record.response, clip=self.clip)}</div>"
            )
        self._table.value = (
            f'<div class="ck-tv"><div class="ck-tv-label">flagged tokens</div>'
            f"{flagged_table_html(frames, self.threshold)}</div>"
        )
        self.figure = plot_token_log_ratios(frames, self.threshold)
        self._chart.outputs = (self._figure_output(self.figure),)

    @staticmethod
    def _figure_output(figure) -> dict:
        import plotly.io as pio

        return {
            "output_type": "display_data",
            "metadata": {},
            "data": {
                "application/vnd.plotly.v1+json": json.loads(pio.to_json(figure)),
                "text/plain": "plotly figure: log ratio per token",
            },
        }

    # ---- events -------------------------------------------------------------------------------
    @contextmanager
    def _hold(self):
        quiet, self._quiet = self._quiet, True
        try:
            yield
        finally:
            self._quiet = quiet

    def _on_change(self, _change) -> None:
        if self._quiet:
            return
        try:
            self.refresh()
        except Exception as error:  # shown in the app: widget callbacks have nowhere else to raise
            self._status.value = f'<b style="color:#b2182b">{html.escape(repr(error))}</b>'

    def _on_search(self, change) -> None:
        text = change["new"].strip().lower()
        matches = [
            r
            for r in self.records
            if not text
            or any(
                text in (field or "").lower()
                for field in (r.id, r.instruction, r.input, r.judgment, r.response)
            )
        ]
        current = self.record_id
        with self._hold():
            self._picker.options = self._options(matches)
            ids = [r.id for r in matches]
            self._picker.value = current if current in ids else (ids[0] if ids else None)
        self._on_change(None)

    @staticmethod
    def _options(records: Sequence[JudgmentRecord]) -> list[tuple[str, str]]:
        def label(r):
            text = " ".join(r.instruction.split())
            return f"{r.id} · {text[:70]}{'…' if len(text) > 70 else ''}"

        return [(label(r), r.id) for r in records]

    # ---- display ------------------------------------------------------------------------------
    def display(self) -> TokenView | None:
        """Show the app in a kernel; elsewhere show (and return) the static TokenView HTML."""
        from IPython.display import display

        if in_kernel():
            display(self._mimebundle(), raw=True)
            return None
        view = self.view()
        from IPython import get_ipython

        if get_ipython() is not None:
            display(view)
        return view

    def _ipython_display_(self) -> None:
        self.display()

    def _mimebundle(self) -> dict:
        """The widget view plus a static HTML fallback (for viewers without a widget manager)."""
        bundle = dict(self._root._repr_mimebundle_())
        bundle["text/html"] = self.view().to_html()
        bundle["text/plain"] = repr(self)
        return bundle

    def __repr__(self) -> str:
        return (
            f"TokenInspector(record={self.record_id!r}, threshold={self.threshold:.3g}, "
            f"template={self.template!r}, models={list(self.models)})"
        )
