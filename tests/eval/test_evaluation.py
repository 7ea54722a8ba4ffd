"""evaluate() and its parts against direct computations on the tiny model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from cutkit.data.records import JudgmentRecord
from cutkit.data.templates import get_template
from cutkit.eval.detection import detection_scores
from cutkit.eval.metrics import evaluate, mean_response_logprobs
from cutkit.eval.scoring import score_examples
from cutkit.models.tiny import tiny_model
from cutkit.train.batching import build_examples

RECORDS = [
    JudgmentRecord(
        "n1",
        "Capital of Australia?",
        "It is Sydney.",
        "Wrong: it is Canberra.",
        refinement="It is Canberra.",
        error_spans=[(6, 12)],
    ),
    JudgmentRecord(
        "n2",
        "What is 3 + 4?",
        "3 + 4 = 8.",
        "Wrong sum: 3 + 4 = 7.",
        refinement="3 + 4 = 7.",
        error_spans=[(8, 9)],
    ),
    JudgmentRecord("p1", "Say hello.", "Hello!"),
]


def direct_mean_logprob(model, tokenizer, instruction: str, response: str) -> float:
    """log p of the response tokens (+ EOS) under the plain alpaca prompt, full softmax, fp64."""
    t = get_template("alpaca")
    prompt = t.prompt_ids(tokenizer, t.plain(instruction))
    target = t.response_ids(tokenizer, response)
    ids = torch.tensor([prompt + target])
    with torch.no_grad():
        logits = model(ids).logits.double()
    logp = torch.log_softmax(logits[0, len(prompt) - 1 : -1], -1)
    return logp.gather(1, torch.tensor(target)[:, None]).mean().item()


def test_mean_response_logprobs_matches_a_full_softmax(tokenizer):
    model = tiny_model().double()
    pairs = [(r.instruction, r.response) for r in RECORDS]
    got = mean_response_logprobs(model, tokenizer, pairs, batch_size=2)
    want = [direct_mean_logprob(model, tokenizer, i, r) for i, r in pairs]
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_score_examples_keeps_input_order_across_length_sorted_batches(tokenizer):
    model = tiny_model().double()
    examples, _ = build_examples(RECORDS, tokenizer)
    one_by_one = [score_examples(model, [ex], tokenizer.pad_token_id)[0] for ex in examples]
    batched = score_examples(model, examples, tokenizer.pad_token_id, batch_size=2)
    for a, b in zip(one_by_one, batched, strict=True):
        assert a.id == b.id and a.negative == b.negative
        np.testing.assert_allclose(a.logp_first, b.logp_first, rtol=1e-9)
        np.testing.assert_allclose(a.logp_plain, b.logp_plain, rtol=1e-9)
    assert not model.training


def test_detection_scores_on_a_hand_made_case():
    tokens = pd.DataFrame(
        {
            "flagged": [True, True, False, False, True, False],
            "in_error_span": [True, False, True, False, None, None],
        }
    )
    scores = detection_scores(tokens)
    assert scores["detect_precision"] == pytest.approx(1 / 2)
    assert scores["detect_recall"] == pytest.approx(1 / 2)
    assert scores["detect_f1"] == pytest.approx(1 / 2)
    empty = detection_scores(tokens.assign(flagged=False))
    assert math.isnan(empty["detect_precision"]) and empty["detect_recall"] == 0


def test_evaluate_reports_preference_and_detection(tokenizer):
    model = tiny_model().double()
    result = evaluate(model, tokenizer, RECORDS)
    assert result["n_records"] == 3 and result["n_pairs"] == 2
    bad = [direct_mean_logprob(model, tokenizer, r.instruction, r.response) for r in RECORDS[:2]]
    fixed = [
        direct_mean_logprob(model, tokenizer, r.instruction, r.refinement) for r in RECORDS[:2]
    ]
    assert result["pref_accuracy"] == pytest.approx(np.mean(np.array(fixed) > np.array(bad)))
    assert result["pref_margin"] == pytest.approx(np.mean(np.array(fixed) - np.array(bad)))
    assert result["logp_good"] == pytest.approx(
        direct_mean_logprob(model, tokenizer, "Say hello.", "Hello!")
    )
    assert 0 <= result["flagged_frac"] <= 1
    assert {"detect_precision", "detect_recall", "detect_f1"} <= result.keys()
    from cutkit.eval.tokens import score_tokens

    tokens = score_tokens(model, tokenizer, RECORDS[:2])
    inside = tokens["in_error_span"].astype(bool)
    assert inside.any() and (~inside).any()
    assert result["logp_error_tokens"] == pytest.approx(tokens.loc[inside, "logp_plain"].mean())
    assert result["logp_other_tokens"] == pytest.approx(tokens.loc[~inside, "logp_plain"].mean())


def test_evaluate_reports_detection_auc_base_rate_and_push_ratio(tokenizer):
    from cutkit.eval.detection import detection_quality, push_balance, rank_auc
    from cutkit.eval.tokens import score_tokens

    model = tiny_model().double()
    result = evaluate(model, tokenizer, RECORDS, threshold=1.2, generate=False)
    tokens = score_tokens(model, tokenizer, RECORDS[:2], threshold=1.2)
    gold = tokens["in_error_span"].astype(bool)
    assert result["detect_base_rate"] == pytest.approx(gold.mean())
    assert result["detect_auc"] == pytest.approx(rank_auc(tokens["log_ratio"], gold))
    assert result["detect_auc"] == detection_quality(tokens).loc[0, "auc"]  # lambda-free
    assert result["push_ratio"] == pytest.approx(push_balance(tokens, 1.2)["push_ratio"])
    odds = np.exp(tokens["logp_plain"]) / -np.expm1(tokens["logp_plain"])
    flagged = tokens["log_ratio"] > math.log(1.2)
    assert result["push_ratio"] == pytest.approx(odds[flagged].sum() / (~flagged).sum())


def test_read_figures_explains_a_figure_that_moved_against_the_method():
    from cutkit.eval.metrics import read_figures

    before = {"logp_error_tokens": -2.0, "logp_bad": -2.0, "pref_accuracy": 0.6, "logp_good": -1.5}
    after = {"logp_error_tokens": -1.5, "logp_bad": -2.4, "pref_accuracy": 0.6, "logp_good": -1.4}
    lines = read_figures(before, after, push_ratio=0.3, detect_auc=0.55)
    assert lines[0].startswith("logp_error_tokens rose (-2.000 -> -1.500)")
    assert "AGAINST the method" in lines[0] and "push ratio was 0.30" in lines[0]
    assert "detection AUC was 0.55" in lines[0]
    assert "as CUT intends" in lines[1]  # logp_bad fell
    assert lines[2].startswith("pref_accuracy did not move")
    assert len(lines) == 4 and "as CUT intends" in lines[3]
    quiet = read_figures(before, after, push_ratio=2.0, detect_auc=0.9)[0]
    assert "noise" in quiet
