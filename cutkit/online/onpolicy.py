"""The on-policy word-limit experiment's pieces, shared by ``cutkit demo`` and
``benchmarks/onpolicy/onpolicy_experiment.py`` (and the learning curves built on it).

The setting is the one where CUT's mechanism can act: the model's OWN greedy answers to word-limit
instructions ("Describe coffee in at most 10 words."), judged by the rule judge, which quotes the
words past the limit verbatim and marks them as the record's gold ``error_spans``. In order:

1. :func:`word_limit_splits`: instructions on disjoint topic sets (train / validation / held-out);
2. :func:`answer_tasks` and :func:`answer_rows`: greedy answers and, per answer, whether it meets
   its limit (raw) and does so soundly (honest: :func:`cutkit.online.checkers.satisfies_honestly`);
3. :func:`judge_answers`: judged records of the finished answers, each too-long one with a
   refinement (its first n words) for the objectives that train on refinements;
4. :func:`detection_gate`: before training, does the judgment raise the criticised tokens (the
   detection AUC, target >= 0.8) and which way does CUT's plain-prompt term push (push balance);
5. :func:`heldout_figures`: after training, the held-out figures, named as
   :func:`cutkit.evaluate` names them (``logp_error_tokens``, ``logp_other_tokens``,
   ``logp_good``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cutkit.data.records import JudgmentRecord
from cutkit.online.tasks import Task

TARGET_AUC = 0.8
"""Detection AUC the gate asks for before training tests the mechanism (docs/method.md §5)."""


def word_limit_splits(
    topic_counts: Mapping[str, int | None],
    n_tasks: Mapping[str, int],
    limits: Sequence[int],
    seed: int,
) -> dict[str, list[Task]]:
    """Word-limit tasks per split on disjoint topics: the topics are shuffled with ``seed`` and
    split in the order of ``topic_counts`` (``None``: all the remaining topics); each split's
    instructions (every topic x limit) are shuffled and the first ``n_tasks[split]`` kept.
    ValueError when a split has fewer instructions than asked for."""
    from cutkit.online.generator import TOPICS, word_limit_tasks

    topics = [topic for topic, _ in TOPICS]
    random.Random(seed).shuffle(topics)
    tasks, start = {}, 0
    for split, count in topic_counts.items():
        names = topics[start:] if count is None else topics[start : start + count]
        start = len(topics) if count is None else start + count
        pool = word_limit_tasks(names, limits, split)
        random.Random(f"{seed}-{split}").shuffle(pool)
        if len(pool) < n_tasks[split]:
            raise ValueError(f"only {len(pool)} {split} instructions for {n_tasks[split]}")
        tasks[split] = pool[: n_tasks[split]]
    return tasks


def answer_tasks(model, tokenizer, tasks: Sequence[Task], *, template: str, max_new_tokens: int,
                 batch_size: int = 24):  # fmt: skip
    """The model's greedy answers (:class:`~cutkit.eval.generation.Generation`, one per task)."""
    from cutkit.eval.generation import generate_answers

    return generate_answers(model, tokenizer, [t.instruction for t in tasks], template=template,
                            max_new_tokens=max_new_tokens, batch_size=batch_size)  # fmt: skip


def answer_rows(tasks: Sequence[Task], generations) -> list[dict[str, Any]]:
    """Per task: ``task`` (id), ``instruction``, ``response``, ``finished``, ``satisfied`` (the
    constraints met by a finished, non-empty answer), ``honest`` (met by a sound answer),
    ``content_problem`` (the content check's reason, or None), ``words`` and ``degenerate``
    (:func:`cutkit.eval.degeneration.degeneration`'s reason, or None)."""
    from cutkit.eval.degeneration import degeneration
    from cutkit.online.checkers import check, satisfies_honestly, task_content_problem

    rows = []
    for task, g in zip(tasks, generations, strict=True):
        rows.append(
            {
                "task": task.id,
                "instruction": task.instruction,
                "response": g.text,
                "finished": g.finished,
                "satisfied": bool(g.text.strip()) and g.finished and not check(task, g.text),
                "words": len(g.text.split()),
                "degenerate": degeneration(g.text, g.finished),
                "content_problem": task_content_problem(task, g.text, g.finished),
                "honest": satisfies_honestly(task, g.text, g.finished),
            }
        )
    return rows


def first_words(text: str, n: int) -> str:
    """The refinement of a too-long answer: its first n words, ending in a full stop."""
    kept = " ".join(text.split()[:n]).rstrip(",;:-")
    return kept if kept.endswith((".", "!", "?")) else kept + "."


def judge_answers(
    tasks: Sequence[Task],
    rows: Sequence[Mapping[str, Any]],
    split: str,
    *,
    keep_cut_off: bool = False,
    content_check: bool = False,
) -> tuple[list[JudgmentRecord], int]:
    """Judged records of the non-empty answers (:func:`answer_rows`' rows; RuleJudge, verbatim
    quotes, gold spans), with a first-n-words refinement for each too-long one; and the number of
    cut-off answers (no EOS), which are dropped unless ``keep_cut_off``. ``content_check``: the
    judge also criticises content (``RuleJudge(content_check=True)``); a record so criticised
    names its problems in ``meta["content"]`` and, unless it is also too long, has no refinement
    (its first n words are no fix)."""
    from cutkit.online.judges.rule import RuleJudge

    judge = RuleJudge(seed=0, content_check=content_check)
    records, n_cut_off = [], 0
    for task, row in zip(tasks, rows, strict=True):
        if not row["response"].strip():
            continue
        if not row["finished"]:
            n_cut_off += 1
            if not keep_cut_off:
                continue
        verdict = judge.judge_one(task, row["response"])
        violations = verdict.meta.get("violations", [])
        n = task.constraints[0].params["n"]
        meta = {"task": task.to_dict(), "kind": "max_words", "truncated": not row["finished"]}
        content = [v for v in violations if v != "max_words"]
        if content:
            meta["content"] = content
        records.append(
            JudgmentRecord(
                f"{split}-{task.id}",
                task.instruction,
                row["response"],
                verdict.text,
                is_positive=verdict.is_positive,
                error_spans=verdict.error_spans,
                refinement=first_words(row["response"], n) if "max_words" in violations else None,
                meta=meta,
            )
        )
    return records, n_cut_off


def detection_gate(
    model,
    tokenizer,
    negatives: Sequence[JudgmentRecord],
    *,
    threshold: float,
    ul_weight: float = 1.0,
    unflagged: str = "mle",
    template: str,
    max_length: int,
) -> tuple[dict[str, Any], Any]:
    """Before training: how well the judgments single out their gold error tokens and which way
    CUT's plain-prompt term pushes. Returns ``(gate, tokens)``: ``gate`` holds
    :func:`cutkit.eval.detection.detection_quality`'s "all" row (``auc``, ``base_rate``,
    ``precision``, ``recall``, ``n_tokens``, ...), :func:`cutkit.eval.detection.push_balance`
    (``push_down``, ``push_up``, ``push_ratio``), ``target_auc`` and ``passed``; ``tokens`` is the
    :func:`cutkit.score_tokens` frame it was measured on."""
    from cutkit.eval.detection import detection_quality, push_balance
    from cutkit.eval.tokens import score_tokens

    tokens = score_tokens(model, tokenizer, negatives, template=template, threshold=threshold,
                          max_length=max_length)  # fmt: skip
    row = detection_quality(tokens, threshold).iloc[0].to_dict()
    quality = {k: v.item() if hasattr(v, "item") else v for k, v in row.items()}  # plain numbers
    balance = push_balance(tokens, threshold, ul_weight=ul_weight, unflagged=unflagged)
    gate = {**quality, **balance, "target_auc": TARGET_AUC,
            "passed": bool(quality["auc"] >= TARGET_AUC)}  # fmt: skip
    return gate, tokens


def heldout_figures(
    model,
    tokenizer,
    tasks: Sequence[Task],
    reference: Sequence[JudgmentRecord],
    *,
    template: str,
    max_new_tokens: int,
    max_length: int,
) -> dict[str, Any]:
    """The model's held-out answers and figures: ``rows`` (:func:`answer_rows`),
    ``satisfaction`` and ``honest_satisfaction`` (shares of the tasks), ``mean_words``,
    ``degenerate`` (share), and, on the base model's judged held-out answers ``reference``, the
    mean plain-prompt log-prob (nats per token) of the words past the limit
    (``logp_error_tokens``), of the other words of the too-long answers (``logp_other_tokens``)
    and of the accepted answers (``logp_good``: the alignment tax), with ``n_accepted``."""
    from cutkit.eval.metrics import mean_response_logprobs
    from cutkit.eval.tokens import score_tokens

    rows = answer_rows(tasks, answer_tasks(model, tokenizer, tasks, template=template,
                                           max_new_tokens=max_new_tokens))  # fmt: skip
    figures: dict[str, Any] = {
        "satisfaction": float(np.mean([r["satisfied"] for r in rows])),
        "honest_satisfaction": float(np.mean([r["honest"] for r in rows])),
        "mean_words": float(np.mean([r["words"] for r in rows])),
        "degenerate": float(np.mean([r["degenerate"] is not None for r in rows])),
    }
    negatives = [r for r in reference if r.is_negative]
    if negatives:
        tokens = score_tokens(model, tokenizer, negatives, template=template,
                              max_length=max_length)  # fmt: skip
        gold = tokens["in_error_span"].astype(bool)
        figures["logp_error_tokens"] = float(tokens.loc[gold, "logp_plain"].mean())
        figures["logp_other_tokens"] = float(tokens.loc[~gold, "logp_plain"].mean())
    accepted = [(r.prompt_instruction, r.response) for r in reference if r.is_positive]
    if accepted:
        figures["logp_good"] = float(
            mean_response_logprobs(model, tokenizer, accepted, template=template).mean()
        )
    figures["n_accepted"] = len(accepted)
    return {"rows": rows, **figures}
