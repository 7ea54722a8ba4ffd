"""How well the model's own judged-vs-plain ratio finds the tokens a judgment criticises:
thresholded reports, ROC AUC against gold error spans, and the push-down / push-up balance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from cutkit.data.records import JudgmentRecord
from cutkit.train.detection import is_flagged
from cutkit.train.losses import push_per_token, unlikelihood_weight
from cutkit.train.vocabulary import DEFAULT_THRESHOLD, UNFLAGGED


def detection_scores(tokens: pd.DataFrame) -> dict[str, float]:
    """Token-level precision, recall and F1 of ``flagged`` against ``in_error_span`` over the rows
    of a :func:`cutkit.eval.tokens.score_tokens` frame that have gold spans."""
    gold_known = tokens[tokens["in_error_span"].notna()]
    flagged = gold_known["flagged"].astype(bool)
    gold = gold_known["in_error_span"].astype(bool)
    true_pos = int((flagged & gold).sum())
    precision = true_pos / int(flagged.sum()) if flagged.any() else float("nan")
    recall = true_pos / int(gold.sum()) if gold.any() else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan")
    return {"detect_precision": precision, "detect_recall": recall, "detect_f1": f1}


DEFAULT_THRESHOLDS = (1.0, 1.05, 1.1, 1.2, 1.5, 2.0, 3.0)


def flags_at(scores: pd.DataFrame, threshold: float) -> pd.Series:
    """:func:`~cutkit.train.detection.is_flagged` of ``log_ratio`` per row, a bool Series (False
    where there is no judged context)."""
    return is_flagged(scores["log_ratio"].astype(float), threshold)


def detection_report(
    scores: pd.DataFrame, thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> pd.DataFrame:
    """How detection varies with lambda: one row per threshold.

    Columns: threshold, n_flagged (tokens flagged at that lambda), flagged_frac (share of the
    tokens with a judged context, i.e. of negative records), precision, recall, f1 (flagged
    against ``in_error_span``, over the rows with gold spans; NaN where undefined), computed by
    :func:`cutkit.eval.detection.detection_scores` on the flags recomputed from ``log_ratio``.
    """
    judged = scores["log_ratio"].notna()
    rows = []
    for threshold in thresholds:
        flagged = flags_at(scores, threshold)
        quality = detection_scores(scores.assign(flagged=flagged))
        rows.append(
            {
                "threshold": float(threshold),
                "n_flagged": int(flagged.sum()),
                "flagged_frac": float(flagged[judged].mean()) if judged.any() else math.nan,
                "precision": quality["detect_precision"],
                "recall": quality["detect_recall"],
                "f1": quality["detect_f1"],
            }
        )
    return pd.DataFrame(
        rows, columns=["threshold", "n_flagged", "flagged_frac", "precision", "recall", "f1"]
    )


def rank_auc(scores, labels) -> float:
    """ROC AUC of ``scores`` for the boolean ``labels``: the chance that a random positive scores
    higher than a random negative, ties counted half (the Mann-Whitney U / (n_pos * n_neg)).

    Computed from average ranks; rows whose score is NaN are left out. NaN when either class is
    empty."""
    values = np.asarray(scores, dtype=float)
    positive = np.asarray(labels, dtype=bool)
    if values.shape != positive.shape:
        raise ValueError(f"scores {values.shape} and labels {positive.shape} differ in shape")
    keep = ~np.isnan(values)
    values, positive = values[keep], positive[keep]
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = pd.Series(values).rank(method="average").to_numpy()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def record_groups(records: Sequence[JudgmentRecord]) -> dict[str, str]:
    """record id -> group name for :func:`detection_quality`: ``meta["kind"]`` (bundled records),
    else ``meta["task"]["family"]`` (online records), else ``meta["family"]``, else ``"all"``."""
    groups = {}
    for record in records:
        meta = record.meta or {}
        task = meta.get("task")
        family = task.get("family") if isinstance(task, Mapping) else None
        groups[record.id] = str(meta.get("kind") or family or meta.get("family") or "all")
    return groups


QUALITY_COLUMNS = [
    "group",
    "n_records",
    "n_tokens",
    "base_rate",
    "auc",
    "precision",
    "recall",
    "f1",
    "flagged_frac",
]


def _gold_mask(tokens: pd.DataFrame) -> np.ndarray:
    """Rows with a judged context (negative records) whose record has gold error spans."""
    return (tokens["log_ratio"].notna() & tokens["in_error_span"].notna()).to_numpy(dtype=bool)


def _in_gold(values) -> np.ndarray:
    """``in_error_span`` cells as bools (None/NaN: not in a gold span)."""
    return np.array([not pd.isna(v) and bool(v) for v in values], dtype=bool)


def _quality_row(group: str, gold: pd.DataFrame, threshold: float) -> dict:
    in_span = _in_gold(gold["in_error_span"])
    flagged = flags_at(gold, threshold).to_numpy(dtype=bool)
    scores = detection_scores(gold.assign(flagged=flagged))
    return {
        "group": group,
        "n_records": int(gold["record_id"].nunique()),
        "n_tokens": len(gold),
        "base_rate": float(in_span.mean()) if len(gold) else math.nan,
        "auc": rank_auc(gold["log_ratio"], in_span),
        "precision": scores["detect_precision"],
        "recall": scores["detect_recall"],
        "f1": scores["detect_f1"],
        "flagged_frac": float(flagged.mean()) if len(gold) else math.nan,
    }


def detection_quality(
    tokens: pd.DataFrame,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    groups: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """How well the judgment's log ratio finds the gold error tokens: row "all", then one row per
    group (sorted by name).

    Over the tokens of negative records that have gold ``error_spans`` (a :func:`score_tokens`
    frame): n_records, n_tokens, base_rate (share of them inside a gold span: the precision of
    flagging at random), auc (:func:`rank_auc` of ``log_ratio`` for ``in_error_span``; 0.5 is
    chance, 1 a perfect ranking; it does not depend on lambda), precision, recall, f1 and
    flagged_frac of the flags at ``threshold`` (recomputed from ``log_ratio``, scored by
    :func:`cutkit.eval.detection.detection_scores`). NaN where undefined (e.g. no gold spans).

    ``groups`` maps record id -> group name (e.g. :func:`record_groups`); records it leaves out or
    maps to ``"all"`` count only in the "all" row. A group of negative records without gold spans
    gets a row with n_records = 0.
    """
    gold = _gold_mask(tokens)
    rows = [_quality_row("all", tokens[gold], threshold)]
    if groups:
        names = np.array([groups.get(i) for i in tokens["record_id"].astype(str)], dtype=object)
        judged = tokens["log_ratio"].notna().to_numpy(dtype=bool)
        for name in sorted({n for n in names[judged] if n is not None and n != "all"}):
            rows.append(_quality_row(name, tokens[gold & (names == name)], threshold))
    return pd.DataFrame(rows, columns=QUALITY_COLUMNS)


def push_balance(
    tokens: pd.DataFrame,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    ul_weight: float = 1.0,
    unflagged: str = "mle",
    gamma: float = 0.0,
) -> dict[str, float]:
    """How hard CUT's plain-prompt (Misalign) term pushes the bad responses down versus up.

    Over the tokens of negative records (a :func:`score_tokens` frame), each token flagged at
    ``threshold`` gets unlikelihood -alpha log(1 - p), whose gradient weight on log p is
    ``push_down`` = alpha p / (1 - p) (p = exp(logp_plain); alpha = ``ul_weight``, times
    p_judged^gamma when ``gamma`` != 0), and each unflagged token gets likelihood, weight
    ``push_up`` = 1 (0 with ``unflagged="ignore"``). So ``push_ratio`` = push_down / push_up < 1
    means that, on balance, this term raises the probability of the bad responses rather than
    lowering it (before the judged-prompt likelihood, which raises them given their judgment).

    Returns: push_down, push_up, push_ratio (NaN when push_up is 0), n_flagged, n_tokens, and,
    when some of the records have gold error spans, push_down_error and push_up_error: the same
    two masses over the tokens inside gold spans.
    """
    if unflagged not in UNFLAGGED:
        raise ValueError(f"unflagged must be one of {UNFLAGGED}, got {unflagged!r}")
    judged = tokens[tokens["log_ratio"].notna().to_numpy(dtype=bool)]
    flagged = flags_at(judged, threshold).to_numpy(dtype=bool)
    logp = torch.tensor(judged["logp_plain"].to_numpy(dtype=float), dtype=torch.float64)
    weight = float(ul_weight)
    if gamma != 0:
        logp_judged = judged["logp_judged"].to_numpy(dtype=float)
        weight = unlikelihood_weight(weight, gamma, torch.tensor(logp_judged, dtype=torch.float64))
    down, up = push_per_token(
        logp,
        torch.tensor(flagged, dtype=torch.bool),
        torch.ones_like(logp, dtype=torch.bool),
        weight,
        unflagged,
    )
    down, up = down.numpy(), up.numpy().astype(float)
    push_down, push_up = float(down.sum()), float(up.sum())
    result: dict[str, float] = {
        "push_down": push_down,
        "push_up": push_up,
        "push_ratio": push_down / push_up if push_up > 0 else math.nan,
        "n_flagged": int(flagged.sum()),
        "n_tokens": len(judged),
    }
    if judged["in_error_span"].notna().any():
        error = _in_gold(judged["in_error_span"])
        result["push_down_error"] = float(down[error].sum())
        result["push_up_error"] = float(up[error].sum())
    return result
