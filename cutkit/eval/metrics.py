"""Evaluation: does the model prefer the corrected response, and what does its detection flag?

``evaluate`` returns one row of figures for a model on held-out judgment records:

- ``pref_accuracy``: share of negatives with a refinement whose refinement has a higher mean token
  log-prob than the bad response, both under the plain prompt (the model prefers the fix);
- ``pref_margin``: mean of (mean log p refinement - mean log p bad response), nats per token;
- ``logp_bad`` / ``logp_refined``: mean token log-prob of the bad responses / refinements;
- ``logp_good``: mean token log-prob of the positive records' responses (the alignment tax: it
  should not fall);
- ``flagged_frac``: share of negative response tokens the judgment flags at ``threshold``;
- ``logp_error_tokens`` / ``logp_other_tokens``: mean plain-prompt log-prob of the bad responses'
  tokens inside / outside their gold error spans (CUT should lower the first, not the second);
- ``detect_precision`` / ``detect_recall`` / ``detect_f1``: flagged tokens against the records'
  gold ``error_spans`` (token level);
- ``detect_auc``: ROC AUC of the log ratio for the gold error tokens (0.5: the judgment ranks them
  no better than chance; independent of ``threshold``) and ``detect_base_rate``: the share of the
  bad responses' tokens inside gold spans (the precision of flagging at random), both from
  :func:`cutkit.eval.detection.detection_quality`;
- ``push_ratio``: push-down / push-up mass of CUT's plain-prompt term on the bad responses at
  ``threshold`` (alpha = 1, likelihood on unflagged tokens; :func:`cutkit.eval.detection.push_balance`):
  below 1, that term raises the bad responses on balance;
- ``gen_accuracy`` (with ``n_checkable``): for records whose ``meta["answer"]`` holds a checkable
  final answer (the bundled arithmetic, unit and fact records), the share of greedy answers to the
  instruction that state it (:func:`answer_correct`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cutkit.data.records import JudgmentRecord
from cutkit.data.templates import PromptTemplate
from cutkit.eval.detection import detection_quality, detection_scores, push_balance
from cutkit.eval.generation import generate_responses
from cutkit.eval.scoring import score_examples
from cutkit.eval.tokens import score_tokens
from cutkit.train.examples import build_examples
from cutkit.train.vocabulary import DEFAULT_MAX_LENGTH, DEFAULT_TEMPLATE, DEFAULT_THRESHOLD


def mean_response_logprobs(
    model,
    tokenizer,
    pairs: Sequence[tuple[str, str]],
    *,
    template=DEFAULT_TEMPLATE,
    max_length=DEFAULT_MAX_LENGTH,
    batch_size=8,
) -> np.ndarray:
    """Mean token log-prob (nats) of each ``(instruction, response)`` under the plain prompt."""
    records = [JudgmentRecord(str(i), instruction, "-") for i, (instruction, _) in enumerate(pairs)]
    responses = [response for _, response in pairs]
    return records_response_logprobs(
        model, tokenizer, records, responses, template=template, max_length=max_length,
        batch_size=batch_size,
    )  # fmt: skip


def records_response_logprobs(
    model,
    tokenizer,
    records: Sequence[JudgmentRecord],
    responses: Sequence[str],
    *,
    template=DEFAULT_TEMPLATE,
    max_length=DEFAULT_MAX_LENGTH,
    batch_size=8,
) -> np.ndarray:
    """Mean token log-prob (nats) of ``responses[i]`` under the plain prompt of ``records[i]``
    (its instruction, and a conversational record's earlier turns), shape (n,)."""
    as_positive = [
        dataclasses.replace(
            record, id=str(i), response=response, judgment=None, is_positive=True, score=None,
            refinement=None, error_spans=[], meta={},
        )
        for i, (record, response) in enumerate(zip(records, responses, strict=True))
    ]  # fmt: skip
    examples, _ = build_examples(as_positive, tokenizer, template, max_length=max_length)
    scores = score_examples(model, examples, tokenizer.pad_token_id, batch_size=batch_size)
    return np.array([s.logp_plain.mean() for s in scores])


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _as_number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def answer_correct(response: str, answer: str) -> bool:
    """Does ``response`` state ``answer``?

    - a number (``"137.20"``, ``"1,564"``): the response's last number (its final result; a worked
      answer states intermediate numbers first) equals it (a whole number) or rounds to it (an answer
      with decimals: 12.874 states 12.87, 2.50 does not state 2; thousands separators and
      currency signs are ignored). A response cut
      off before its result therefore counts as wrong;
    - a clock time (``"7:00"``): it occurs, not followed by another digit;
    - a name (``"Canberra"``, ``"Fe"``): it occurs as a whole word, case-insensitively for names
      of three or more characters and exactly for shorter ones (element symbols).

    >>> answer_correct("3 × $379.07 = $1,137.20.", "1137.20"), answer_correct("It is K.", "Kr")
    (True, False)
    """
    answer = answer.strip()
    number = _as_number(answer)
    if number is not None:
        places = len(answer.partition(".")[2])
        tolerance = 0.5 * 10**-places - 1e-9 if places else 1e-9  # whole numbers: exactly
        stated = [
            value for value in map(_as_number, _NUMBER.findall(response)) if value is not None
        ]
        return bool(stated) and abs(stated[-1] - number) <= tolerance
    if re.fullmatch(r"\d{1,2}:\d\d", answer):
        return re.search(rf"(?<!\d){re.escape(answer)}(?!\d)", response) is not None
    flags = re.IGNORECASE if len(answer) >= 3 else 0
    return re.search(rf"(?<!\w){re.escape(answer)}(?!\w)", response, flags) is not None


def generation_accuracy(
    model,
    tokenizer,
    records: Sequence[JudgmentRecord],
    *,
    template: str | PromptTemplate = DEFAULT_TEMPLATE,
    max_new_tokens: int = 64,
    batch_size: int = 64,  # decoding is step-bound: a wide batch costs little more per step
) -> pd.DataFrame:
    """Greedy answers to the records with a checkable ``meta["answer"]``.

    Returns:
        one row per such record: ``record_id``, ``answer``, ``generated``, ``correct``.
    """
    checkable = [r for r in records if r.meta.get("answer")]
    generated = generate_responses(
        model,
        tokenizer,
        [r.prompt_instruction for r in checkable],
        histories=[r.history for r in checkable],
        template=template,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    )
    return pd.DataFrame(
        {
            "record_id": [r.id for r in checkable],
            "answer": [str(r.meta["answer"]) for r in checkable],
            "generated": generated,
            "correct": [
                answer_correct(text, str(r.meta["answer"]))
                for text, r in zip(generated, checkable, strict=True)
            ],
        }
    )


def evaluate(
    model,
    tokenizer,
    records: Sequence[JudgmentRecord],
    *,
    template: str | PromptTemplate = DEFAULT_TEMPLATE,
    threshold: float = DEFAULT_THRESHOLD,
    max_length: int = DEFAULT_MAX_LENGTH,
    batch_size: int = 8,
    generate: bool = True,
    max_new_tokens: int = 64,
) -> dict[str, float]:
    """One row of figures (module docstring) for ``model`` on ``records``.

    ``generate=False`` skips the greedy answers (``gen_accuracy``); ``max_new_tokens`` bounds them.
    """
    negatives = [r for r in records if r.is_negative]
    with_fix = [r for r in negatives if r.refinement]
    result: dict[str, float] = {"n_records": len(records), "n_pairs": len(with_fix)}
    scoring = dict(template=template, max_length=max_length, batch_size=batch_size)
    if with_fix:
        logps = records_response_logprobs(
            model,
            tokenizer,
            [*with_fix, *with_fix],
            [*(r.response for r in with_fix), *(r.refinement for r in with_fix)],
            **scoring,
        )
        bad, refined = logps[: len(with_fix)], logps[len(with_fix) :]
        result |= {
            "pref_accuracy": float((refined > bad).mean()),
            "pref_margin": float((refined - bad).mean()),
            "logp_bad": float(bad.mean()),
            "logp_refined": float(refined.mean()),
        }
    good = [r for r in records if r.is_positive]
    if good:
        result["logp_good"] = float(
            records_response_logprobs(
                model, tokenizer, good, [r.response for r in good], **scoring
            ).mean()
        )
    if negatives:
        tokens = score_tokens(
            model,
            tokenizer,
            negatives,
            template=template,
            threshold=threshold,
            max_length=max_length,
            batch_size=batch_size,
        )
        result["flagged_frac"] = float(tokens["flagged"].mean())
        result |= detection_scores(tokens)
        overall = detection_quality(tokens, threshold).iloc[0]
        result["detect_auc"] = float(overall["auc"])
        result["detect_base_rate"] = float(overall["base_rate"])
        result["push_ratio"] = push_balance(tokens, threshold)["push_ratio"]
        gold = tokens[tokens["in_error_span"].notna()]
        in_span = gold["in_error_span"].astype(bool)
        if in_span.any():
            result["logp_error_tokens"] = float(gold.loc[in_span, "logp_plain"].mean())
            result["logp_other_tokens"] = float(gold.loc[~in_span, "logp_plain"].mean())
    if generate and any(r.meta.get("answer") for r in records):
        answers = generation_accuracy(
            model, tokenizer, records, template=template, max_new_tokens=max_new_tokens
        )
        result |= {"n_checkable": len(answers), "gen_accuracy": float(answers["correct"].mean())}
    return result


TARGETS = {
    "logp_error_tokens": ("down", "the criticised tokens (gold error spans)"),
    "logp_bad": ("down", "the bad responses"),
    "pref_accuracy": ("up", "the preference for the corrected responses"),
    "pref_margin": ("up", "the margin of the corrected over the bad responses"),
    "logp_good": ("up", "the good responses (the alignment tax)"),
}
"""The figures CUT is meant to move, in the order a reading leads with, and their direction."""


def read_figures(
    before: dict, after: dict, *, push_ratio: float | None = None, detect_auc: float | None = None
) -> list[str]:
    """One sentence per :data:`TARGETS` figure present in both: how it moved, and for a figure
    that moved against the method, the likely reason given the data's push balance and detection
    AUC measured before training (docs/method.md §5)."""
    lines = []
    for name, (direction, what) in TARGETS.items():
        if name not in before or name not in after:
            continue
        change = after[name] - before[name]
        wrong = change > 0 if direction == "down" else change < 0
        moved = "rose" if change > 0 else "fell" if change < 0 else "did not move"
        line = f"{name} {moved} ({before[name]:.3f} -> {after[name]:.3f}): {what}"
        if not wrong:
            lines.append(line + ", as CUT intends.")
            continue
        reasons = []
        if name == "logp_good":
            reasons.append("training on a few records moves probability away from responses "
                           "it does not train on")  # fmt: skip
        else:
            if push_ratio is not None and push_ratio < 1:
                reasons.append(
                    f"the push ratio was {push_ratio:.2f} < 1: CUT's plain-prompt term gives "
                    "likelihood to every unflagged token of a bad response, which outweighs the "
                    "unlikelihood on the flagged ones, and Align-N adds likelihood too"
                )
            if detect_auc is not None and detect_auc < 0.7:
                reasons.append(
                    f"detection AUC was {detect_auc:.2f}: the judgments raise the words they quote "
                    "more than the errors, so the unlikelihood lands on the wrong tokens"
                )
            if not reasons:
                reasons.append("a difference this small may be noise at this sample size")
        lines.append(line + ", AGAINST the method: " + "; ".join(reasons) + ".")
    return lines
