"""TokenView HTML: escaping, determinism, flag outlines, gold underlines, whitespace, tooltips."""

from __future__ import annotations

import html as html_lib
import math
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from cutkit.data.records import JudgmentRecord
from cutkit.eval.tokens import score_tokens
from cutkit.viz.tokenview import (
    AUC_TOOLTIP,
    FLAGGED_CSS,
    GOLD_CSS,
    NO_CONTEXT,
    TokenView,
    ratio_colour,
    token_tooltip,
)

ALLOWED_TAGS = {
    "div",
    "span",
    "style",
    "br",
    "wbr",
    "code",
    "details",
    "summary",
    "section",
    "table",
    "tr",
    "td",
    "th",
    "b",
    "i",
    "h2",
    "html",
    "head",
    "body",
    "meta",
    "title",
}
ALLOWED_ATTRIBUTES = {"class", "style", "title", "lang", "charset"}


class Page(HTMLParser):
    """Collects tags, attributes and the response token spans (class, style, title, text);
    legend swatches have no title and are not tokens."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags, self.attributes, self.tokens = set(), set(), []
        self._open, self._depth = None, 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attributes |= {name for name, _ in attrs}
        attrs = dict(attrs)
        if tag != "span":
            return
        if self._open is not None:
            self._depth += 1
        elif "ck-tv-t" in attrs.get("class", "").split() and "title" in attrs:
            self._open, self._depth = {**attrs, "text": ""}, 1
            self.tokens.append(self._open)

    def handle_endtag(self, tag):
        if tag == "span" and self._open is not None:
            self._depth -= 1
            if self._depth == 0:
                self._open = None

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data


def make_scores(record_id: str, pieces, *, judged=True, gold=None) -> pd.DataFrame:
    """A score_tokens-like frame from (text, log_ratio) pieces; p_plain = 0.25 everywhere."""
    starts = np.cumsum([0] + [len(text) for text, _ in pieces])[:-1]
    ratios = np.array([ratio for _, ratio in pieces], dtype=float)
    logp_plain = np.full(len(pieces), math.log(0.25))
    logp_judged = logp_plain + ratios if judged else np.full(len(pieces), math.nan)
    return pd.DataFrame(
        {
            "record_id": record_id,
            "position": np.arange(len(pieces)),
            "token_id": 100 + np.arange(len(pieces)),
            "token": [text for text, _ in pieces],
            "start": starts,
            "end": starts + [len(text) for text, _ in pieces],
            "logp_plain": logp_plain,
            "logp_judged": logp_judged,
            "log_ratio": logp_judged - logp_plain,
            "flagged": False,  # stale on purpose: TokenView recomputes flags from log_ratio
            "in_error_span": pd.Series(
                gold if gold is not None else [None] * len(pieces), dtype=object
            ),
        }
    )


AUC_TITLE = html_lib.escape(AUC_TOOLTIP, quote=True)
PIECES = [("The", 0.05), (" cat", 0.1), ("\n", 0.5), ("\tsat", 1.0), ("!", -1.0)]
GOLD = [False, True, True, False, False]


def flagged_texts(html: str) -> list[str]:
    return [t["text"] for t in Page(html).tokens if "ck-tv-f" in t["class"].split()]


def test_hostile_strings_are_escaped_everywhere(tiny, tokenizer):
    record = JudgmentRecord(
        'x"<b>',
        "Print <script>alert('i')</script>",
        '<script>alert(1)</script> and <img src=x onerror=alert(1)> "quoted"',
        '<img src=x onerror=alert("j")> & more',
        refinement="<script>alert(2)</script>",
    )
    html = TokenView(score_tokens(tiny, tokenizer, [record]), [record]).to_html()
    page = Page(html)
    assert page.tags <= ALLOWED_TAGS and page.attributes <= ALLOWED_ATTRIBUTES
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert not re.search(r"<[^>]*onerror=", html)
    assert "Print &lt;script&gt;alert(&#x27;i&#x27;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(&quot;j&quot;)&gt; &amp; more" in html
    assert "<code>x&quot;&lt;b&gt;</code>" in html
    # the response survives as text, token by token, with spaces shown as "·"
    shown = "".join(t["text"] for t in page.tokens)
    assert shown.replace("·", " ").startswith(record.response)
    # titles parse back to exactly the tooltip text (quotes inside titles are escaped)
    assert any(t["title"].startswith("' \"'") for t in page.tokens)


def test_render_is_deterministic():
    scores = make_scores("r", PIECES, gold=GOLD)
    record = JudgmentRecord("r", "Write.", "".join(t for t, _ in PIECES), "Too short.")
    first = TokenView(scores, [record], threshold=1.2).to_html()
    again = TokenView(scores.copy(), [JudgmentRecord(**vars(record))], threshold=1.2).to_html()
    assert first == again
    assert repr(TokenView(scores)) == "TokenView(1 records, threshold=1.1)"  # no memory address


def test_flag_outlines_follow_the_threshold():
    scores = make_scores("r", PIECES)
    assert flagged_texts(TokenView(scores, threshold=1.0).to_html()) == ["The", "·cat", "↵", "→sat"]
    assert flagged_texts(TokenView(scores, threshold=1.1).to_html()) == ["·cat", "↵", "→sat"]
    assert flagged_texts(TokenView(scores, threshold=2.0).to_html()) == ["→sat"]
    exact = make_scores("r", [("a", math.log(1.5))])
    assert flagged_texts(TokenView(exact, threshold=1.5).to_html()) == []  # strict
    with pytest.raises(ValueError, match=r"threshold \(lambda\) must be a finite number >= 1"):
        TokenView(scores, threshold=0)


def test_gold_underline_and_whitespace_markers():
    tokens = Page(TokenView(make_scores("r", PIECES, gold=GOLD)).to_html()).tokens
    assert [("ck-tv-g" in t["class"].split()) for t in tokens] == GOLD
    # encodings are inline, so they survive a sanitizer that drops <style> (untrusted notebooks)
    assert [GOLD_CSS in t["style"] for t in tokens] == GOLD
    assert [FLAGGED_CSS in t["style"] for t in tokens] == [False, True, True, True, False]
    assert [t["text"] for t in tokens] == ["The", "·cat", "↵", "→sat", "!"]
    html = TokenView(make_scores("r", PIECES)).to_html()
    assert '<span class="ck-tv-ws" style="color:#999">↵</span><br>' in html


def test_tooltip_shows_probabilities_and_ratio():
    tokens = Page(
        TokenView(make_scores("r", [(" cat", math.log(2.0))], gold=[True])).to_html()
    ).tokens
    (token,) = tokens
    title = token["title"]
    assert title.splitlines() == [
        "' cat'  (id 100, position 0)",
        "p_plain = 0.25",
        "p_judged = 0.5",
        "ratio = 2  (log ratio +0.6931 nats)",
        "FLAGGED at lambda = 1.1",
        "in a gold error span",
    ]


def test_positive_records_are_neutral_and_colours_diverge():
    scores = make_scores("p", [("Fine", 0.0), (".", 0.0)], judged=False)
    tokens = Page(TokenView(scores).to_html()).tokens
    assert all(t["style"] == f"background-color:{NO_CONTEXT}" for t in tokens)
    assert all("ck-tv-f" not in t["class"] for t in tokens)
    assert "no judged context" in tokens[0]["title"]
    assert ratio_colour(0.0) == "#ffffff" and ratio_colour(math.nan) == NO_CONTEXT
    assert ratio_colour(3.0) == ratio_colour(9.0) == "#d6604d"  # clipped
    assert ratio_colour(-3.0) == "#4393c3"
    red, blue = ratio_colour(0.5), ratio_colour(-0.5)
    assert int(red[1:3], 16) > int(red[5:7], 16) and int(blue[5:7], 16) > int(blue[1:3], 16)


def test_special_tokens_split_characters_and_unscored_tail(tokenizer, tiny):
    record = JudgmentRecord("e", "Emoji?", "Yes 😀 ok", "Wrong.")
    scores = score_tokens(tiny, tokenizer, [record])
    html = TokenView(scores, [record]).to_html()
    texts = [t["text"] for t in Page(html).tokens]
    assert texts[-1] == tokenizer.eos_token and "◌" in texts  # EOS boxed, byte piece marked
    assert "".join(texts[:-1]).replace("◌", "").replace("·", " ") == record.response
    truncated = scores[scores.position < 2]  # e.g. a response cut by max_response_length
    tail = TokenView(truncated, [record]).to_html()
    assert '<span class="ck-tv-gap" title="not scored">' in tail


def test_record_selection_and_save(tmp_path):
    scores = pd.concat([make_scores("a", PIECES), make_scores("b", PIECES[:2], judged=False)])
    records = [
        JudgmentRecord("a", "Instr A", "".join(t for t, _ in PIECES), "Judg A"),
        JudgmentRecord("b", "Instr B", "The cat", None),
    ]
    view = TokenView(scores, records, record_ids=["b", "a"])
    html = view.to_html()
    assert html.index("<code>b</code>") < html.index("<code>a</code>")
    assert "Judg A" in html and "(none: positive record)" in html
    assert view.to_html() == view._repr_html_()
    with pytest.raises(ValueError, match="neither in the scores"):
        TokenView(scores, records, record_ids=["zz"])
    path = view.save(tmp_path / "page.html", title="<flags>")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "<title>&lt;flags&gt;</title>" in page and page.count("<style>") == 1
    assert "<script" not in page and not re.search(r"https?://", page)
    assert not re.search(r"https?://", TokenView(scores, records).to_html())


def test_tooltip_function_matches_parsed_titles():
    scores = make_scores("r", PIECES, gold=GOLD)
    titles = [t["title"] for t in Page(TokenView(scores, threshold=1.2).to_html()).tokens]
    assert titles == [token_tooltip(row, 1.2) for row in scores.itertuples(index=False)]


def detection_heads(html: str) -> list[str]:
    return re.findall(r'<div class="ck-tv-head">(.*?)</div>', html)


def test_summary_shows_base_rate_and_auc_only_with_gold_spans():
    # PIECES log ratios 0.05, 0.1, 0.5, 1.0, -1.0; gold on " cat" and "\n": they beat "The" and
    # "!" and lose to "\tsat": AUC 4/6, whatever lambda is; base rate 2/5
    record = JudgmentRecord("r", "Write.", "".join(t for t, _ in PIECES), "Too short.")
    with_spans = TokenView(make_scores("r", PIECES, gold=GOLD), [record], threshold=1.2).to_html()
    (head,) = detection_heads(with_spans)
    assert "2 in gold error spans · base rate 0.40 · " in head and ">AUC 0.67</span>" in head
    strict = TokenView(make_scores("r", PIECES, gold=GOLD), [record], threshold=3.0).to_html()
    assert ">AUC 0.67</span>" in strict  # the AUC does not depend on lambda
    page = Page(with_spans)
    assert page.tags <= ALLOWED_TAGS and page.attributes <= ALLOWED_ATTRIBUTES
    assert 'title="AUC of the log ratio for the gold error tokens' in with_spans
    without = TokenView(make_scores("r", PIECES), [record]).to_html()
    assert "AUC" not in without and "base rate" not in without
    positive = TokenView(make_scores("p", PIECES, judged=False, gold=GOLD)).to_html()
    assert "AUC" not in positive  # no judged context: nothing to rank
    all_gold = TokenView(make_scores("r", PIECES[:2], gold=[True, True])).to_html()
    assert "base rate 1.00 · " in all_gold and ">AUC n/a</span>" in all_gold


def test_overall_detection_line_over_the_shown_records():
    scores = pd.concat(
        [
            make_scores("a", PIECES, gold=GOLD),
            make_scores("b", [("x", 0.2), ("y", 0.1)], gold=[False, True]),
            make_scores("c", PIECES[:2]),  # no spans
        ],
        ignore_index=True,
    )
    html = TokenView(scores, threshold=1.1).to_html()
    overall = [h for h in detection_heads(html) if h.startswith("detection over")]
    # 7 gold-known tokens, 3 in spans (0.1, 0.5 and b's 0.1) against 0.05, 1.0, -1.0, 0.2:
    # pairs won 2 + 3 + 2 = 7 of 12; flagged at 1.1: 0.1, 0.5, 1.0, 0.2, 0.1 (3 of them gold)
    assert overall == [
        "detection over the 2 shown records with gold spans (7 tokens) · base rate 0.43 · "
        '<span class="ck-tv-auc" title="' + AUC_TITLE + '">AUC 0.58</span> · precision 0.60 · '
        "recall 1.00 at λ = 1.1"
    ]
    one = TokenView(scores, record_ids=["a", "c"]).to_html()
    assert not [h for h in detection_heads(one) if h.startswith("detection over")]
    assert TokenView(scores).to_html() == TokenView(scores.copy()).to_html()  # deterministic
