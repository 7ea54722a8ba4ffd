"""Instructions with machine-checkable constraints: the task generator behind online alignment.

A :class:`Task` is an instruction plus the :class:`Constraint` list a response must satisfy; the
checkers here say *which* constraint a response breaks, with the facts (counts, offending words)
and the character spans of the response at fault. :class:`cutkit.online.judges.rule.RuleJudge` turns those
facts into natural-language judgments; the online loop's verifiable metric is the share of
held-out tasks whose greedy answer satisfies every constraint.

Constraint kinds (``Constraint.params`` in brackets):

- ``lowercase``: no uppercase letter anywhere;
- ``max_words`` (``n``): at most n whitespace-separated words;
- ``include_word`` / ``exclude_word`` (``word``): the word occurs / does not occur (whole word,
  case-insensitive);
- ``no_commas``: no ``,`` anywhere;
- ``end_with`` (``phrase``): the response, trailing whitespace removed, ends with the exact phrase;
- ``numbered_list`` (``n``): lines ``1. ...`` (or ``1) ...``) numbered 1..n in order, exactly n;
- ``json_keys`` (``keys``): a single JSON object with exactly these keys and nothing around it
  (one enclosing Markdown code fence is tolerated);
- ``arithmetic`` (``expression``, ``answer``): the response is just the number ``answer``
  (an integer, optionally followed by a full stop).

The generator is seeded and deterministic: :func:`iter_tasks` yields an endless stream over 9
families x 64 topics x several phrasings and parameters (an optional second, compatible
constraint on some tasks); :func:`generate_tasks` takes unique instructions from it, skipping an
``exclude`` set, so a held-out set (:func:`heldout_tasks`, its own seed) and training rounds can be
kept disjoint.

>>> task = generate_tasks(1, seed=3)[0]
>>> satisfies(task, "x") in (True, False)
True
>>> [v.kind for v in check_constraint(Constraint("no_commas"), "red, green")]
['no_commas']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KINDS = (
    "lowercase",
    "max_words",
    "include_word",
    "exclude_word",
    "no_commas",
    "end_with",
    "numbered_list",
    "json_keys",
    "arithmetic",
)
"""Every constraint kind; each is also the name of the instruction family built around it."""

HELDOUT_SEED = 20231222
"""Seed of the default held-out set (the online loop's training stream excludes its instructions)."""


@dataclass(frozen=True)
class Constraint:
    """One checkable requirement: ``kind`` (one of :data:`KINDS`) and its parameters."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown constraint kind {self.kind!r}; known kinds: {KINDS}")

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


@dataclass
class Violation:
    """A broken constraint: its ``kind``, the ``facts`` a judgment states (counts, offending
    words, the expected value...) and the character ``spans`` ``(start, end)`` of the response at
    fault (empty when the fault is something missing)."""

    kind: str
    facts: dict[str, Any]
    spans: list[tuple[int, int]] = field(default_factory=list)
