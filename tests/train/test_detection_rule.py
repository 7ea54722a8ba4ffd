"""One detection rule everywhere (cutkit.train.detection): log ratio > log(lambda), strict, with
lambda finite and >= 1, checked the same way by training, evaluation and the views."""

from __future__ import annotations

import doctest
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch

import cutkit.train.detection
from cutkit.data.records import JudgmentRecord
from cutkit.eval.detection import detection_report, flags_at, push_balance
from cutkit.eval.tokens import score_tokens
from cutkit.train.detection import check_threshold, is_flagged, log_threshold
from cutkit.train.losses import cut_loss, detect_flagged
from cutkit.viz.tokenview import (
    TokenView,
    flagged_table_html,
    summary_html,
    token_tooltip,
    tokens_html,
)

REFUSED = [0.5, 0.0, -1.0, math.nan, math.inf, -math.inf]
REFUSAL = r"threshold \(lambda\) must be a finite number >= 1, got {}.*pass e\.g\. 1\.1"


def boundary_ratios(threshold: float) -> np.ndarray:
    """Log ratios (nats) at, just above and just below log(threshold), plus ordinary values and
    NaN (a positive record: no judged context)."""
    at = math.log(threshold)
    return np.array(
        [at, math.nextafter(at, math.inf), math.nextafter(at, -math.inf), 0.0, -1.0, 5.0, math.nan]
    )


def ratio_frame(ratios: np.ndarray) -> pd.DataFrame:
    """A score_tokens-like frame whose ``log_ratio`` column holds ``ratios`` exactly."""
    n = len(ratios)
    logp_plain = np.full(n, math.log(0.25))
    return pd.DataFrame(
        {
            "record_id": "r",
            "position": np.arange(n),
            "token_id": 100 + np.arange(n),
            "token": [f"t{i}" for i in range(n)],
            "start": 2 * np.arange(n),
            "end": 2 * np.arange(n) + 2,
            "logp_plain": logp_plain,
            "logp_judged": logp_plain + ratios,
            "log_ratio": ratios,
            "flagged": False,  # stale: every consumer recomputes the flags
            "in_error_span": pd.Series([None] * n, dtype=object),
        }
    )


def view_flags(frame: pd.DataFrame, threshold: float) -> list[bool]:
    """Which tokens TokenView's token spans outline as flagged, row by row."""
    return ["ck-tv-f" in tokens_html(frame.iloc[[i]], threshold) for i in range(len(frame))]


def tooltip_flags(frame: pd.DataFrame, threshold: float) -> list[bool]:
    return ["FLAGGED" in token_tooltip(row, threshold) for row in frame.itertuples(index=False)]


@pytest.mark.parametrize("threshold", [1.0, 1.1, 1.2, 3.0])
def test_every_consumer_flags_the_same_tokens(threshold):
    ratios = boundary_ratios(threshold)
    expected = [False, True, False, False, False, True, False]  # 0 is never above log(λ >= 1)
    frame = ratio_frame(ratios)
    judged = torch.tensor(np.nan_to_num(ratios, nan=-math.inf), dtype=torch.float64)[None]
    from_loss = detect_flagged(judged, torch.zeros_like(judged), judged > -math.inf, threshold)

    assert [bool(is_flagged(float(r), threshold)) for r in ratios] == expected
    assert is_flagged(ratios, threshold).tolist() == expected
    assert is_flagged(pd.Series(ratios), threshold).tolist() == expected
    assert is_flagged(torch.from_numpy(ratios), threshold).tolist() == expected
    assert from_loss[0].tolist() == expected
    assert flags_at(frame, threshold).tolist() == expected
    assert view_flags(frame, threshold) == expected
    assert tooltip_flags(frame, threshold) == expected
    assert f"{sum(expected)} flagged at λ" in summary_html("r", frame, threshold)
    assert flagged_table_html({"m": frame}, threshold).count("<tr>") == 1 + sum(expected)
    assert push_balance(frame, threshold)["n_flagged"] == sum(expected)
    assert detection_report(frame, (threshold,)).n_flagged.tolist() == [sum(expected)]


def test_score_tokens_flags_are_the_rule_on_its_own_log_ratios(tiny, tokenizer):
    records = [
        JudgmentRecord("n", "Capital of Australia?", "Sydney, I think.", "Wrong: it is Canberra."),
        JudgmentRecord("p", "2 + 2?", "4", None),
    ]
    for threshold in (1.0, 1.05):
        scores = score_tokens(tiny, tokenizer, records, threshold=threshold)
        negative = scores[scores.record_id == "n"]
        judged = torch.tensor(negative.logp_judged.to_numpy())[None]
        plain = torch.tensor(negative.logp_plain.to_numpy())[None]
        mask = torch.ones_like(judged, dtype=bool)
        assert scores.flagged.tolist() == flags_at(scores, threshold).tolist()
        assert (
            negative.flagged.tolist() == detect_flagged(judged, plain, mask, threshold)[0].tolist()
        )
        assert not scores[scores.record_id == "p"].flagged.any()


def test_thresholds_at_and_above_one_are_accepted():
    assert check_threshold(1) == 1.0 and isinstance(check_threshold(1), float)
    assert check_threshold(np.float64(1.2)) == 1.2 and check_threshold(1e9) == 1e9
    assert log_threshold(1.0) == 0.0 and log_threshold(math.e) == pytest.approx(1.0)


@pytest.mark.parametrize("threshold", [*REFUSED, "1.1x", None])
def test_check_threshold_names_the_value_and_what_to_pass(threshold):
    with pytest.raises(ValueError, match=REFUSAL.format(re.escape(repr(threshold)))):
        check_threshold(threshold)


@pytest.mark.parametrize("threshold", REFUSED, ids=repr)
def test_every_entry_point_refuses_the_same_thresholds(threshold, tmp_path):
    from cutkit.train.config import CUTConfig

    refusal = REFUSAL.format(re.escape(repr(threshold)))
    logp, mask, negative = torch.zeros(1, 2), torch.ones(1, 2, dtype=bool), torch.tensor([True])
    frame = ratio_frame(boundary_ratios(1.1))
    entry_points = {
        "CUTConfig": lambda: CUTConfig(output_dir=str(tmp_path), threshold=threshold),
        "cut_loss": lambda: cut_loss(logp, logp, mask, negative, threshold=threshold),
        "cut_loss without detection": lambda: cut_loss(
            logp, logp, mask, negative, threshold=threshold, detect=False
        ),
        "detect_flagged": lambda: detect_flagged(logp, logp, mask, threshold),
        "flags_at": lambda: flags_at(frame, threshold),
        "push_balance": lambda: push_balance(frame, threshold),
        "score_tokens (before scoring)": lambda: score_tokens(None, None, [], threshold=threshold),
        "TokenView": lambda: TokenView(frame, threshold=threshold),
        "summary_html": lambda: summary_html("r", frame, threshold),
    }
    for name, call in entry_points.items():
        with pytest.raises(ValueError, match=refusal):
            call()
            pytest.fail(f"{name} accepted threshold {threshold!r}")


def test_module_docstring_example_runs():
    assert doctest.testmod(cutkit.train.detection).failed == 0
