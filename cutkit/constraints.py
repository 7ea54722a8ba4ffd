"""Instructions with machine-checkable constraints: the task generator behind online alignment.

A :class:`Task` is an instruction plus the :class:`Constraint` list a response must satisfy; the
checkers here say *which* constraint a response breaks, with the facts (counts, offending words)
and the character spans of the response at fault. :class:`cutkit.judges.RuleJudge` turns those
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

import hashlib
import json
import random
import re
from collections.abc import Iterable, Iterator
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


# ----------------------------------------------------------------------------- checkers

_WORD = re.compile(r"\S+")
_ALNUM_WORD = re.compile(r"\w+")
_ITEM = re.compile(r"^[ \t]*(\d+)[.)][ \t]+\S.*$", re.MULTILINE)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_PLAIN_NUMBER = re.compile(r"^\s*(-?\d+)(?:\.0+)?\.?\s*$")
_FENCE = re.compile(r"^\s*```[a-zA-Z]*[ \t]*\n(.*?)\n?```\s*$", re.DOTALL)


def _word_pattern(word: str) -> re.Pattern:
    return re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)


def _stripped_end(text: str) -> int:
    return len(text.rstrip())


def _check_lowercase(params: dict, response: str) -> list[Violation]:
    words = [m for m in _ALNUM_WORD.finditer(response) if any(c.isupper() for c in m.group())]
    if not words:
        return []
    shown = list(dict.fromkeys(m.group() for m in words))
    return [
        Violation("lowercase", {"words": shown, "count": len(words)}, [m.span() for m in words])
    ]


def _check_max_words(params: dict, response: str) -> list[Violation]:
    n = int(params["n"])
    words = list(_WORD.finditer(response))
    if len(words) <= n:
        return []
    start, end = words[n].start(), _stripped_end(response)
    facts = {"n": n, "count": len(words), "excess": response[start:end]}
    return [Violation("max_words", facts, [(start, end)])]


def _check_include_word(params: dict, response: str) -> list[Violation]:
    if _word_pattern(params["word"]).search(response):
        return []
    return [Violation("include_word", {"word": params["word"]})]


def _check_exclude_word(params: dict, response: str) -> list[Violation]:
    hits = list(_word_pattern(params["word"]).finditer(response))
    if not hits:
        return []
    facts = {"word": params["word"], "count": len(hits), "as_written": hits[0].group()}
    return [Violation("exclude_word", facts, [m.span() for m in hits])]


def _check_no_commas(params: dict, response: str) -> list[Violation]:
    commas = [i for i, c in enumerate(response) if c == ","]
    if not commas:
        return []
    first = commas[0]
    context = response[max(0, first - 25) : first + 20].replace("\n", " ").strip()
    facts = {"count": len(commas), "context": context}
    return [Violation("no_commas", facts, [(i, i + 1) for i in commas])]


def _last_sentence_start(text: str) -> int:
    """Start of the last sentence or line of ``text`` (already right-stripped)."""
    starts = [m.end() for m in re.finditer(r"[.!?]\s+|\n", text[:-1])]
    return starts[-1] if starts else 0


def _check_end_with(params: dict, response: str) -> list[Violation]:
    phrase = params["phrase"]
    text = response.rstrip()
    if text.endswith(phrase):
        return []
    if not text:
        return [Violation("end_with", {"phrase": phrase, "ending": ""})]
    start = _last_sentence_start(text)
    while start < len(text) and text[start].isspace():
        start += 1
    return [Violation("end_with", {"phrase": phrase, "ending": text[start:]}, [(start, len(text))])]


def _check_numbered_list(params: dict, response: str) -> list[Violation]:
    n = int(params["n"])
    items = list(_ITEM.finditer(response))
    if not items:
        spans = [(0, _stripped_end(response))] if response.strip() else []
        return [Violation("numbered_list", {"n": n, "count": 0, "problem": "no_list"}, spans)]
    out = []
    for expected, item in enumerate(items, start=1):
        if int(item.group(1)) != expected:
            facts = {
                "n": n,
                "count": len(items),
                "problem": "misnumbered",
                "expected": expected,
                "found": item.group(1),
                "item": item.group().strip(),
            }
            out.append(Violation("numbered_list", facts, [item.span(1)]))
            break
    if len(items) > n:
        extra = items[n:]
        facts = {"n": n, "count": len(items), "problem": "too_many", "item": extra[0].group()}
        facts["item"] = facts["item"].strip()
        out.append(Violation("numbered_list", facts, [(m.start(), m.end()) for m in extra]))
    elif len(items) < n:
        out.append(Violation("numbered_list", {"n": n, "count": len(items), "problem": "too_few"}))
    return out


def _json_body(response: str) -> tuple[str, int]:
    """The text to parse as JSON and its offset in ``response`` (inside one code fence, if any)."""
    fence = _FENCE.match(response)
    if fence:
        return fence.group(1), fence.start(1)
    return response, 0


def _check_json_keys(params: dict, response: str) -> list[Violation]:
    keys = list(params["keys"])
    body, offset = _json_body(response)
    brace = body.find("{")
    if brace < 0:
        spans = [(0, _stripped_end(response))] if response.strip() else []
        return [Violation("json_keys", {"keys": keys, "problem": "no_object"}, spans)]
    out = []
    lead = body[:brace]
    if lead.strip():
        start = offset + len(lead) - len(lead.lstrip())
        out.append(
            Violation(
                "json_keys",
                {"keys": keys, "problem": "text_before", "text": lead.strip()},
                [(start, offset + len(lead.rstrip()))],
            )
        )
    try:
        obj, end = json.JSONDecoder().raw_decode(body, brace)
    except json.JSONDecodeError as error:
        line_end = body.find("\n", error.pos)
        line_end = len(body.rstrip()) if line_end < 0 else line_end
        start = min(error.pos, max(len(body.rstrip()) - 1, 0))
        end = max(line_end, start + 1)
        facts = {
            "keys": keys,
            "problem": "invalid",
            "message": error.msg,
            "near": body[start:end][:40],
        }
        return [*out, Violation("json_keys", facts, [(offset + start, offset + end)])]
    trail = body[end:]
    if trail.strip():
        start = offset + end + len(trail) - len(trail.lstrip())
        facts = {"keys": keys, "problem": "text_after", "text": trail.strip()}
        out.append(Violation("json_keys", facts, [(start, offset + end + len(trail.rstrip()))]))
    missing = [k for k in keys if k not in obj]
    extra = [k for k in obj if k not in keys]
    if missing:
        out.append(Violation("json_keys", {"keys": keys, "problem": "missing", "missing": missing}))
    if extra:
        spans = []
        for key in extra:
            at = body.find(json.dumps(key), brace, end)
            if at >= 0:
                spans.append((offset + at, offset + at + len(json.dumps(key))))
        facts = {"keys": keys, "problem": "extra", "extra": extra}
        out.append(Violation("json_keys", facts, spans))
    return out


def _check_arithmetic(params: dict, response: str) -> list[Violation]:
    answer, expression = int(params["answer"]), params["expression"]
    plain = _PLAIN_NUMBER.match(response)
    if plain and int(plain.group(1)) == answer:
        return []
    facts = {"expression": expression, "answer": answer}
    numbers = list(_NUMBER.finditer(response))
    if not numbers:
        spans = [(0, _stripped_end(response))] if response.strip() else []
        return [Violation("arithmetic", {**facts, "problem": "no_number"}, spans)]
    right = [m for m in numbers if float(m.group()) == answer]
    out = []
    if not right:
        given = numbers[-1]
        out.append(
            Violation(
                "arithmetic", {**facts, "problem": "wrong", "given": given.group()}, [given.span()]
            )
        )
    if not plain:
        keep = (right or numbers)[-1]
        spans = []
        start = len(response) - len(response.lstrip())
        if keep.start() > start:
            spans.append((start, keep.start()))
        end = _stripped_end(response)
        tail = response[keep.end() : end]
        if tail and tail not in (".",):
            spans.append((keep.end(), end))
        extra = " ".join(response[s:e].strip() for s, e in spans)
        out.append(
            Violation("arithmetic", {**facts, "problem": "not_plain", "extra": extra}, spans)
        )
    return out


_CHECKERS = {
    "lowercase": _check_lowercase,
    "max_words": _check_max_words,
    "include_word": _check_include_word,
    "exclude_word": _check_exclude_word,
    "no_commas": _check_no_commas,
    "end_with": _check_end_with,
    "numbered_list": _check_numbered_list,
    "json_keys": _check_json_keys,
    "arithmetic": _check_arithmetic,
}


def check_constraint(constraint: Constraint, response: str) -> list[Violation]:
    """The ways ``response`` breaks ``constraint`` (empty when it holds)."""
    return _CHECKERS[constraint.kind](constraint.params, response)


def check(task: Task, response: str) -> list[Violation]:
    """Every violation of every constraint of ``task`` by ``response``, in constraint order."""
    return [v for c in task.constraints for v in check_constraint(c, response)]


def satisfies(task: Task, response: str) -> bool:
    """True when ``response`` satisfies every constraint of ``task``."""
    return not check(task, response)


# ----------------------------------------------------------------------------- the generator

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
