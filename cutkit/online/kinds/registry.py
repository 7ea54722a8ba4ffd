"""The constraint kinds: one :class:`ConstraintKind` each, registered in :data:`CONSTRAINT_KINDS`.

Adding a kind means writing its check (:mod:`~cutkit.online.kinds.checks`), its critique
(:mod:`~cutkit.online.kinds.critiques`), a parameter sampler if it has parameters
(:mod:`~cutkit.online.kinds.instructions`) and one entry below;
the task classes, the checkers, the generator and the rule judge look everything up here. The
entries' order is the generator's default family order: a new kind changes the tasks generated
from all families, not those of a given family list.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cutkit.online.kinds import checks, critiques, instructions
from cutkit.online.kinds.instructions import Params
from cutkit.online.kinds.violation import Violation


def _always(params: Params) -> bool:
    return True


def _lowercase_fits(params: Params) -> bool:
    """A lowercase answer can still use the main constraint's word ("Rome" cannot)."""
    word = params.get("word", "")
    return word == word.lower()


@dataclass(frozen=True)
class ConstraintKind:
    """Everything about one constraint kind (also the name of the task family built around it).

    Attributes:
        name: the kind, as in ``Constraint.kind``.
        check: ``(params, response) -> violations`` (empty when the response complies).
        templates: the family's instruction phrasings; fields ``{topic}`` and what ``sample``
            fills in.
        critiques: ``(violation, response) -> sentences`` stating a violation (the rule judge
            picks one).
        praise: the rule judge's commendation of a response that complies, a format string over
            the constraint's params.
        sample: ``(rng, topic words) -> (params, template fields)``.
        about_topic: False when the instructions are not about the drawn topic (arithmetic).
        second_kinds: kinds one of which may be added to this family's tasks as a second constraint
            (never one that conflicts).
        clause: appended to the instruction when this kind is the second constraint (a format
            string over its params; None: never a second constraint).
        sample_second: ``rng -> params`` of this kind as the second constraint.
        fits: whether this kind can be the second constraint of a main one with these params.
    """

    name: str
    check: Callable[[Params, str], list[Violation]]
    templates: tuple[str, ...]
    critiques: Callable[[Violation, str], list[str]]
    praise: str
    sample: Callable[[random.Random, Sequence[str]], tuple[Params, Params]] = instructions.no_params
    about_topic: bool = True
    second_kinds: tuple[str, ...] = ()
    clause: str | None = None
    sample_second: Callable[[random.Random], Params] = instructions.second_no_params
    fits: Callable[[Params], bool] = _always


_KINDS = (
    ConstraintKind(
        "lowercase",
        checks.check_lowercase,
        (
            "Describe {topic} in two sentences, using only lowercase letters.",
            "Write a short paragraph about {topic}. Use lowercase letters only: no capitals at "
            "all.",
            "Tell me one interesting thing about {topic}, written entirely in lowercase.",
        ),
        critiques.critique_lowercase,
        praise="every letter is lowercase",
        second_kinds=("no_commas", "max_words"),
        clause=" Write it all in lowercase.",
        fits=_lowercase_fits,
    ),
    ConstraintKind(
        "max_words",
        checks.check_max_words,
        (
            "Explain {topic} in at most {n} words.",
            "Describe {topic} using no more than {n} words.",
            "In {n} words or fewer, say what is special about {topic}.",
        ),
        critiques.critique_max_words,
        praise="it stays within {n} words",
        sample=instructions.sample_max_words,
        second_kinds=("lowercase", "no_commas"),
        clause=" Use at most {n} words.",
        sample_second=instructions.second_max_words,
    ),
    ConstraintKind(
        "include_word",
        checks.check_include_word,
        (
            'Write two sentences about {topic} that use the word "{word}".',
            'Describe {topic} briefly. Your answer must contain the word "{word}".',
            'Say something about {topic}, and include the word "{word}" somewhere.',
        ),
        critiques.critique_include_word,
        praise='it uses the word "{word}"',
        sample=instructions.sample_topic_word,
        second_kinds=("lowercase", "no_commas", "max_words"),
    ),
    ConstraintKind(
        "exclude_word",
        checks.check_exclude_word,
        (
            'Describe {topic} in two sentences without using the word "{word}".',
            'Write a short description of {topic}. Do not use the word "{word}".',
            'Tell me about {topic}, but never say "{word}".',
        ),
        critiques.critique_exclude_word,
        praise='it avoids the word "{word}"',
        sample=instructions.sample_topic_word,
        second_kinds=("lowercase", "no_commas", "max_words"),
    ),
    ConstraintKind(
        "no_commas",
        checks.check_no_commas,
        (
            "Write three sentences about {topic} without using any commas.",
            "Describe {topic} in a short paragraph that contains no commas.",
            "Explain what makes {topic} interesting. Do not use a single comma.",
        ),
        critiques.critique_no_commas,
        praise="it has no commas",
        second_kinds=("lowercase", "max_words"),
        clause=" Do not use any commas.",
    ),
    ConstraintKind(
        "end_with",
        checks.check_end_with,
        (
            'Write a short note about {topic} and end it with the exact phrase "{phrase}"',
            'Describe {topic} in two sentences. Finish your answer with "{phrase}"',
            'Tell me something about {topic}. The last words of your answer must be "{phrase}"',
        ),
        critiques.critique_end_with,
        praise='it ends with "{phrase}"',
        sample=instructions.sample_end_phrase,
    ),
    ConstraintKind(
        "numbered_list",
        checks.check_numbered_list,
        (
            "List exactly {n} facts about {topic} as a numbered list.",
            "Give {n} reasons to learn about {topic}, as a numbered list of exactly {n} items.",
            "Write a numbered list with exactly {n} items about {topic}.",
        ),
        critiques.critique_numbered_list,
        praise="the list has exactly {n} items",
        sample=instructions.sample_list_length,
        second_kinds=("lowercase",),
    ),
    ConstraintKind(
        "json_keys",
        checks.check_json_keys,
        (
            "Describe {topic} as a JSON object with exactly the keys {keys}. Reply with the JSON "
            "only.",
            "Return a JSON object about {topic} that has exactly these keys: {keys}. Output only "
            "JSON.",
            "Give information on {topic} in JSON: one object, keys {keys} and no others, nothing "
            "else.",
        ),
        critiques.critique_json_keys,
        praise="the JSON has exactly the requested keys",
        sample=instructions.sample_json_keys,
    ),
    ConstraintKind(
        "arithmetic",
        checks.check_arithmetic,
        (
            "What is {a} {op} {b}? Answer with the number only.",
            "Compute {a} {op} {b}. Reply with just the number.",
            "{a} {op} {b} = ? Give only the number, nothing else.",
        ),
        critiques.critique_arithmetic,
        praise="{answer} is correct",
        sample=instructions.sample_arithmetic,
        about_topic=False,
    ),
)

CONSTRAINT_KINDS: dict[str, ConstraintKind] = {kind.name: kind for kind in _KINDS}
"""Every constraint kind by name, in the order of ``KINDS`` (the generator's family order)."""
