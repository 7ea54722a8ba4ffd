"""Deterministic generation of constraint tasks (instructions with checkable constraints)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator
from typing import Any

from cutkit.online.tasks import HELDOUT_SEED, KINDS, Constraint, Task

TOPICS: list[tuple[str, tuple[str, ...]]] = [
    ("the ocean", ("water", "waves", "salt")),
    ("volcanoes", ("lava", "magma", "eruption")),
    ("honeybees", ("honey", "hive", "pollen")),
    ("the Moon", ("orbit", "tides", "craters")),
    ("rainforests", ("trees", "rain", "species")),
    ("bicycles", ("wheels", "pedals", "chain")),
    ("coffee", ("beans", "caffeine", "roast")),
    ("the human heart", ("blood", "beat", "muscle")),
    ("chess", ("king", "board", "pieces")),
    ("photosynthesis", ("light", "leaves", "sugar")),
    ("the printing press", ("books", "ink", "Gutenberg")),
    ("glaciers", ("ice", "snow", "melt")),
    ("owls", ("night", "feathers", "prey")),
    ("bread baking", ("flour", "yeast", "oven")),
    ("the internet", ("network", "data", "computers")),
    ("deserts", ("sand", "heat", "dry")),
    ("the piano", ("keys", "music", "strings")),
    ("recycling", ("plastic", "waste", "paper")),
    ("earthquakes", ("plates", "shaking", "faults")),
    ("dolphins", ("sea", "pods", "clicks")),
    ("electric cars", ("battery", "charging", "motor")),
    ("the Roman Empire", ("Rome", "emperor", "legions")),
    ("tea", ("leaves", "cup", "brew")),
    ("solar power", ("sun", "panels", "energy")),
    ("libraries", ("books", "reading", "shelves")),
    ("mountains", ("peaks", "climbing", "snow")),
    ("sleep", ("dreams", "rest", "night")),
    ("the violin", ("bow", "strings", "music")),
    ("rivers", ("water", "flow", "banks")),
    ("penguins", ("ice", "swimming", "colonies")),
    ("gardening", ("soil", "seeds", "plants")),
    ("the Olympic Games", ("athletes", "medals", "sport")),
    ("lightning", ("storm", "thunder", "electricity")),
    ("cheese", ("milk", "aging", "flavor")),
    ("trains", ("rails", "stations", "travel")),
    ("the Great Wall of China", ("wall", "China", "stone")),
    ("butterflies", ("wings", "caterpillars", "flowers")),
    ("clouds", ("rain", "sky", "vapor")),
    ("vaccines", ("immunity", "disease", "doses")),
    ("origami", ("paper", "folding", "cranes")),
    ("comets", ("ice", "tail", "orbit")),
    ("public parks", ("trees", "paths", "benches")),
    ("wind turbines", ("blades", "wind", "electricity")),
    ("the Amazon River", ("river", "Brazil", "water")),
    ("elephants", ("trunk", "herd", "tusks")),
    ("chocolate", ("cocoa", "sugar", "sweet")),
    ("maps", ("roads", "scale", "directions")),
    ("the Sahara", ("sand", "dunes", "heat")),
    ("jazz", ("music", "improvisation", "rhythm")),
    ("marathons", ("running", "miles", "race")),
    ("bridges", ("river", "steel", "crossing")),
    ("spiders", ("webs", "silk", "legs")),
    ("the water cycle", ("rain", "evaporation", "clouds")),
    ("kites", ("wind", "string", "sky")),
    ("castles", ("walls", "towers", "knights")),
    ("volunteering", ("community", "help", "time")),
    ("rainbows", ("colors", "light", "rain")),
    ("camping", ("tent", "fire", "outdoors")),
    ("the telephone", ("calls", "voice", "Bell")),
    ("coral reefs", ("fish", "coral", "ocean")),
    ("snowflakes", ("ice", "crystals", "winter")),
    ("museums", ("art", "history", "exhibits")),
    ("tigers", ("stripes", "jungle", "hunting")),
    ("board games", ("dice", "players", "rules")),
]
"""Topics and a few words each is likely to be described with (the include / exclude words)."""

_FAMILY_TEMPLATES: dict[str, tuple[str, ...]] = {
    "lowercase": (
        "Describe {topic} in two sentences, using only lowercase letters.",
        "Write a short paragraph about {topic}. Use lowercase letters only: no capitals at all.",
        "Tell me one interesting thing about {topic}, written entirely in lowercase.",
    ),
    "max_words": (
        "Explain {topic} in at most {n} words.",
        "Describe {topic} using no more than {n} words.",
        "In {n} words or fewer, say what is special about {topic}.",
    ),
    "include_word": (
        'Write two sentences about {topic} that use the word "{word}".',
        'Describe {topic} briefly. Your answer must contain the word "{word}".',
        'Say something about {topic}, and include the word "{word}" somewhere.',
    ),
    "exclude_word": (
        'Describe {topic} in two sentences without using the word "{word}".',
        'Write a short description of {topic}. Do not use the word "{word}".',
        'Tell me about {topic}, but never say "{word}".',
    ),
    "no_commas": (
        "Write three sentences about {topic} without using any commas.",
        "Describe {topic} in a short paragraph that contains no commas.",
        "Explain what makes {topic} interesting. Do not use a single comma.",
    ),
    "end_with": (
        'Write a short note about {topic} and end it with the exact phrase "{phrase}"',
        'Describe {topic} in two sentences. Finish your answer with "{phrase}"',
        'Tell me something about {topic}. The last words of your answer must be "{phrase}"',
    ),
    "numbered_list": (
        "List exactly {n} facts about {topic} as a numbered list.",
        "Give {n} reasons to learn about {topic}, as a numbered list of exactly {n} items.",
        "Write a numbered list with exactly {n} items about {topic}.",
    ),
    "json_keys": (
        "Describe {topic} as a JSON object with exactly the keys {keys}. Reply with the JSON only.",
        "Return a JSON object about {topic} that has exactly these keys: {keys}. Output only JSON.",
        "Give information on {topic} in JSON: one object, keys {keys} and no others, nothing else.",
    ),
    "arithmetic": (
        "What is {a} {op} {b}? Answer with the number only.",
        "Compute {a} {op} {b}. Reply with just the number.",
        "{a} {op} {b} = ? Give only the number, nothing else.",
    ),
}

_SECONDARY_TEMPLATES = {
    "lowercase": " Write it all in lowercase.",
    "no_commas": " Do not use any commas.",
    "max_words": " Use at most {n} words.",
}

_SECONDARY_FOR = {
    "lowercase": ("no_commas", "max_words"),
    "max_words": ("lowercase", "no_commas"),
    "include_word": ("lowercase", "no_commas", "max_words"),
    "exclude_word": ("lowercase", "no_commas", "max_words"),
    "no_commas": ("lowercase", "max_words"),
    "numbered_list": ("lowercase",),
}
"""Which extra constraint may be added to a family (never one that conflicts with it)."""

SECOND_CONSTRAINT_PROB = 0.3
"""Share of tasks (of the families in _SECONDARY_FOR) that get a second constraint."""

_PHRASES = ("Thank you for reading.", "That is all.", "The end.", "Stay curious!", "Now you know.")
_KEY_SETS = (
    ("name", "summary"),
    ("topic", "fact"),
    ("title", "description"),
    ("name", "category", "fact"),
    ("subject", "detail", "source"),
)
_MAX_WORDS = (10, 15, 20, 25, 30, 40)
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
_OP_WORDS = {"+": ("+", "plus"), "-": ("-", "minus"), "*": ("*", "times")}


def _quoted_keys(keys: Iterable[str]) -> str:
    keys = [f'"{k}"' for k in keys]
    return ", ".join(keys[:-1]) + f" and {keys[-1]}" if len(keys) > 1 else keys[0]


def _make_task(rng: random.Random, family: str) -> Task:
    template = rng.choice(_FAMILY_TEMPLATES[family])
    topic, words = rng.choice(TOPICS)
    params: dict[str, Any] = {}
    fill: dict[str, Any] = {"topic": topic}
    if family == "max_words":
        params["n"] = fill["n"] = rng.choice(_MAX_WORDS)
    elif family in ("include_word", "exclude_word"):
        params["word"] = fill["word"] = rng.choice(words)
    elif family == "end_with":
        params["phrase"] = fill["phrase"] = rng.choice(_PHRASES)
    elif family == "numbered_list":
        params["n"] = fill["n"] = rng.randint(2, 5)
    elif family == "json_keys":
        keys = list(rng.choice(_KEY_SETS))
        params["keys"] = keys
        fill["keys"] = _quoted_keys(keys)
    elif family == "arithmetic":
        topic = None
        op = rng.choice(list(_OPS))
        a, b = (rng.randint(2, 12), rng.randint(2, 12)) if op == "*" else (0, 0)
        if op != "*":
            a, b = rng.randint(10, 99), rng.randint(2, 99)
            if op == "-" and b > a:
                a, b = b, a
        params = {"expression": f"{a} {op} {b}", "answer": _OPS[op](a, b)}
        fill = {"a": a, "b": b, "op": rng.choice(_OP_WORDS[op])}
    instruction = template.format(**fill)
    constraints = [Constraint(family, params)]
    if family in _SECONDARY_FOR and rng.random() < SECOND_CONSTRAINT_PROB:
        extra = rng.choice(_SECONDARY_FOR[family])
        extra_params = {"n": rng.choice(_MAX_WORDS[2:])} if extra == "max_words" else {}
        word = params.get("word", "")
        if not (extra == "lowercase" and word != word.lower()):  # "Rome" cannot be lowercase
            instruction += _SECONDARY_TEMPLATES[extra].format(**extra_params)
            constraints.append(Constraint(extra, extra_params))
    digest = hashlib.sha1(instruction.encode()).hexdigest()[:10]
    return Task(f"{family}-{digest}", instruction, constraints, family, topic)


def check_families(families: Iterable[str] | None) -> tuple[str, ...]:
    """``families`` as a tuple (None: all of :data:`KINDS`); an unknown name raises ValueError."""
    chosen = tuple(KINDS if families is None else families)
    unknown = [f for f in chosen if f not in KINDS]
    if unknown or not chosen:
        raise ValueError(f"unknown or no task families {unknown}; choose from {KINDS}")
    return chosen


def iter_tasks(seed: int, families: Iterable[str] | None = None) -> Iterator[Task]:
    """An endless, deterministic stream of tasks; families (default: all 9) come in shuffled
    blocks, so every prefix is balanced across them (instructions may repeat: see
    :func:`generate_tasks`)."""
    chosen = check_families(families)
    rng = random.Random(seed)
    while True:
        block = list(chosen)
        rng.shuffle(block)
        for family in block:
            yield _make_task(rng, family)


def generate_tasks(
    n: int, seed: int, *, exclude: Iterable[str] = (), families: Iterable[str] | None = None
) -> list[Task]:
    """The first ``n`` tasks with distinct instructions from :func:`iter_tasks` ``(seed,
    families)``, leaving out any instruction in ``exclude`` (e.g. the held-out set and earlier
    rounds)."""
    excluded = set(exclude)
    seen: set[str] = set()
    out: list[Task] = []
    if n <= 0:
        return out
    for tries, task in enumerate(iter_tasks(seed, families), start=1):
        if tries > 100 * n + 1000:
            raise RuntimeError(f"could not find {n} new instructions with seed {seed}")
        if task.instruction in excluded or task.instruction in seen:
            continue
        seen.add(task.instruction)
        out.append(task)
        if len(out) == n:
            break
    return out


def heldout_tasks(
    n: int = 60, seed: int = HELDOUT_SEED, families: Iterable[str] | None = None
) -> list[Task]:
    """A fixed held-out set from the same generator with its own seed."""
    return generate_tasks(n, seed, families=families)


def word_limit_tasks(
    topics: Iterable[str], limits: Iterable[int] = (8, 10, 12), prefix: str = "words"
) -> list[Task]:
    """Every word-limit task over ``topics`` x the max_words phrasings x ``limits``, in that
    order, with ids ``f"{prefix}-{i:03d}"``: the on-policy setting of the demo and the benchmark,
    where the default model's answers (15-16 words on average) mostly break an 8-12 word limit."""
    limits = tuple(limits)
    combos = [
        (topic, template, n)
        for topic in topics
        for template in _FAMILY_TEMPLATES["max_words"]
        for n in limits
    ]
    return [
        Task(
            f"{prefix}-{i:03d}",
            template.format(topic=topic, n=n),
            [Constraint("max_words", {"n": n})],
            "max_words",
            topic,
        )
        for i, (topic, template, n) in enumerate(combos)
    ]
