"""The task generator and the constraint checkers: seeded, balanced, disjoint held-out set,
every generated task satisfiable, and each checker's verdict, facts and character spans."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from cutkit.online.checkers import check, check_constraint, satisfies
from cutkit.online.generator import TOPICS, generate_tasks, heldout_tasks, iter_tasks
from cutkit.online.judges.rule import RuleJudge
from cutkit.online.kinds.registry import CONSTRAINT_KINDS, ConstraintKind
from cutkit.online.kinds.violation import Violation
from cutkit.online.tasks import KINDS, Constraint, Task


def violations(kind: str, response: str, **params):
    return check_constraint(Constraint(kind, params), response)


def spanned(response: str, violation) -> list[str]:
    return [response[s:e] for s, e in violation.spans]


def reference_answer(task: Task) -> str:
    """A response that satisfies every constraint of ``task`` (built from its spec)."""
    kinds = {c.kind: c.params for c in task.constraints}
    if "arithmetic" in kinds:
        return str(kinds["arithmetic"]["answer"])
    if "json_keys" in kinds:
        return json.dumps({key: "some value" for key in kinds["json_keys"]["keys"]})
    if "numbered_list" in kinds:
        n = kinds["numbered_list"]["n"]
        return "\n".join(f"{i}. a short item" for i in range(1, n + 1))
    words = ["a", "short", "answer"]
    if "include_word" in kinds:
        words.append(kinds["include_word"]["word"])
    text = " ".join(words)
    if "end_with" in kinds:
        text = f"{text}. {kinds['end_with']['phrase']}"
    return text


def test_generator_is_seeded_unique_and_balanced():
    tasks = generate_tasks(180, seed=7)
    assert [t.to_dict() for t in tasks] == [t.to_dict() for t in generate_tasks(180, seed=7)]
    assert [t.instruction for t in tasks] != [t.instruction for t in generate_tasks(180, seed=8)]
    assert len({t.instruction for t in tasks}) == len({t.id for t in tasks}) == 180
    families = Counter(t.family for t in tasks)
    assert set(families) == set(KINDS)
    assert max(families.values()) - min(families.values()) <= 9  # shuffled blocks of all 9
    assert len({t.topic for t in tasks if t.topic}) >= 40  # many topics
    assert any(len(t.constraints) == 2 for t in tasks)  # some tasks combine two constraints


def test_exclusion_keeps_heldout_and_rounds_disjoint():
    heldout = heldout_tasks(60)
    assert [t.instruction for t in heldout] == [t.instruction for t in heldout_tasks(60)]
    used = {t.instruction for t in heldout}
    first = generate_tasks(300, seed=42, exclude=used)
    assert not used & {t.instruction for t in first}
    used |= {t.instruction for t in first}
    second = generate_tasks(100, seed=42, exclude=used)
    assert not used & {t.instruction for t in second}
    assert generate_tasks(0, seed=1) == []


def test_every_generated_task_is_satisfiable_and_round_trips():
    for task in generate_tasks(400, seed=3):
        answer = reference_answer(task)
        assert satisfies(task, answer), (task.instruction, answer, check(task, answer))
        assert Task.from_dict(json.loads(json.dumps(task.to_dict()))) == task


def test_lowercase_words_that_must_appear_are_lowercase():
    for task in generate_tasks(600, seed=11):
        kinds = {c.kind: c.params for c in task.constraints}
        if "lowercase" in kinds and "word" in kinds.get("include_word", {}):
            assert kinds["include_word"]["word"].islower()


def test_stream_is_endless_and_instructions_mention_their_parameters():
    stream = iter_tasks(0)
    tasks = [next(stream) for _ in range(50)]
    for task in tasks:
        params = task.constraints[0].params
        for key in ("word", "phrase"):
            if key in params:
                assert params[key] in task.instruction
        if task.family == "json_keys":
            assert all(f'"{key}"' in task.instruction for key in params["keys"])
    assert all(topic[0] and len(topic[1]) == 3 for topic in TOPICS)


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown constraint kind 'uppercase'"):
        Constraint("uppercase")


def test_every_kind_is_registered_once_with_what_it_needs():
    assert tuple(CONSTRAINT_KINDS) == KINDS and len(KINDS) == 9
    for name, kind in CONSTRAINT_KINDS.items():
        assert kind.name == name and kind.templates and kind.praise
        for second in kind.second_kinds:  # a second constraint has a clause to state it
            assert CONSTRAINT_KINDS[second].clause is not None and second != name


def _check_no_digits(params: dict, response: str) -> list[Violation]:
    spans = [(i, i + 1) for i, c in enumerate(response) if c.isdigit()]
    return [Violation("no_digits", {"count": len(spans)}, spans)] if spans else []


def test_a_new_kind_is_one_registry_entry(monkeypatch):
    kind = ConstraintKind(
        "no_digits",
        _check_no_digits,
        ("Describe {topic} without digits.",),
        lambda v, response: [f"It has {v.facts['count']} digits."],
        praise="it has no digits",
        second_kinds=("lowercase",),
    )
    monkeypatch.setitem(CONSTRAINT_KINDS, "no_digits", kind)
    tasks = generate_tasks(20, seed=0, families=["no_digits"])
    assert {t.family for t in tasks} == {"no_digits"} and len(tasks) == 20
    assert any(len(t.constraints) == 2 for t in tasks)  # it gets second constraints too
    task = next(t for t in tasks if len(t.constraints) == 1)
    assert satisfies(task, "no numbers here") and not satisfies(task, "4 legs")
    judge = RuleJudge(seed=0)
    assert judge.judge_one(task, "4 and 2").text.endswith("It has 2 digits.")
    assert judge.judge_one(task, "4 and 2").error_spans == [(0, 1), (6, 7)]
    assert judge.judge_one(task, "none").text.startswith("Perfect")


# ----------------------------------------------------------------------------- checkers


def test_lowercase():
    assert violations("lowercase", "all small here, 42.") == []
    (v,) = violations("lowercase", "the Eiffel tower is in Paris and PARIS")
    assert v.facts["words"] == ["Eiffel", "Paris", "PARIS"] and v.facts["count"] == 3
    assert spanned("the Eiffel tower is in Paris and PARIS", v) == ["Eiffel", "Paris", "PARIS"]


def test_max_words_marks_everything_past_the_limit():
    assert violations("max_words", "one two three", n=3) == []
    text = "one two three four five  "
    (v,) = violations("max_words", text, n=3)
    assert (v.facts["count"], v.facts["n"]) == (5, 3)
    assert spanned(text, v) == ["four five"] and v.facts["excess"] == "four five"


def test_include_and_exclude_word_are_whole_word_and_case_insensitive():
    assert violations("include_word", "Waves crash.", word="waves") == []
    (missing,) = violations("include_word", "The wavesss crash.", word="waves")
    assert missing.spans == [] and missing.facts == {"word": "waves"}
    assert violations("exclude_word", "Saltwater is fine.", word="salt") == []
    text = "Salt and more salt."
    (v,) = violations("exclude_word", text, word="salt")
    assert v.facts["count"] == 2 and spanned(text, v) == ["Salt", "salt"]


def test_no_commas_spans_each_comma():
    text = "red, green, blue"
    (v,) = violations("no_commas", text)
    assert v.facts["count"] == 2 and spanned(text, v) == [",", ","]
    assert "red, green" in v.facts["context"]


def test_end_with_quotes_the_last_sentence():
    assert violations("end_with", "Bees make honey. The end.  \n", phrase="The end.") == []
    text = "Bees make honey. They live in hives."
    (v,) = violations("end_with", text, phrase="The end.")
    assert (
        spanned(text, v) == ["They live in hives."] and v.facts["ending"] == "They live in hives."
    )
    (empty,) = violations("end_with", "  ", phrase="The end.")
    assert empty.spans == [] and empty.facts["ending"] == ""


def test_numbered_list_counts_items_and_numbering():
    good = "Facts:\n1. one\n2) two\n3. three"
    assert violations("numbered_list", good, n=3) == []
    (few,) = violations("numbered_list", "1. one\n2. two", n=3)
    assert (few.facts["problem"], few.facts["count"], few.spans) == ("too_few", 2, [])
    many = "1. one\n2. two\n3. three\n4. four"
    (extra,) = violations("numbered_list", many, n=2)
    assert extra.facts["problem"] == "too_many" and spanned(many, extra) == ["3. three", "4. four"]
    wrong = "1. one\n3. two"
    (v,) = violations("numbered_list", wrong, n=2)
    assert v.facts["problem"] == "misnumbered" and spanned(wrong, v) == ["3"]
    (none,) = violations("numbered_list", "just prose", n=2)
    assert none.facts["problem"] == "no_list" and spanned("just prose", none) == ["just prose"]


def test_json_keys():
    keys = ["name", "fact"]
    assert violations("json_keys", '{"name": "x", "fact": "y"}', keys=keys) == []
    assert violations("json_keys", '```json\n{"name": "x", "fact": "y"}\n```', keys=keys) == []
    text = 'Sure! {"name": "x", "extra": 1} Hope it helps.'
    problems = {v.facts["problem"]: v for v in violations("json_keys", text, keys=keys)}
    assert set(problems) == {"text_before", "text_after", "missing", "extra"}
    assert spanned(text, problems["text_before"]) == ["Sure!"]
    assert spanned(text, problems["text_after"]) == ["Hope it helps."]
    assert problems["missing"].facts["missing"] == ["fact"]
    assert spanned(text, problems["extra"]) == ['"extra"']
    broken = '{"name": "x", "fact": }'
    (invalid,) = violations("json_keys", broken, keys=keys)
    assert invalid.facts["problem"] == "invalid" and invalid.spans[0][0] == broken.index("}")
    (none,) = violations("json_keys", "no json", keys=keys)
    assert none.facts["problem"] == "no_object"


def test_arithmetic():
    params = {"expression": "17 + 25", "answer": 42}
    assert violations("arithmetic", " 42 ", **params) == []
    assert violations("arithmetic", "42.", **params) == []
    (wrong,) = violations("arithmetic", "41", **params)
    assert wrong.facts["problem"] == "wrong" and spanned("41", wrong) == ["41"]
    text = "The answer is 42."
    (wordy,) = violations("arithmetic", text, **params)
    assert wordy.facts["problem"] == "not_plain" and spanned(text, wordy) == ["The answer is "]
    both = violations("arithmetic", "It is 40 I think", **params)
    assert [v.facts["problem"] for v in both] == ["wrong", "not_plain"]
    (none,) = violations("arithmetic", "no idea", **params)
    assert none.facts["problem"] == "no_number"


def test_spans_always_lie_inside_the_response():
    responses = ["", "Hello, World", "1. A\n2. B\n3. C\n4. D", '{"a": 1} trailing', "x " * 50]
    for task in generate_tasks(120, seed=5):
        for response in responses:
            for v in check(task, response):
                assert all(0 <= s < e <= len(response) for s, e in v.spans), (task, response, v)


def test_task_stream_restricted_to_families():
    from cutkit.online.generator import generate_tasks, heldout_tasks

    tasks = generate_tasks(12, seed=1, families=["max_words", "lowercase"])
    assert {t.family for t in tasks} == {"max_words", "lowercase"}
    assert generate_tasks(12, seed=1) == generate_tasks(12, seed=1, families=None)
    held = heldout_tasks(5, families=["max_words"])
    assert all(t.family == "max_words" for t in held)
    with pytest.raises(ValueError, match="families"):
        generate_tasks(3, seed=1, families=["haiku"])
