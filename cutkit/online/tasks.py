"""Tasks: instructions with machine-checkable constraints, the data of online alignment.

A :class:`Task` is an instruction plus the :class:`Constraint` list a response must satisfy (the
kinds and their params: :mod:`cutkit.online.kinds`). :mod:`cutkit.online.checkers` says *which*
constraint a response breaks (a :class:`Violation`: the facts and the character spans at fault),
:class:`~cutkit.online.judges.rule.RuleJudge` turns those facts into natural-language judgments,
and :mod:`cutkit.online.generator` makes tasks (seeded, deterministic; held-out and training
tasks kept disjoint). The online loop's verifiable metric is the share of held-out tasks whose
greedy answer satisfies every constraint.

>>> from cutkit.online.checkers import check_constraint, satisfies
>>> from cutkit.online.generator import generate_tasks
>>> task = generate_tasks(1, seed=3)[0]
>>> satisfies(task, "x") in (True, False)
True
>>> [v.kind for v in check_constraint(Constraint("no_commas"), "red, green")]
['no_commas']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cutkit.online.kinds.registry import CONSTRAINT_KINDS
from cutkit.online.kinds.violation import Violation

__all__ = ["HELDOUT_SEED", "KINDS", "Constraint", "Task", "Violation"]

KINDS = tuple(CONSTRAINT_KINDS)
"""Every constraint kind's name (:data:`~cutkit.online.kinds.registry.CONSTRAINT_KINDS`); each is
also the name of the instruction family built around it."""

HELDOUT_SEED = 20231222
"""Seed of the default held-out set (the online loop's training stream excludes its
instructions)."""


@dataclass(frozen=True)
class Constraint:
    """One checkable requirement: ``kind`` (a registered kind) and its parameters."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in CONSTRAINT_KINDS:
            known = tuple(CONSTRAINT_KINDS)
            raise ValueError(f"unknown constraint kind {self.kind!r}; known kinds: {known}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.params}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Constraint:
        params = {k: v for k, v in data.items() if k != "kind"}
        if "keys" in params:
            params["keys"] = list(params["keys"])
        return cls(data["kind"], params)


@dataclass
class Task:
    """An instruction and the constraints a response to it must satisfy.

    Attributes:
        id: stable identifier (family + a hash of the instruction).
        instruction: the text the model is given.
        constraints: every constraint a good response satisfies (1 or 2).
        family: the kind of the main constraint.
        topic: the subject the instruction is about (None for arithmetic).
    """

    id: str
    instruction: str
    constraints: list[Constraint]
    family: str
    topic: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "instruction": self.instruction,
            "constraints": [c.to_dict() for c in self.constraints],
            "family": self.family,
            "topic": self.topic,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        return cls(
            id=data["id"],
            instruction=data["instruction"],
            constraints=[Constraint.from_dict(c) for c in data["constraints"]],
            family=data["family"],
            topic=data.get("topic"),
        )
