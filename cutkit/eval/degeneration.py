"""Is an answer degenerate? Empty, cut off at the token limit, or repetitive (a pure function).

The rule (:func:`degeneration` returns the first that applies, in this order):

1. ``"empty"``: the text has no non-whitespace character.
2. ``"truncated"``: the answer did not finish (``finished=False``: no EOS token before the
   generation limit, see :class:`cutkit.eval.generation.Generation`).
3. ``"repetitive"``: over the text's *words*, i.e. maximal runs of letters and digits (inner
   apostrophes kept) that contain at least one letter, compared lowercased (numbers such as list
   markers are not words; punctuation is ignored), either

   - a word is immediately followed by the same word with nothing but spaces, commas or hyphens
     between them ("majestic, majestic", "The the"; not "vaccines. Vaccines are"), or
   - some sequence of :data:`REPEAT_NGRAM` consecutive words occurs :data:`REPEAT_COUNT` or more
     times (occurrences may overlap; "1. evaporation, 2. evaporation, ..." is the word
     "evaporation" over and over).

Otherwise it is not degenerate (None). The n-gram rule may, rarely, hit a deliberate repetition
(a four-word name said three times, list items all opening with the same four words). Measured
on SmolLM2-135M-Instruct's greedy answers (``benchmarks/finish_rate/finish_rate.py``, 270 tasks):
all 32 answers that had not finished after 320 tokens are repetitive by this rule (loops), and 24
of the 238 that finished (10%).

>>> degeneration("The lava is majestic, Majestic.")
'repetitive'
>>> degeneration("Bees make honey.", finished=False)
'truncated'
>>> degeneration("Bees make honey."), degeneration("  ")
(None, 'empty')
"""

from __future__ import annotations

import itertools
import re
from collections import Counter

REPEAT_NGRAM = 4
"""Length (in words) of the word sequences counted by the "repetitive" rule."""

REPEAT_COUNT = 3
"""Occurrences of one such sequence that make an answer repetitive."""

DEGENERATION_KINDS = ("empty", "truncated", "repetitive")
"""The reasons :func:`degeneration` returns, in the order it tests them."""

_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
_SAME_PHRASE = re.compile(r"[\s,\-]*")


def _word_matches(text: str) -> list[re.Match]:
    return [m for m in _WORD.finditer(text) if any(c.isalpha() for c in m.group())]


def _norm(word: str) -> str:
    return word.lower().replace("\u2019", "'")


def words(text: str) -> list[str]:
    """The words of ``text`` as the rule counts them: lowercased, punctuation and numbers
    dropped."""
    return [_norm(m.group()) for m in _word_matches(text)]


def repetition(text: str) -> str | None:
    """The repeated words that make ``text`` repetitive ("majestic majestic", or the
    :data:`REPEAT_NGRAM`-word sequence occurring :data:`REPEAT_COUNT` times), or None when the
    text is not repetitive (see the module docstring)."""
    found = _word_matches(text)
    for first, second in itertools.pairwise(found):
        between = text[first.end() : second.start()]
        if _norm(first.group()) == _norm(second.group()) and _SAME_PHRASE.fullmatch(between):
            return f"{_norm(first.group())} {_norm(second.group())}"
    lowered = [_norm(m.group()) for m in found]
    grams = Counter(
        tuple(lowered[i : i + REPEAT_NGRAM]) for i in range(len(lowered) - REPEAT_NGRAM + 1)
    )
    for gram, count in grams.items():
        if count >= REPEAT_COUNT:
            return " ".join(gram)
    return None


def degeneration(text: str, finished: bool = True) -> str | None:
    """Why the answer ``text`` is degenerate ("empty", "truncated" or "repetitive", the first
    that applies; see the module docstring), or None when it is not.

    Args:
        text: the answer.
        finished: False when generation stopped at the token limit instead of at an EOS.
    """
    if not text.strip():
        return "empty"
    if not finished:
        return "truncated"
    if repetition(text) is not None:
        return "repetitive"
    return None


def is_degenerate(text: str, finished: bool = True) -> bool:
    """True when :func:`degeneration` finds a reason (empty, truncated or repetitive)."""
    return degeneration(text, finished) is not None
