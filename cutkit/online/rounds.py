"""One online round's records: judged responses -> training records, and held-out metrics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from cutkit.data.records import JUNK_REASONS, JudgmentRecord, junk_reason
from cutkit.eval.degeneration import DEGENERATION_KINDS, degeneration
from cutkit.eval.generation import Generation
from cutkit.online.checkers import check, task_content_problem
from cutkit.online.config import NO_SPANS_REASON, TRUNCATED_REASON
from cutkit.online.judges.base import JudgeFailure, Judgment
from cutkit.online.judges.rule import RuleJudge
from cutkit.online.tasks import Task


def judged_records(
    r: int,
    tasks: Sequence[Task],
    responses: Sequence[str],
    results: Sequence[Judgment | JudgeFailure | None],
    judge_name: str,
    *,
    truncated: Sequence[bool] | None = None,
) -> tuple[list[JudgmentRecord], list[dict[str, Any]]]:
    """Records to train on and the excluded rows (failed judge call, empty or truncated response,
    junk judgment, each with its ``reason``). ``results[i]`` is None for a response never judged.

    ``truncated[i]`` is True for a response cut off at ``max_new_tokens`` (None: none was): a
    judged one becomes a record with ``meta["truncated"] = True`` (trained on without EOS), an
    unjudged one is excluded with :data:`TRUNCATED_REASON`; excluded rows of truncated responses
    carry ``"truncated": True``."""
    records, excluded = [], []
    flags = [False] * len(tasks) if truncated is None else truncated
    for task, response, result, cut in zip(tasks, responses, results, flags, strict=True):
        record_id = f"r{r:02d}-{task.id}"
        row = {"id": record_id, "instruction": task.instruction, "output": response}
        if cut:
            row["truncated"] = True
        if result is None:
            reason = TRUNCATED_REASON if cut and response.strip() else "empty response (not judged)"
            excluded.append({**row, "reason": reason})
            continue
        if isinstance(result, JudgeFailure):
            excluded.append({**row, "reason": result.reason, "attempts": result.attempts})
            continue
        record = JudgmentRecord(
            id=record_id,
            instruction=task.instruction,
            response=response,
            judgment=result.text,
            is_positive=result.is_positive,
            error_spans=result.error_spans,
            meta={
                "round": r,
                "judge": judge_name,
                "attempts": result.attempts,
                "task": task.to_dict(),
                **result.meta,
                **({"truncated": True} if cut else {}),
            },
        )
        reason = junk_reason(record)
        if reason is not None:
            excluded.append({**row, "judgment": result.text, "reason": JUNK_REASONS[reason]})
            continue
        records.append(record)
    return records, excluded


def exclude_unspanned(
    records: Sequence[JudgmentRecord], excluded: Sequence[dict[str, Any]]
) -> tuple[list[JudgmentRecord], list[dict[str, Any]]]:
    """``records`` without the criticised ones that have no error spans, and ``excluded`` with
    those added (reason :data:`NO_SPANS_REASON`, unless already listed): oracle span detection
    cannot flag tokens without them, and never trains with made-up flags."""
    no_spans = [rec for rec in records if rec.is_negative and not rec.error_spans]
    known = {row["id"] for row in excluded}
    added = [
        {
            "id": rec.id,
            "instruction": rec.instruction,
            "output": rec.response,
            "judgment": rec.judgment,
            "reason": NO_SPANS_REASON,
        }
        for rec in no_spans
        if rec.id not in known
    ]
    return [rec for rec in records if rec not in no_spans], [*excluded, *added]


def judging_summary(
    n_instructions: int,
    records: Sequence[JudgmentRecord],
    excluded: Sequence[dict[str, Any]],
    truncated: str,
) -> dict[str, Any]:
    """A round's judging figures (the start of its ``metrics["train"]``): counts of judged,
    excluded (by reason kind), truncated (``truncated``: the run's policy for them), accepted
    and criticised responses, the accept rate, and ``trained`` False."""
    n_positive = sum(rec.is_positive for rec in records)
    n_truncated = sum(bool(rec.meta.get("truncated")) for rec in records)
    n_truncated += sum(bool(row.get("truncated")) for row in excluded)
    return {
        "n_instructions": n_instructions,
        "n_judged": len(records),
        "n_excluded": len(excluded),
        "n_truncated": n_truncated,
        "truncated": truncated,
        "excluded": dict(Counter(_reason_kind(row["reason"]) for row in excluded)),
        "n_positive": n_positive,
        "n_negative": len(records) - n_positive,
        "accept_rate": n_positive / len(records) if records else float("nan"),
        "trained": False,
    }


def _reason_kind(reason: str) -> str:
    """A short key for counting exclusion reasons ("HTTP 500", "timed out", ...)."""
    return reason.split(":")[0].split(" (")[0]


def heldout_metrics(
    tasks: Sequence[Task],
    responses: Sequence[str | Generation],
    finished: Sequence[bool] | None = None,
) -> tuple[dict, list[dict]]:
    """Constraint-satisfaction figures of ``responses`` to the held-out ``tasks`` and one row per
    task (response, whether it finished, RuleJudge judgment, violated kinds, degeneration).

    Args:
        tasks: the held-out tasks.
        responses: one answer per task: a string, or a :class:`~cutkit.eval.generation.Generation`
            (its ``finished`` flag is used).
        finished: per answer, False when it was cut off at ``max_new_tokens``; None: taken from
            Generation answers, and every plain-string answer counts as finished.

    Returns ``(metrics, rows)``; metrics: ``satisfaction_rate`` (share of tasks with every
    constraint met by a non-empty response), ``honest_rate`` (share met by a *sound* answer:
    finished and passing the content check, :func:`~cutkit.online.checkers.satisfies_honestly`;
    a degenerate answer can meet a constraint, it cannot meet it honestly), ``n_honest``,
    ``content_problems`` (the count of each content check reason among the answers that met
    every constraint), ``by_family`` (the raw rate per family),
    ``by_constraint`` (share of constraints of each kind met), ``mean_words``, ``n_empty``,
    ``n_truncated`` (answers cut off at the token limit), ``n_degenerate`` (empty, truncated or
    repetitive: :func:`cutkit.eval.degeneration.degeneration`) and ``degenerate`` (the count of each
    of those reasons, the first that applies per answer).
    """
    from cutkit.eval.generation import Generation

    if finished is None:
        finished = [r.finished if isinstance(r, Generation) else True for r in responses]
    responses = [r.text if isinstance(r, Generation) else r for r in responses]
    judge = RuleJudge(seed=0)  # criticises content as well: the judgment shown per answer
    rows, family, kinds = [], {}, {}
    for task, response, done in zip(tasks, responses, finished, strict=True):
        violations = check(task, response)
        broken = {v.kind for v in violations}
        ok = not violations and bool(response.strip())  # an empty answer is no answer
        problem = task_content_problem(task, response, bool(done))
        family.setdefault(task.family, []).append(ok)
        for c in task.constraints:
            kinds.setdefault(c.kind, []).append(bool(response.strip()) and c.kind not in broken)
        rows.append(
            {
                "id": task.id,
                "family": task.family,
                "instruction": task.instruction,
                "response": response,
                "finished": bool(done),
                "satisfied": ok,
                "honest": ok and problem is None,
                "content_problem": problem,
                "violations": sorted(broken) if response.strip() else ["empty"],
                "degenerate": degeneration(response, bool(done)),
                "judgment": judge.judge_one(task, response).text,
            }
        )
    n = len(rows)
    metrics = {
        "n_tasks": n,
        "n_satisfied": sum(row["satisfied"] for row in rows),
        "satisfaction_rate": sum(row["satisfied"] for row in rows) / n if n else float("nan"),
        "n_honest": sum(row["honest"] for row in rows),
        "honest_rate": sum(row["honest"] for row in rows) / n if n else float("nan"),
        "content_problems": dict(
            Counter(
                row["content_problem"]
                for row in rows
                if row["satisfied"] and row["content_problem"]
            )
        ),
        "by_family": {k: sum(v) / len(v) for k, v in sorted(family.items())},
        "by_constraint": {k: sum(v) / len(v) for k, v in sorted(kinds.items())},
        "mean_words": sum(len(r.split()) for r in responses) / n if n else float("nan"),
        "n_empty": sum(not r.strip() for r in responses),
        "n_truncated": sum(not row["finished"] for row in rows),
        "n_degenerate": sum(row["degenerate"] is not None for row in rows),
        "degenerate": {
            kind: sum(row["degenerate"] == kind for row in rows) for kind in DEGENERATION_KINDS
        },
    }
    return metrics, rows
