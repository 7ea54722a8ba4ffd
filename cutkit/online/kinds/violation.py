"""What a checker reports: one broken constraint, its facts and the response's spans at fault."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Violation:
    """A broken constraint: its ``kind``, the ``facts`` a judgment states (counts, offending
    words, the expected value...) and the character ``spans`` ``(start, end)`` of the response at
    fault (empty when the fault is something missing)."""

    kind: str
    facts: dict[str, Any]
    spans: list[tuple[int, int]] = field(default_factory=list)
