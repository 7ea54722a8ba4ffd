"""The rule judge: checks a task's constraints and writes a varied, verbatim-quoting critique
with the character spans it criticises (each kind's sentences and praise:
:mod:`cutkit.online.kinds.registry`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from cutkit.online.checkers import check
from cutkit.online.judges.base import JudgeResult, Judgment, _check_lengths
from cutkit.online.kinds.registry import CONSTRAINT_KINDS
from cutkit.online.tasks import Task
from cutkit.online.text import clip

EMPTY_JUDGMENTS = (
    "The response is empty: it does not answer the instruction at all.",
    "There is no response to judge; the instruction is not answered.",
)
"""RuleJudge's judgments of an empty response (which may break no constraint, yet is no answer)."""


def _merge_spans(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


class RuleJudge:
    """Judges responses to :class:`~cutkit.online.tasks.Task` instructions by checking their
    constraints (deterministic, offline).

    Args:
        tasks: tasks whose instruction strings ``judge`` may receive instead of Task objects.
        seed: varies the wording (the same seed, instruction and response give the same text).
    """

    name = "rule"

    def __init__(self, tasks: Sequence[Task] = (), *, seed: int = 0):
        self.seed = seed
        self._tasks = {task.instruction: task for task in tasks}

    def _task(self, instruction: str | Task) -> Task:
        if isinstance(instruction, Task):
            return instruction
        task = self._tasks.get(instruction)
        if task is None:
            raise ValueError(
                "RuleJudge has no constraints for the instruction "
                f"{clip(instruction, 60)}: pass "
                "cutkit.online.tasks.Task objects, or construct RuleJudge(tasks=...) with them"
            )
        return task

    def judge(
        self, instructions: Sequence[str | Task], responses: Sequence[str]
    ) -> list[JudgeResult]:
        _check_lengths(instructions, responses)
        return [
            self.judge_one(self._task(i), r) for i, r in zip(instructions, responses, strict=True)
        ]

    def judge_one(self, task: Task, response: str) -> Judgment:
        """The judgment of one response (see the module docstring)."""
        rng = random.Random(f"{self.seed}\x00{task.instruction}\x00{response}")
        if not response.strip():
            return Judgment(rng.choice(EMPTY_JUDGMENTS), False, meta={"violations": ["empty"]})
        violations = check(task, response)
        if not violations:
            return Judgment(self._commendation(task, rng), True)
        sentences = [
            rng.choice(CONSTRAINT_KINDS[v.kind].critiques(v, response)) for v in violations
        ]
        opener = rng.choice(
            ["", "", "The response does not follow the instruction. "]
            if len(violations) == 1
            else ["", f"There are {len(violations)} problems. ", "The response has several flaws. "]
        )
        spans = _merge_spans([span for v in violations for span in v.spans])
        return Judgment(
            opener + " ".join(sentences),
            False,
            error_spans=spans,
            meta={"violations": [v.kind for v in violations]},
        )

    @staticmethod
    def _commendation(task: Task, rng: random.Random) -> str:
        praise = [CONSTRAINT_KINDS[c.kind].praise.format(**c.params) for c in task.constraints]
        praise_text = " and ".join(praise)
        return rng.choice(
            [
                "Perfect.",
                "Perfect.",
                f"Perfect. {praise_text[0].upper() + praise_text[1:]}.",
                f"Perfect: {praise_text}.",
                "Perfect. It follows the instruction exactly.",
            ]
        )
