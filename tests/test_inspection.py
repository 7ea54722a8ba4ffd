"""score_tokens against a direct float64 forward pass; detection_report on a hand-made frame."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from cutkit.inspection import (
    TOKEN_COLUMNS,
    detection_report,
    plot_detection_report,
    plot_token_log_ratios,
    score_tokens,
    write_report,
)
from cutkit.records import JudgmentRecord
from cutkit.templates import get_template

NEGATIVE = JudgmentRecord(
    "neg",
    "Describe Joe Namath in one line.",
    "a former American football player\nwho won.",
    "Not capitalized.",
    error_spans=[(0, 1)],
)
POSITIVE = JudgmentRecord("pos", "Say hi.", "Hi there!", None)


def direct_logprobs(model, tokenizer, template, prompt: str, response: str) -> np.ndarray:
    """log p of each response token (+ EOS) after ``prompt``: one full forward, float64."""
    prompt_ids = template.prompt_ids(tokenizer, prompt)
    response_ids = template.response_ids(tokenizer, response)
    ids = torch.tensor([prompt_ids + response_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()  # (T, V)
    logp = torch.log_softmax(logits, dim=-1)
    rows = torch.arange(len(prompt_ids) - 1, ids.shape[1] - 1)
    return logp[rows, torch.tensor(response_ids)].numpy()


@pytest.mark.parametrize("template_name", ["alpaca", "chat"])
def test_score_tokens_matches_direct_float64_forward(tiny, tokenizer, template_name):
    model = tiny.double()
    template = get_template(template_name, tokenizer)
    scores = score_tokens(
        model, tokenizer, [NEGATIVE, POSITIVE], template=template_name, threshold=1.1
    )
    assert list(scores.columns) == TOKEN_COLUMNS

    neg = scores[scores.record_id == "neg"]
    response_ids = template.response_ids(tokenizer, NEGATIVE.response)
    assert list(neg.position) == list(range(len(response_ids)))
    assert list(neg.token_id) == response_ids
    plain = direct_logprobs(
        model, tokenizer, template, template.plain(NEGATIVE.instruction), NEGATIVE.response
    )
    judged = direct_logprobs(
        model,
        tokenizer,
        template,
        template.judged(NEGATIVE.instruction, NEGATIVE.judgment),
        NEGATIVE.response,
    )
    np.testing.assert_allclose(neg.logp_plain, plain, rtol=0, atol=1e-9)
    np.testing.assert_allclose(neg.logp_judged, judged, rtol=0, atol=1e-9)
    np.testing.assert_allclose(neg.log_ratio, judged - plain, rtol=0, atol=1e-9)
    assert (neg.flagged == (neg.log_ratio > math.log(1.1))).all()
    assert neg.token.iloc[0] == "a" and neg.token.iloc[-1] == tokenizer.eos_token
    assert list(neg.in_error_span) == [True] + [False] * (len(neg) - 1)

    pos = scores[scores.record_id == "pos"]
    np.testing.assert_allclose(
        pos.logp_plain,
        direct_logprobs(
            model, tokenizer, template, template.plain(POSITIVE.instruction), POSITIVE.response
        ),
        rtol=0,
        atol=1e-9,
    )
    assert pos.logp_judged.isna().all() and not pos.flagged.any()
    assert pos.in_error_span.isna().all()


def hand_made_scores() -> pd.DataFrame:
    """10 tokens: 8 of a negative record with gold spans, 2 of a negative record without spans.
    The stale ``flagged`` column (all False) must be ignored by detection_report."""
    ratios = [-0.2, 0.0, 0.03, 0.08, 0.15, 0.3, 0.9, 1.5, 2.0, 0.5]
    gold = [False, False, True, False, True, True, False, True, None, None]
    positive = pd.DataFrame({"record_id": "p", "log_ratio": [math.nan] * 2, "in_error_span": None})
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "record_id": ["n"] * 8 + ["q"] * 2,
                    "log_ratio": ratios,
                    "in_error_span": pd.Series(gold, dtype=object),
                }
            ),
            positive,
        ],
        ignore_index=True,
    ).assign(flagged=False)


def test_detection_report_exact_answers():
    report = detection_report(
        hand_made_scores(), thresholds=(1.0, 1.05, 1.1, 1.2, 1.5, 2.0, 3.0, 10.0)
    )
    assert list(report.columns) == [
        "threshold",
        "n_flagged",
        "flagged_frac",
        "precision",
        "recall",
        "f1",
    ]
    expected = [  # threshold, n_flagged, flagged_frac (of 10 judged tokens), P, R, F1
        (1.0, 8, 0.8, 4 / 6, 1.0, 0.8),  # log ratio 0.0 is not > log 1 (strict)
        (1.05, 7, 0.7, 3 / 5, 3 / 4, 2 / 3),
        (1.1, 6, 0.6, 3 / 4, 3 / 4, 3 / 4),
        (1.2, 5, 0.5, 2 / 3, 1 / 2, 4 / 7),
        (1.5, 4, 0.4, 1 / 2, 1 / 4, 1 / 3),
        (2.0, 3, 0.3, 1 / 2, 1 / 4, 1 / 3),
        (3.0, 2, 0.2, 1.0, 1 / 4, 2 / 5),
        (10.0, 0, 0.0, math.nan, 0.0, math.nan),
    ]
    np.testing.assert_allclose(report.to_numpy(dtype=float), np.array(expected), rtol=1e-12)


def test_detection_report_without_gold_spans_gives_nan_scores():
    scores = hand_made_scores().assign(in_error_span=None)
    report = detection_report(scores, thresholds=(1.1,))
    assert report.n_flagged.tolist() == [6]
    assert report[["precision", "recall", "f1"]].isna().all().all()
    with pytest.raises(ValueError, match="threshold must be > 0"):
        detection_report(scores, thresholds=(0.0,))


def test_plot_detection_report_has_log_threshold_axis():
    figure = plot_detection_report(detection_report(hand_made_scores()))
    assert figure.layout.xaxis.type == "log"
    assert [trace.name for trace in figure.data][:3] == ["precision", "recall", "f1"]
    assert list(figure.data[0].x) == [1.0, 1.05, 1.1, 1.2, 1.5, 2.0, 3.0]


def test_write_report_scores_and_saves_a_page(tiny, tokenizer, tmp_path):
    path = tmp_path / "report.html"
    scores = write_report(tiny, tokenizer, [NEGATIVE, POSITIVE], path, threshold=1.2)
    assert set(scores.record_id) == {"neg", "pos"}
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "<script" not in page
    assert "record <code>neg</code>" in page and "record <code>pos</code>" in page
    assert "λ = 1.2" in page


def test_plot_token_log_ratios_marks_threshold_gold_and_flags():
    scores = (
        hand_made_scores()
        .query("record_id == 'n'")
        .assign(position=range(8), token=["<b>", " a", "\n", "c", "d", "e", "f", "g"])
    )
    figure = plot_token_log_ratios(scores, threshold=1.2)
    (bars,) = figure.data
    assert list(bars.marker.opacity) == [0.4] * 5 + [1.0] * 3  # flagged: log ratio > log 1.2
    lines = [s for s in figure.layout.shapes if s.type == "line"]
    rects = [s for s in figure.layout.shapes if s.type == "rect"]
    assert lines[0].y0 == pytest.approx(math.log(1.2)) and len(rects) == 4  # 4 gold tokens
    assert list(figure.layout.xaxis.ticktext[:3]) == ["&lt;b&gt;", "·a", "↵"]
