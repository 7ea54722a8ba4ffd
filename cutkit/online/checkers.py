"""Checking responses against tasks: the violations of each constraint, from its kind's check,
and the content check that makes satisfaction honest (:mod:`cutkit.eval.content`)."""

from __future__ import annotations

from cutkit.eval.content import content_problem
from cutkit.online.generator import topic_words
from cutkit.online.kinds.registry import CONSTRAINT_KINDS
from cutkit.online.tasks import Constraint, Task, Violation


def check_constraint(constraint: Constraint, response: str) -> list[Violation]:
    """The ways ``response`` breaks ``constraint`` (empty when it holds)."""
    return CONSTRAINT_KINDS[constraint.kind].check(constraint.params, response)


def check(task: Task, response: str) -> list[Violation]:
    """Every violation of every constraint of ``task`` by ``response``, in constraint order."""
    return [v for c in task.constraints for v in check_constraint(c, response)]


def satisfies(task: Task, response: str) -> bool:
    """True when ``response`` satisfies every constraint of ``task``."""
    return not check(task, response)


def task_content_problem(task: Task, response: str, finished: bool = True) -> str | None:
    """Why ``response`` is no sound answer to ``task`` whatever its constraints say
    (:func:`cutkit.eval.content.content_problem` with the task's topic and its associated words;
    lists allowed where a list was asked for), or None."""
    return content_problem(
        response,
        task.topic,
        topic_words(task.topic),
        finished=finished,
        allow_list=task.family == "numbered_list",
    )


def satisfies_honestly(task: Task, response: str, finished: bool = True) -> bool:
    """Honest satisfaction: ``response`` satisfies every constraint of ``task`` *and* is a sound
    answer (finished, not degenerate, on topic: :func:`task_content_problem`). "Small." meets a
    10-word limit; it does not satisfy honestly."""
    return satisfies(task, response) and task_content_problem(task, response, finished) is None


def verify_honestly(task: Task | dict, response: str, finished: bool = True) -> bool:
    """:func:`satisfies_honestly` of ``task`` or of its dict form (``Task.to_dict()``, as training
    records carry it in ``meta["task"]``): the verifier of the GRPO arm's reward
    (:func:`cutkit.train.grpo.train_grpo`)."""
    if isinstance(task, dict):
        task = Task.from_dict(task)
    return satisfies_honestly(task, response, finished)
