"""Checking responses against tasks: the violations of each constraint, from its kind's check."""

from __future__ import annotations

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
