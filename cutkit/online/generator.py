"""Deterministic generation of constraint tasks (instructions with checkable constraints).

:func:`iter_tasks` yields an endless, seeded stream over the families (one per constraint kind)
x 64 topics x each kind's phrasings and parameters (:mod:`cutkit.online.kinds.registry`), some
tasks with a second, compatible constraint; :func:`generate_tasks` takes unique instructions from
it, skipping an ``exclude`` set, so a held-out set (:func:`heldout_tasks`, its own seed) and
training rounds can be kept disjoint.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator

from cutkit.online.kinds.registry import CONSTRAINT_KINDS
from cutkit.online.tasks import HELDOUT_SEED, Constraint, Task

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

_TOPIC_WORDS = dict(TOPICS)


def topic_words(topic: str | None) -> tuple[str, ...]:
    """The words :data:`TOPICS` associates with ``topic`` (none for an unknown topic or None)."""
    return _TOPIC_WORDS.get(topic, ()) if topic else ()


SECOND_CONSTRAINT_PROB = 0.3
"""Share of tasks (of the families with ``second_kinds``) that get a second constraint."""


def _make_task(rng: random.Random, family: str) -> Task:
    kind = CONSTRAINT_KINDS[family]
    template = rng.choice(kind.templates)
    topic, words = rng.choice(TOPICS)
    params, fill = kind.sample(rng, words)
    instruction = template.format(topic=topic, **fill)
    constraints = [Constraint(family, params)]
    if kind.second_kinds and rng.random() < SECOND_CONSTRAINT_PROB:
        second = CONSTRAINT_KINDS[rng.choice(kind.second_kinds)]
        second_params = second.sample_second(rng)
        if second.fits(params):
            instruction += second.clause.format(**second_params)
            constraints.append(Constraint(second.name, second_params))
    digest = hashlib.sha1(instruction.encode()).hexdigest()[:10]
    topic = topic if kind.about_topic else None
    return Task(f"{family}-{digest}", instruction, constraints, family, topic)


def check_families(families: Iterable[str] | None) -> tuple[str, ...]:
    """``families`` as a tuple (None: every registered kind); an unknown name raises ValueError."""
    kinds = tuple(CONSTRAINT_KINDS)
    chosen = kinds if families is None else tuple(families)
    unknown = [f for f in chosen if f not in kinds]
    if unknown or not chosen:
        raise ValueError(f"unknown or no task families {unknown}; choose from {kinds}")
    return chosen


def iter_tasks(seed: int, families: Iterable[str] | None = None) -> Iterator[Task]:
    """An endless, deterministic stream of tasks; families (default: all) come in shuffled
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
        for template in CONSTRAINT_KINDS["max_words"].templates
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
