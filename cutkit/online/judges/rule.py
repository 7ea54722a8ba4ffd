"""The rule judge: checks a task's constraints and writes a varied, verbatim-quoting critique
with the character spans it criticises (each kind's sentences and praise:
:mod:`cutkit.online.kinds.registry`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from cutkit.eval.content import echo
from cutkit.eval.degeneration import repetition
from cutkit.online.checkers import check, task_content_problem
from cutkit.online.judges.base import JudgeResult, Judgment, check_judge_lengths
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
        content_check: also criticise what the content check rejects
            (:func:`~cutkit.online.checkers.task_content_problem`: repetitive, too short, a
            fragment list, an echoed word, a tautology, off topic), quoting the part at fault, so
            that training learns from the verdicts honest satisfaction scores by. A response
            with a content problem is negative even when it meets every constraint. False
            judges the constraints alone (the on-policy experiment's committed judge).
    """

    name = "rule"

    def __init__(self, tasks: Sequence[Task] = (), *, seed: int = 0, content_check: bool = False):
        self.seed = seed
        self.content_check = content_check
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
        check_judge_lengths(instructions, responses)
        return [
            self.judge_one(self._task(i), r) for i, r in zip(instructions, responses, strict=True)
        ]

    def judge_one(self, task: Task, response: str) -> Judgment:
        """The judgment of one response (see the module docstring)."""
        rng = random.Random(f"{self.seed}\x00{task.instruction}\x00{response}")
        if not response.strip():
            return Judgment(rng.choice(EMPTY_JUDGMENTS), False, meta={"violations": ["empty"]})
        violations = check(task, response)
        problem = task_content_problem(task, response) if self.content_check else None
        if not violations and problem is None:
            return Judgment(self._commendation(task, rng), True)
        sentences = [
            rng.choice(CONSTRAINT_KINDS[v.kind].critiques(v, response)) for v in violations
        ]
        spans = [span for v in violations for span in v.spans]
        kinds = [v.kind for v in violations]
        if problem is not None:
            sentence, content_spans = content_critique(problem, task, response)
            sentences.append(sentence)
            spans += content_spans
            kinds.append(problem)
        opener = rng.choice(
            ["", "", "The response does not follow the instruction. "]
            if len(sentences) == 1
            else ["", f"There are {len(sentences)} problems. ", "The response has several flaws. "]
        )
        return Judgment(
            opener + " ".join(sentences),
            False,
            error_spans=_merge_spans(spans),
            meta={"violations": kinds},
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


def content_critique(problem: str, task: Task, response: str) -> tuple[str, list[tuple[int, int]]]:
    """The sentence criticising a content ``problem`` (a
    :data:`~cutkit.eval.content.CONTENT_PROBLEMS` name) of ``response``, quoting what is at fault,
    and the character spans it criticises (the repeated words; else the whole answer)."""
    topic = task.topic or "the question"
    whole = [(0, len(response.rstrip()))]
    text = clip(response, 80)  # quoted
    if problem in ("echo", "repetitive"):
        said = echo(response, topic) if problem == "echo" else repetition(response)
        said = said or text
        first = response.lower().find(said.split()[0])
        again = response.lower().find(said.split()[-1], first + 1) if first >= 0 else -1
        spans = [(again, again + len(said.split()[-1]))] if again >= 0 else whole
        return f'It says "{said.split()[-1]}" again instead of saying something new.', spans
    sentences = {
        "too_short": f"{text} is not a description of {topic}: answer in a full sentence.",
        "fragment_list": f"{text} lists fragments instead of describing {topic}.",
        "tautology": f"{text} only restates the topic and says nothing about {topic}.",
        "off_topic": f"{text} is not about {topic}.",
        "truncated": "The answer stops in the middle: it is cut off.",
    }
    return sentences.get(problem, f"{text} is not a sound answer about {topic}."), whole
