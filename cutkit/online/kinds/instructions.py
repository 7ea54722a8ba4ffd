"""How the generator parameterises each constraint kind: seeded samplers of its parameters.

A sampler takes the task's random generator and the topic's words and returns ``(params,
fill)``: the constraint's parameters and the template fields that state them (``{n}``,
``{word}``...). The draws and their order are part of the generated tasks: changing them changes
every task after the first affected one.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

Params = dict[str, Any]

MAX_WORDS = (10, 15, 20, 25, 30, 40)
"""Word limits of max_words tasks (a second max_words constraint: from 20 up)."""
PHRASES = ("Thank you for reading.", "That is all.", "The end.", "Stay curious!", "Now you know.")
KEY_SETS = (
    ("name", "summary"),
    ("topic", "fact"),
    ("title", "description"),
    ("name", "category", "fact"),
    ("subject", "detail", "source"),
)
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
_OP_WORDS = {"+": ("+", "plus"), "-": ("-", "minus"), "*": ("*", "times")}


def _same(name: str, value: Any) -> tuple[Params, Params]:
    """One parameter, stated in the instruction as it is."""
    return {name: value}, {name: value}


def no_params(rng: random.Random, words: Sequence[str]) -> tuple[Params, Params]:
    return {}, {}


def sample_max_words(rng: random.Random, words: Sequence[str]) -> tuple[Params, Params]:
    return _same("n", rng.choice(MAX_WORDS))


def sample_topic_word(rng: random.Random, words: Sequence[str]) -> tuple[Params, Params]:
    return _same("word", rng.choice(words))


def sample_end_phrase(rng: random.Random, words: Sequence[str]) -> tuple[Params, Params]:
    return _same("phrase", rng.choice(PHRASES))


def sample_list_length(rng: random.Random, words: Sequence[str]) -> tuple[Params, Params]:
    return _same("n", rng.randint(2, 5))


def quoted_keys(keys: Sequence[str]) -> str:
    """``"a"``, ``"a" and "b"``, ``"a", "b" and "c"``."""
    keys = [f'"{k}"' for k in keys]
    return ", ".join(keys[:-1]) + f" and {keys[-1]}" if len(keys) > 1 else keys[0]


def sample_json_keys(rng: random.Random, words: Sequence[str]) -> tuple[Params, Params]:
    keys = list(rng.choice(KEY_SETS))
    return {"keys": keys}, {"keys": quoted_keys(keys)}


def sample_arithmetic(rng: random.Random, words: Sequence[str]) -> tuple[Params, Params]:
    """``a op b`` with op in + - * (products of 2..12, sums and differences of 2..99, never
    negative), written with the symbol or the word."""
    op = rng.choice(list(_OPS))
    if op == "*":
        a, b = rng.randint(2, 12), rng.randint(2, 12)
    else:
        a, b = rng.randint(10, 99), rng.randint(2, 99)
        if op == "-" and b > a:
            a, b = b, a
    params = {"expression": f"{a} {op} {b}", "answer": _OPS[op](a, b)}
    return params, {"a": a, "b": b, "op": rng.choice(_OP_WORDS[op])}


def second_no_params(rng: random.Random) -> Params:
    return {}


def second_max_words(rng: random.Random) -> Params:
    return {"n": rng.choice(MAX_WORDS[2:])}
