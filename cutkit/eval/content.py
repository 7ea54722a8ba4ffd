"""Does an answer say something about its topic? A content check that a degenerate answer cannot
pass (a pure function of the text).

A constraint checker alone rewards saying nothing: "Small." satisfies "in at most 10 words", and
"1. Volcano\\n2. No" satisfies it too. :func:`content_problem` is the second half of an honest
metric (``honest = constraint satisfied and content_problem(...) is None``). It returns the first
rule that applies, in this order, or None:

1. the :func:`~cutkit.eval.degeneration.degeneration` reasons: ``"empty"``, ``"truncated"``,
   ``"repetitive"`` (a word said twice in a row, a 4-word sequence three times);
2. ``"too_short"``: fewer than :data:`MIN_WORDS` words where a description was asked for;
3. ``"fragment_list"``: two or more list items (lines opening with ``1.``, ``2)``, ``-``, ``*``)
   of which half or more have at most two words, or that repeat an item ("1. Volcano\\n2. No\\n3.
   No"), unless a list was asked for (``allow_list``);
4. ``"echo"``: the same content word (not a topic word, not a stop word) twice within three words
   ("majestic and majestic", "unforgiving, so unforgiving");
5. ``"tautology"``: no content word besides the topic's own ("Cities are cities.", "Amazon:
   \\"Amazon\\"");
6. ``"off_topic"``: neither the topic's name nor one of its associated words (for example
   "lava", "magma" for volcanoes) appears, compared by word stem.

Words are the :func:`~cutkit.eval.degeneration.words` of the text (letters, lowercased; numbers
and punctuation dropped). Two words share a stem when, after a trailing "es" or "s" is removed,
one is a prefix of the other and they share their first ``min(5, len)`` letters ("volcanic" ~
"volcanoes", "bees" ~ "bee"). The rules were written before the hand-labelled validation sample
was read (``benchmarks/content_check/``: agreement and Cohen's kappa against a blind
label).

>>> content_problem("Small.", "volcanoes", ("lava", "magma"))
'too_short'
>>> content_problem("Cities are cities.", "cities")
'tautology'
>>> content_problem("Lava flows from a mountain that erupts.", "volcanoes", ("lava",))
>>> content_problem("Bananas are yellow and sweet.", "the piano", ("keys", "music"))
'off_topic'
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from cutkit.eval.degeneration import degeneration, words

MIN_WORDS = 3
"""Fewest words of a description ("Small." and "Volcanoes erupt" are not one; "Volcanoes erupt
lava." is)."""

ECHO_WINDOW = 3
"""A content word seen again within this many words is an echo ("majestic and majestic")."""

CONTENT_PROBLEMS = (
    "empty",
    "truncated",
    "repetitive",
    "too_short",
    "fragment_list",
    "echo",
    "tautology",
    "off_topic",
)
"""The reasons :func:`content_problem` returns, in the order it tests them."""

STOP_WORDS = frozenset(
    """a an the and or but nor so yet of in on at to for from by with as into onto about over under
    is are was were be been being am it its it's this that these those they them their there here
    he she his her we our you your i me my not no very more most much many such than then also
    can could will would should may might must do does did has have had just only all any each
    both some what which who whom whose when where why how one ones""".split()  # noqa: SIM905
)
"""Function words: neither content nor topic."""

_LIST_ITEM = re.compile(r"^[ \t]*(?:\d+[.)]|[-*\u2022])[ \t]*(.*)$", re.MULTILINE)


def stem(word: str) -> str:
    """``word`` lowercased without a trailing "es" or "s" (a crude plural stem)."""
    word = word.lower()
    for suffix in ("es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def same_stem(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` share a stem (see the module docstring)."""
    a, b = stem(a), stem(b)
    short, long = sorted((a, b), key=len)
    if len(short) < 3:
        return a == b
    return long.startswith(short) or (len(short) >= 5 and long[:5] == short[:5])


def topic_terms(topic: str, associated: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """(the topic's own content words, its associated words), lowercased: ``"the human heart"``
    -> ``["human", "heart"]``."""
    own = [w for w in words(topic) if w not in STOP_WORDS]
    extra = [w for term in associated for w in words(term) if w not in STOP_WORDS]
    return own, extra


def _fragment_list(text: str) -> bool:
    items = [m.group(1).strip() for m in _LIST_ITEM.finditer(text)]
    if len(items) < 2:
        return False
    short = sum(len(words(item)) <= 2 for item in items)
    repeated = max(Counter(item.lower() for item in items).values()) > 1
    return repeated or 2 * short >= len(items)


def echo(text: str, topic: str) -> str | None:
    """The content word ``text`` says again within :data:`ECHO_WINDOW` words ("majestic"), or
    None (the ``echo`` rule)."""
    own, _ = topic_terms(topic)
    return _echo(words(text), own)


def _echo(tokens: list[str], topical: list[str]) -> str | None:
    for i, word in enumerate(tokens):
        if word in STOP_WORDS or len(word) < 3 or any(same_stem(word, t) for t in topical):
            continue
        if word in tokens[i + 1 : i + 1 + ECHO_WINDOW]:
            return word
    return None


def content_problem(
    text: str,
    topic: str | None,
    associated: Sequence[str] = (),
    *,
    finished: bool = True,
    allow_list: bool = False,
    min_words: int = MIN_WORDS,
) -> str | None:
    """Why ``text`` is no sound answer about ``topic`` (a :data:`CONTENT_PROBLEMS` name, the
    first rule that applies; module docstring), or None when it is one.

    Args:
        text: the answer.
        topic: what the instruction asked about ("volcanoes"); None (e.g. arithmetic) checks
            degeneration only.
        associated: words an answer about the topic is likely to use instead of its name.
        finished: False when generation stopped at the token limit.
        allow_list: a list was asked for (no ``fragment_list`` rule).
        min_words: fewest words of an answer (``too_short``).
    """
    reason = degeneration(text, finished)
    if reason is not None or topic is None:
        return reason
    tokens = words(text)
    if len(tokens) < min_words:
        return "too_short"
    if not allow_list and _fragment_list(text):
        return "fragment_list"
    own, extra = topic_terms(topic, associated)
    if _echo(tokens, own) is not None:
        return "echo"
    content = [w for w in tokens if w not in STOP_WORDS]
    if not [w for w in content if not any(same_stem(w, t) for t in own)]:
        return "tautology"
    if not any(same_stem(w, t) for w in content for t in own + extra):
        return "off_topic"
    return None


def is_sound(text: str, topic: str | None, associated: Sequence[str] = (), **kwargs) -> bool:
    """True when :func:`content_problem` finds nothing wrong."""
    return content_problem(text, topic, associated, **kwargs) is None
