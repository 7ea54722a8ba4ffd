"""score_tokens against a direct float64 forward pass; detection_report on a hand-made frame."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from cutkit.data.records import JudgmentRecord
from cutkit.data.templates import get_template
from cutkit.eval.detection import (
    QUALITY_COLUMNS,
    detection_quality,
    detection_report,
    push_balance,
    rank_auc,
    record_groups,
)
from cutkit.eval.tokens import TOKEN_COLUMNS, score_tokens
from cutkit.train.losses import LOG1MEXP_EPS
from cutkit.viz.plots import plot_detection_report, plot_token_log_ratios
from cutkit.viz.report import write_report

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
    with pytest.raises(ValueError, match=r"threshold \(lambda\) must be a finite number >= 1"):
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


def brute_force_auc(scores, labels) -> float:
    """Share of (positive, negative) pairs the positive wins, ties half; NaN when a class is empty."""
    pairs = [
        1.0 if p > n else 0.5 if p == n else 0.0
        for p, yp in zip(scores, labels, strict=True)
        if yp
        for n, yn in zip(scores, labels, strict=True)
        if not yn
    ]
    return sum(pairs) / len(pairs) if pairs else math.nan


def test_rank_auc_equals_a_brute_force_pairwise_count_with_ties():
    assert rank_auc([1, 2, 2, 3], [False, True, False, True]) == 0.875  # one tie, half a win
    assert rank_auc([0.5, 0.5, 0.5], [True, False, True]) == 0.5  # all tied
    assert rank_auc([3, 2, 1], [True, True, False]) == 1.0
    assert rank_auc([1, 2, 3], [True, True, False]) == 0.0
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 12))
        scores = rng.integers(-3, 4, size=n) / 2  # few distinct values: many ties
        labels = rng.random(n) < 0.4
        assert rank_auc(scores, labels) == pytest.approx(
            brute_force_auc(scores, labels), nan_ok=True, abs=1e-12
        )


def test_rank_auc_is_nan_when_a_class_is_empty_and_skips_nan_scores():
    assert math.isnan(rank_auc([0.1, 0.2], [True, True]))
    assert math.isnan(rank_auc([0.1, 0.2], [False, False]))
    assert math.isnan(rank_auc([], []))
    # positive records' tokens have no log ratio: they leave the ranking
    assert rank_auc([math.nan, 0.3, 0.1, math.nan], [True, True, False, False]) == 1.0
    assert math.isnan(rank_auc([math.nan, 0.1], [True, False]))
    with pytest.raises(ValueError, match="shape"):
        rank_auc([0.1, 0.2], [True])


def test_detection_quality_on_the_hand_made_frame():
    quality = detection_quality(hand_made_scores(), threshold=1.1)
    assert list(quality.columns) == QUALITY_COLUMNS and quality.group.tolist() == ["all"]
    row = quality.iloc[0]
    # record n: 8 gold-known tokens, 4 in spans; record q (no spans) and p (positive) left out
    assert (row.n_records, row.n_tokens, row.base_rate) == (1, 8, 0.5)
    ratios = [-0.2, 0.0, 0.03, 0.08, 0.15, 0.3, 0.9, 1.5]
    gold = [False, False, True, False, True, True, False, True]
    assert row.auc == brute_force_auc(ratios, gold) == 12 / 16
    # precision / recall / f1 equal detection_report's at the same lambda; 4 of 8 flagged
    report = detection_report(hand_made_scores(), thresholds=(1.1,)).iloc[0]
    assert (row.precision, row.recall, row.f1) == (report.precision, report.recall, report.f1)
    assert row.flagged_frac == 0.5
    assert detection_quality(hand_made_scores(), threshold=3.0).iloc[0].auc == row.auc  # no lambda
    assert detection_quality(hand_made_scores(), threshold=3.0).iloc[0].recall == 1 / 4
    empty = detection_quality(hand_made_scores().assign(in_error_span=None)).iloc[0]
    assert empty.n_tokens == 0
    assert np.isnan(empty[["base_rate", "auc", "precision"]].astype(float)).all()


def grouped_scores() -> pd.DataFrame:
    """Records a, b (arithmetic), c (format), d (no group), e (style, no spans), p (positive)."""
    rows = [  # record_id, log_ratio, in_error_span
        ("a", 0.5, True), ("a", 0.5, False), ("a", -0.1, False),
        ("b", 0.2, True), ("b", 0.0, False), ("b", 0.5, True),
        ("c", 1.0, False), ("c", 0.2, True), ("c", 0.2, False), ("c", 0.05, True),
        ("d", 2.0, True), ("d", -1.0, False),
        ("e", 0.3, None), ("e", -0.3, None),
        ("p", math.nan, None),
    ]  # fmt: skip
    return pd.DataFrame(
        {
            "record_id": [r for r, _, _ in rows],
            "log_ratio": [x for _, x, _ in rows],
            "in_error_span": pd.Series([g for _, _, g in rows], dtype=object),
            "flagged": False,
        }
    )


def test_detection_quality_per_group_matches_brute_force():
    scores = grouped_scores()
    groups = {"a": "arithmetic", "b": "arithmetic", "c": "format", "e": "style", "p": "format"}
    quality = detection_quality(scores, threshold=1.1, groups=groups).set_index("group")
    assert quality.index.tolist() == ["all", "arithmetic", "format", "style"]  # d: only in "all"
    for group, ids in [("all", "abcd"), ("arithmetic", "ab"), ("format", "c")]:
        rows = scores[scores.record_id.isin(list(ids))]
        gold = rows.in_error_span.astype(bool).tolist()
        flagged = (rows.log_ratio > math.log(1.1)).to_numpy()
        true_pos = int((flagged & np.array(gold)).sum())
        row = quality.loc[group]
        assert (row.n_records, row.n_tokens) == (len(ids), len(rows))
        assert row.base_rate == pytest.approx(np.mean(gold))
        assert row.auc == pytest.approx(brute_force_auc(rows.log_ratio.tolist(), gold))
        assert row.precision == pytest.approx(true_pos / flagged.sum())
        assert row.recall == pytest.approx(true_pos / sum(gold))
        assert row.flagged_frac == pytest.approx(flagged.mean())
    assert quality.loc["arithmetic", "auc"] == pytest.approx(7 / 9)  # 0.5 ties 0.5: half a win
    style = quality.loc["style"]  # negative records without gold spans: an empty row
    assert style.n_records == 0 and math.isnan(style.auc) and math.isnan(style.base_rate)
    same = detection_quality(scores, groups={i: "all" for i in "abcdep"})
    assert same.group.tolist() == ["all"]  # no label: no group rows


def test_record_groups_reads_kind_then_task_family_then_family():
    records = [
        JudgmentRecord("k", "i", "r", "j", meta={"kind": "arithmetic", "family": "x"}),
        JudgmentRecord("t", "i", "r", "j", meta={"task": {"family": "json_keys"}}),
        JudgmentRecord("f", "i", "r", "j", meta={"family": "lists"}),
        JudgmentRecord("n", "i", "r", "j"),
    ]
    assert record_groups(records) == {
        "k": "arithmetic",
        "t": "json_keys",
        "f": "lists",
        "n": "all",
    }


def push_scores() -> pd.DataFrame:
    """Record a (gold spans): p_plain 0.5, 0.2, 0.9, 0.25; b (no spans): 0.75, 0.1; p positive."""
    rows = [  # record_id, p_plain, log_ratio, in_error_span
        ("a", 0.5, 1.0, True), ("a", 0.2, 0.5, False), ("a", 0.9, 0.0, True),
        ("a", 0.25, -1.0, False),
        ("b", 0.75, 0.2, None), ("b", 0.1, 0.09, None),
        ("p", 0.99, math.nan, None),
    ]  # fmt: skip
    logp = np.log([p for _, p, _, _ in rows])
    ratio = np.array([x for _, _, x, _ in rows])
    return pd.DataFrame(
        {
            "record_id": [r for r, _, _, _ in rows],
            "logp_plain": logp,
            "logp_judged": logp + ratio,
            "log_ratio": ratio,
            "flagged": False,  # stale: recomputed at the given threshold
            "in_error_span": pd.Series([g for _, _, _, g in rows], dtype=object),
        }
    )


def test_push_balance_on_a_hand_made_frame():
    # flagged at 1.1 (log ratio > 0.0953): a0 (p 0.5: odds 1), a1 (p 0.2: odds 1/4), b0 (p 0.75: 3)
    balance = push_balance(push_scores(), threshold=1.1)
    assert balance["push_down"] == pytest.approx(1.0 + 0.25 + 3.0, rel=1e-12)
    assert balance["push_up"] == 3  # a2, a3, b1; the positive record does not count
    assert balance["push_ratio"] == pytest.approx(4.25 / 3, rel=1e-12)
    assert (balance["n_flagged"], balance["n_tokens"]) == (3, 6)
    # gold tokens a0 (flagged, alpha * 1.0) and a2 (unflagged, 1)
    assert balance["push_down_error"] == pytest.approx(1.0, rel=1e-12)
    assert balance["push_up_error"] == 1
    heavy = push_balance(push_scores(), threshold=1.1, ul_weight=2.0)
    assert heavy["push_down"] == pytest.approx(8.5) and heavy["push_down_error"] == pytest.approx(2)
    strict = push_balance(push_scores(), threshold=2.0)  # only a0 flagged
    assert (strict["push_down"], strict["push_up"]) == (pytest.approx(1.0), 5)
    ignore = push_balance(push_scores(), unflagged="ignore")
    assert ignore["push_up"] == 0 and math.isnan(ignore["push_ratio"])
    # gamma: the weight alpha * p_judged^gamma of the loss; a0 has p_judged = 0.5 e
    dynamic = push_balance(push_scores().iloc[:1], gamma=1.0)
    assert dynamic["push_down"] == pytest.approx(0.5 * math.e)
    with pytest.raises(ValueError, match="unflagged"):
        push_balance(push_scores(), unflagged="drop")


def test_push_balance_without_spans_and_near_certain_tokens():
    no_spans = push_balance(push_scores().assign(in_error_span=None))
    assert "push_down_error" not in no_spans and "push_up_error" not in no_spans
    sure = push_scores().iloc[:1].assign(logp_plain=-1e-12)
    # p / (1 - p), with p bounded like the loss bounds it (log1mexp clamps log p at -eps)
    assert push_balance(sure)["push_down"] == pytest.approx(
        1 / -math.expm1(-LOG1MEXP_EPS), rel=1e-3
    )
    certain = push_scores().iloc[:1].assign(logp_plain=0.0)
    assert math.isfinite(push_balance(certain)["push_down"])  # p = 1: clamped, not inf
