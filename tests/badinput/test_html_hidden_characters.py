"""Bad-input corpus, HTML: NUL, other control characters and bidirectional overrides (U+202E)
from the data are shown as marked escapes in the token report, never written raw, wherever the
data's text goes (instruction, judgment, refinement, response tokens, tooltips, record id,
model label, title)."""

from __future__ import annotations

import pandas as pd
import pytest

from cutkit.data.records import JudgmentRecord
from cutkit.eval.tokens import TOKEN_COLUMNS
from cutkit.viz.tokenview import TokenView, flagged_table_html

HIDDEN = ["\x00", "\u202e", "\u2066", "\x1b", "\x7f", "\u200f"]
RESPONSE = "Paid\u202e321\x00 ok"


def frame(record_id: str, response: str) -> pd.DataFrame:
    """One token per character, every one flagged (log ratio 1 nat)."""
    rows = [
        {
            "record_id": record_id,
            "position": k,
            "token_id": k,
            "token": char,
            "start": k,
            "end": k + 1,
            "logp_plain": -2.0,
            "logp_judged": -1.0,
            "log_ratio": 1.0,
            "flagged": True,
            "in_error_span": None,
        }
        for k, char in enumerate(response)
    ]
    return pd.DataFrame(rows, columns=TOKEN_COLUMNS)


@pytest.fixture
def page(tmp_path) -> str:
    record = JudgmentRecord(
        "id\u202e1",
        "Sum\x00 these\u2066 numbers.",
        RESPONSE,
        "Wrong\x1b: the \u202etotal is off\x7f.",
        refinement="Paid 123\u200f.",
    )
    path = TokenView(frame(record.id, RESPONSE), [record], threshold=1.1).save(
        tmp_path / "r.html", title="report \u202e title"
    )
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("char", HIDDEN, ids=[f"U+{ord(c):04X}" for c in HIDDEN])
def test_hidden_characters_are_never_written_raw(page, char):
    assert char not in page


def test_they_are_shown_as_marked_escapes(page):
    assert page.count('class="ck-tv-esc"') >= 8
    assert ">\\u202e</span>" in page and ">\\x00</span>" in page and ">\\x1b</span>" in page
    assert 'title="U+202E RIGHT-TO-LEFT OVERRIDE"' in page


def test_tooltips_hold_plain_escapes(page):
    assert "&#x27;\\u202e&#x27;" in page or "'\\u202e'" in page  # the token's repr in its title


def test_flagged_table_and_labels_escape_too():
    table = flagged_table_html({"model\u202e": frame("r", RESPONSE)}, 1.1)
    assert "\u202e" not in table and "\x00" not in table and "ck-tv-esc" in table


def test_ordinary_text_is_unchanged():
    from cutkit.viz.escaping import escape_text

    assert escape_text("Tom & Jerry <b> café ✓ 🙂") == "Tom &amp; Jerry &lt;b&gt; café ✓ 🙂"
