"""IFEval's reference instruction checkers as an independent judge of cutkit's constraints.

Each constraint kind that has an IFEval instruction is scored by that instruction's checker from
Google's ``instructions.py`` as vendored by the ``if-verifiable`` package (optional extra:
``pip install 'cutkit[ifeval]'``), in IFEval's *strict* mode (the response as it is; a blank
response follows no instruction). :func:`agreement` compares its verdicts with cutkit's own
checker (:mod:`cutkit.online.checkers`), constraint by constraint.

================  ======================================  ===========================================
cutkit kind       IFEval instruction id (kwargs)          where the verdicts can differ
================  ======================================  ===========================================
max_words (n)     length_constraints:number_words         IFEval counts ``\\w+`` tokens, cutkit
                  (num_words=n+1, relation="less than")   whitespace-separated words: contractions,
                                                          hyphens, decimals and code split words;
                                                          a lone dash counts only for cutkit
lowercase         change_case:english_lowercase           IFEval also needs ``str.islower()`` (some
                                                          letter) and langdetect to say English
include_word (w)  keywords:existence (keywords=[w])       IFEval matches ``w`` anywhere, also inside
                                                          a longer word ("rain" in "rainforest")
exclude_word (w)  keywords:forbidden_words                none for plain words (both whole-word,
                  (forbidden_words=[w])                   case-insensitive)
no_commas         punctuation:no_comma                    none (both: no ``,`` character)
end_with (p)      startend:end_checker (end_phrase=p)     IFEval ignores case and strips ``"`` after
                                                          the phrase
json_keys (keys)  detectable_format:json_format           validity only (see below)
================  ======================================  ===========================================

``json_format`` checks that the response, with one leading ```` ```json ```` (or ```` ``` ````)
and one trailing ```` ``` ```` removed, parses as JSON: it covers json_keys' form (one JSON
value and nothing around it), not its keys. Agreement is measured on that covered part: cutkit's
verdict with its ``missing`` / ``extra`` key violations ignored (``covered_ok``); a wrong-keys
object passes IFEval and fails cutkit by design. The covered part still differs on a JSON value
that is not an object (IFEval passes it) and on a fence with another language tag (cutkit
accepts ```` ```python ````). A blank response passes cutkit's max_words, lowercase, no_commas
and exclude_word and follows no IFEval instruction. Kinds without an IFEval counterpart are in
:data:`UNMAPPED`.

IFEval's checkers are deterministic except langdetect's, which is seeded here
(``langdetect.DetectorFactory.seed = 0``, process-wide). None of the
mapped checkers needs NLTK data (only ``length_constraints:number_sentences`` and
``change_case:capital_word_frequency`` load the punkt tokenizer, which is not used here), and
nothing downloads at import or check time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cutkit.online.checkers import check_constraint
from cutkit.online.kinds.instructions import Params
from cutkit.online.tasks import Constraint, Task


@dataclass(frozen=True)
class IFEvalInstruction:
    """The IFEval instruction that checks one cutkit constraint kind.

    Attributes:
        instruction_id: IFEval's id, e.g. ``"punctuation:no_comma"``.
        kwargs: ``params -> IFEval kwargs`` of the cutkit constraint's params.
        uncovered: cutkit violation ``problem``\\ s the IFEval instruction does not check (they are
            ignored in ``covered_ok``).
    """

    instruction_id: str
    kwargs: Callable[[Params], dict[str, Any]] = lambda params: {}
    uncovered: frozenset[str] = frozenset()


IFEVAL_INSTRUCTIONS: dict[str, IFEvalInstruction] = {
    "lowercase": IFEvalInstruction("change_case:english_lowercase"),
    "max_words": IFEvalInstruction(
        "length_constraints:number_words",
        lambda p: {"num_words": int(p["n"]) + 1, "relation": "less than"},
    ),
    "include_word": IFEvalInstruction("keywords:existence", lambda p: {"keywords": [p["word"]]}),
    "exclude_word": IFEvalInstruction(
        "keywords:forbidden_words", lambda p: {"forbidden_words": [p["word"]]}
    ),
    "no_commas": IFEvalInstruction("punctuation:no_comma"),
    "end_with": IFEvalInstruction("startend:end_checker", lambda p: {"end_phrase": p["phrase"]}),
    "json_keys": IFEvalInstruction(
        "detectable_format:json_format", uncovered=frozenset({"missing", "extra"})
    ),
}
"""cutkit kind -> the IFEval instruction that checks it (the table above)."""

UNMAPPED: dict[str, str] = {
    "numbered_list": "IFEval's detectable_format:number_bullet_lists counts '* ' and '- ' "
    "bullets, not '1.' items; no instruction checks a numbered list",
    "arithmetic": "no IFEval instruction checks a computed answer",
}
"""cutkit kinds without an IFEval counterpart, and why."""


def _registry() -> dict[str, Any]:
    """IFEval's instruction registry (imported on first use, langdetect seeded)."""
    try:
        import langdetect
        from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT
    except ImportError as error:
        raise ImportError(
            "IFEval's reference checkers need the optional extra: pip install 'cutkit[ifeval]' "
            f"(if-verifiable); importing it failed with: {error}"
        ) from error
    langdetect.DetectorFactory.seed = 0
    return INSTRUCTION_DICT


def ifeval_instruction(constraint: Constraint) -> tuple[str, dict[str, Any]] | None:
    """IFEval's ``(instruction_id, kwargs)`` for ``constraint``; None for an unmapped kind."""
    spec = IFEVAL_INSTRUCTIONS.get(constraint.kind)
    return None if spec is None else (spec.instruction_id, spec.kwargs(constraint.params))


def ifeval_follows(constraint: Constraint, response: str) -> bool | None:
    """IFEval's strict verdict on ``response`` for ``constraint`` (None: kind unmapped)."""
    found = ifeval_instruction(constraint)
    if found is None:
        return None
    instruction_id, kwargs = found
    checker = _registry()[instruction_id](instruction_id)
    checker.build_description(**kwargs)
    return bool(response.strip()) and bool(checker.check_following(response))


def ifeval_check(task: Task, response: str) -> dict[str, bool]:
    """IFEval instruction id -> strict verdict, for every mapped constraint of ``task``."""
    out: dict[str, bool] = {}
    for constraint in task.constraints:
        verdict = ifeval_follows(constraint, response)
        if verdict is not None:
            out[IFEVAL_INSTRUCTIONS[constraint.kind].instruction_id] = verdict
    return out


def covered_ok(constraint: Constraint, response: str) -> bool:
    """cutkit's verdict restricted to what the kind's IFEval instruction checks."""
    spec = IFEVAL_INSTRUCTIONS[constraint.kind]
    violations = check_constraint(constraint, response)
    return not [v for v in violations if v.facts.get("problem") not in spec.uncovered]


def agreement(tasks: Sequence[Task], responses: Sequence[str]) -> pd.DataFrame:
    """One row per (response, mapped constraint): ``row`` (index into the inputs), ``task``,
    ``kind``, ``instruction_id``, ``cutkit_ok`` (cutkit's full verdict), ``covered_ok``,
    ``ifeval_ok`` and ``agree`` (``covered_ok == ifeval_ok``)."""
    if len(tasks) != len(responses):
        raise ValueError(f"{len(tasks)} tasks but {len(responses)} responses; pair them one to one")
    rows = []
    for i, (task, response) in enumerate(zip(tasks, responses, strict=True)):
        for constraint in task.constraints:
            verdict = ifeval_follows(constraint, response)
            if verdict is None:
                continue
            covered = covered_ok(constraint, response)
            rows.append(
                {
                    "row": i,
                    "task": task.id,
                    "kind": constraint.kind,
                    "instruction_id": IFEVAL_INSTRUCTIONS[constraint.kind].instruction_id,
                    "cutkit_ok": not check_constraint(constraint, response),
                    "covered_ok": covered,
                    "ifeval_ok": verdict,
                    "agree": covered == verdict,
                }
            )
    columns = ["row", "task", "kind", "instruction_id", "cutkit_ok", "covered_ok", "ifeval_ok"]
    return pd.DataFrame(rows, columns=[*columns, "agree"])
