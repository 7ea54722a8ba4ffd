"""TokenInspector driven without a browser: selection, threshold, template, comparison, fallbacks."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from cutkit.data.records import JudgmentRecord
from cutkit.models.tiny import tiny_model

ipywidgets = pytest.importorskip("ipywidgets")
from cutkit.viz.widgets import TokenInspector  # noqa: E402 (needs ipywidgets

RECORDS = [
    JudgmentRecord(
        "neg",
        "Describe Joe Namath.",
        "a former American football player, who won the Super Bowl and many other games.",
        "Not capitalized.",
        error_spans=[(0, 1)],
    ),
    JudgmentRecord("pos", "Say hi.", "Hi there!", None),
    JudgmentRecord(
        "xss",
        "Echo <script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "Unsafe <b>markup</b>.",
    ),
]


@pytest.fixture
def inspector(tiny, tokenizer):
    return TokenInspector(tiny, tokenizer, RECORDS, threshold=1.0)


def n_flagged(inspector, label="model") -> int:
    return inspector._panels[label].value.count("ck-tv-t ck-tv-f")


def test_construction_shows_the_first_record(inspector):
    assert isinstance(inspector.widget, ipywidgets.VBox)
    assert inspector.record_id == "neg" and inspector.threshold == 1.0
    assert inspector.template == "alpaca" and "Not capitalized." in inspector._context.value
    assert "<table" in inspector._table.value
    expected = int((inspector.scores(record_ids=["neg"]).log_ratio > 0).sum())
    assert n_flagged(inspector) == expected > 0
    assert inspector._table.value.count("<tr>") == expected + 1  # + header row
    (output,) = inspector._chart.outputs
    assert "application/vnd.plotly.v1+json" in output["data"]


def test_set_threshold_redraws_without_rescoring(inspector, monkeypatch):
    before, table_before = n_flagged(inspector), inspector._table.value
    monkeypatch.setattr(
        "cutkit.viz.widgets.score_tokens", pytest.fail
    )  # cached: no scoring allowed
    inspector.set_threshold(1.5)
    scores = inspector.scores(record_ids=["neg"])
    assert n_flagged(inspector) == int((scores.log_ratio > math.log(1.5)).sum()) < before
    assert inspector._table.value != table_before
    (line,) = [s for s in inspector.figure.layout.shapes if s.type == "line"]
    assert line.y0 == pytest.approx(math.log(1.5))
    inspector.set_threshold(30.0)  # outside 1..10: the slider widens
    assert inspector.threshold == 30.0 and inspector._slider.max >= math.log10(30)
    for refused in (-1, 0.5, math.nan, math.inf):  # one rule: cutkit.train.detection
        with pytest.raises(ValueError, match=r"threshold \(lambda\) must be a finite number >= 1"):
            inspector.set_threshold(refused)
    assert inspector.threshold == 30.0


def test_select_and_search(inspector):
    inspector.select("pos")
    assert inspector.record_id == "pos" and "record 2 of 3" in inspector._status.value
    assert "ck-tv-pos" in inspector._panels["model"].value and n_flagged(inspector) == 0
    assert "no token flagged" in inspector._table.value
    assert inspector.search("super bowl") == ["neg"] and inspector.record_id == "neg"
    assert inspector.search("CAPITALIZED") == ["neg"]  # judgments are searched, case-insensitively
    assert inspector.search("nothing like this") == [] and inspector.record_id is None
    assert "no record matches" in inspector._status.value
    inspector.select("xss")  # clears the search that hides it
    assert inspector._search.value == "" and inspector.record_id == "xss"
    html = inspector._context.value + inspector._panels["model"].value + inspector._table.value
    assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html
    with pytest.raises(KeyError):
        inspector.select("missing")


def test_picker_change_from_the_ui_redraws(inspector):
    inspector._picker.value = "pos"  # what a click in the dropdown does
    assert "<code>pos</code>" in inspector._panels["model"].value


def test_set_template_rescores_once_per_model_and_template(inspector, monkeypatch):
    import cutkit.viz.widgets

    calls = []

    def counting(*args, **kwargs):
        calls.append(kwargs["template"])
        return cutkit.eval.tokens.score_tokens(*args, **kwargs)

    monkeypatch.setattr(cutkit.viz.widgets, "score_tokens", counting)
    alpaca_panel = inspector._panels["model"].value
    inspector.set_template("chat")
    assert calls == ["chat"] and "template chat" in inspector._status.value
    assert inspector._panels["model"].value != alpaca_panel  # other prompt, other scores
    inspector.set_template("alpaca")
    assert calls == ["chat"] and inspector._panels["model"].value == alpaca_panel
    with pytest.raises(ValueError, match="not available"):
        inspector.set_template("vicuna")


def test_compare_model_side_by_side(tiny, tokenizer):
    inspector = TokenInspector(
        tiny,
        tokenizer,
        RECORDS,
        compare_model=tiny_model(seed=1),
        label="base",
        compare_label="CUT",
        threshold=1.0,
    )
    base, cut = inspector._panels["base"].value, inspector._panels["CUT"].value
    assert "base" in base and "CUT" in cut and base != cut
    assert "<th>model</th>" in inspector._table.value
    assert {trace.name for trace in inspector.figure.data} == {"base", "CUT"}
    assert set(inspector.current_scores()) == {"base", "CUT"}
    with pytest.raises(ValueError, match="must differ"):
        TokenInspector(tiny, tokenizer, RECORDS, compare_model=tiny, compare_label="model")


def test_junk_record_error_shows_in_the_app(tiny, tokenizer):
    junk = JudgmentRecord("junk", "Q?", "A.", "$ERROR$")
    inspector = TokenInspector(tiny, tokenizer, [RECORDS[0], junk])
    inspector._picker.value = "junk"  # from the UI: the error is shown, not raised
    assert "RecordError" in inspector._status.value
    with pytest.raises(ValueError, match="junk judgment"):  # from code: raised
        inspector.select("junk")


def test_without_a_kernel_display_degrades_to_tokenview(inspector, capsys):
    view = inspector.display()  # pytest runs outside IPython: no widget front-end
    assert view.to_html() == inspector.view().to_html()
    assert "<code>neg</code>" in view.to_html()
    inspector._ipython_display_()
    bundle = inspector._mimebundle()  # what a kernel gets: widget view + static HTML fallback
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/html"] == view.to_html()
    assert bundle["text/plain"].startswith("TokenInspector(record='neg'")


def test_import_cutkit_stays_free_of_widget_libraries():
    code = (
        "import sys, cutkit, cutkit.eval.detection, cutkit.viz.tokenview; "
        "assert not {'ipywidgets', 'plotly', 'IPython'} & set(sys.modules), sys.modules.keys()"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_panel_summary_shows_base_rate_and_auc_where_gold_spans_exist(inspector):
    from cutkit.eval.detection import detection_quality

    panel = inspector._panels["model"].value  # "neg" has a gold span on its first token
    quality = detection_quality(inspector.scores(record_ids=["neg"])).iloc[0]
    auc = "n/a" if math.isnan(quality.auc) else f"{quality.auc:.2f}"
    assert f"base rate {quality.base_rate:.2f} · " in panel and f">AUC {auc}</span>" in panel
    inspector.set_threshold(3.0)  # moving lambda keeps the AUC
    assert f">AUC {auc}</span>" in inspector._panels["model"].value
    inspector.select("xss")  # negative, no gold spans: no AUC
    assert "AUC" not in inspector._panels["model"].value


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"batch_size": 1.5}, "batch_size must be an integer >= 1, got 1.5"),
        ({"max_length": 8}, "max_length must be an integer >= 64, got 8"),
        ({"clip": 0.0}, "clip must be a finite number > 0, got 0.0"),
        ({"clip": math.nan}, "clip must be a finite number > 0, got nan"),
        ({"threshold": math.inf}, "threshold (lambda) must be a finite number >= 1"),
    ],
)
def test_numeric_inputs_are_checked_before_anything_is_scored(tiny, tokenizer, kwargs, message):
    with pytest.raises(ValueError) as caught:
        TokenInspector(tiny, tokenizer, RECORDS, **kwargs)
    assert message in str(caught.value)
