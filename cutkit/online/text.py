"""How judgments quote and count: response text quoted in full, other text clipped."""

from __future__ import annotations

from collections.abc import Sequence


def quote(text: str) -> str:
    """``text`` in double quotes, in full (whitespace runs normalised to one space)."""
    return '"' + " ".join(text.split()) + '"'


def quote_list(items: Sequence[str]) -> str:
    """Every item quoted in full: ``"a"``, ``"a" and "b"``, ``"a", "b" and "c"``."""
    quoted = [quote(item) for item in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def clip(text: str, width: int) -> str:
    """A quote of at most ``width`` characters of text that is not a judged response (error
    messages, server replies), elided with "..." when longer."""
    text = " ".join(text.split())
    return f'"{text[: width - 3].rstrip()}..."' if len(text) > width else f'"{text}"'


def plural(count: int, word: str) -> str:
    """``"1 item"``, ``"2 items"``."""
    return f"{count} {word}" + ("" if count == 1 else "s")
