"""IFEval's reference checkers as a second judge: the kind -> instruction mapping, both verdicts
on fixed answers (the known disagreement classes included), the agreement frame, every registered
kind decided, nothing downloaded, and the error without the extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from cutkit.online.ifeval import (
    IFEVAL_INSTRUCTIONS,
    UNMAPPED,
    agreement,
    covered_ok,
    ifeval_check,
    ifeval_follows,
    ifeval_instruction,
)
from cutkit.online.kinds.registry import CONSTRAINT_KINDS
from cutkit.online.tasks import Constraint, Task

from ..helpers import REPO, load_benchmark

JSON = '{"name": "coffee", "summary": "a drink"}'
END = "That is all."

# kind, params, response, cutkit's verdict (on the covered part), IFEval's strict verdict
CASES = [
    # max_words: whitespace words "at most n" vs \w+ tokens "less than n + 1"
    ("max_words", {"n": 10}, "Coffee is a drink made from roasted beans.", True, True),
    (
        "max_words",
        {"n": 10},
        "Coffee is a drink made from roasted beans that people enjoy.",
        False,
        False,
    ),
    (
        "max_words",
        {"n": 10},
        "Volcanoes are the most awe-inspiring natural wonders of the planet.",
        True,
        False,
    ),  # hyphen
    (
        "max_words",
        {"n": 10},
        "Glaciers are the unsung heroes of our planet's climate struggle.",
        True,
        False,
    ),  # apostrophe
    (
        "max_words",
        {"n": 10},
        "Coffee costs 3.5 dollars a cup in most cafes here.",
        True,
        False,
    ),  # number
    ("max_words", {"n": 6}, 'Python: `print("Hello")` is a first program.', True, False),  # code
    (
        "max_words",
        {"n": 10},
        "Coffee is a drink made \u2014 from roasted beans and water.",
        False,
        True,
    ),  # lone dash
    ("max_words", {"n": 10}, "", True, False),  # IFEval: a blank response follows nothing
    # lowercase: IFEval also needs a cased letter and langdetect to say English
    ("lowercase", {}, "the ocean is full of water and waves.", True, True),
    ("lowercase", {}, "The ocean is full of water and waves.", False, False),
    ("lowercase", {}, "42.", True, False),
    ("lowercase", {}, "le volcan est une montagne qui crache de la lave.", True, False),
    ("lowercase", {}, "1. kites and string.\n2. kites and sky.", True, False),  # langdetect: af
    # include_word: IFEval's keywords:existence is a substring search
    ("include_word", {"word": "rain"}, "Clouds bring rain.", True, True),
    ("include_word", {"word": "rain"}, "Clouds bring RAIN.", True, True),
    ("include_word", {"word": "rain"}, "Clouds bring snow.", False, False),
    ("include_word", {"word": "rain"}, "Rainforests are wet.", False, True),
    # exclude_word: both whole-word, case-insensitive
    ("exclude_word", {"word": "rain"}, "Clouds bring Rain.", False, False),
    ("exclude_word", {"word": "rain"}, "Rainforests are wet.", True, True),
    ("exclude_word", {"word": "rain"}, "Clouds bring snow.", True, True),
    # no_commas: the same rule
    ("no_commas", {}, "Red, green and blue.", False, False),
    ("no_commas", {}, "Red and green and blue.", True, True),
    ("no_commas", {}, "Red\uff0c green.", True, True),  # a fullwidth comma is no comma for either
    # end_with: IFEval ignores case and strips double quotes
    ("end_with", {"phrase": END}, f"Coffee is good. {END}\n", True, True),
    ("end_with", {"phrase": END}, "Coffee is good. That is all. Bye.", False, False),
    ("end_with", {"phrase": END}, "Coffee is good. that is all.", False, True),
    ("end_with", {"phrase": END}, f'"Coffee is good. {END}"', False, True),
    # json_keys: json_format checks validity only (keys are not covered)
    ("json_keys", {"keys": ["name", "summary"]}, JSON, True, True),
    ("json_keys", {"keys": ["name", "summary"]}, f"```json\n{JSON}\n```", True, True),
    ("json_keys", {"keys": ["name", "summary"]}, f"Here it is: {JSON}", False, False),
    ("json_keys", {"keys": ["name", "summary"]}, JSON[:-1] + ",}", False, False),
    ("json_keys", {"keys": ["name", "summary"]}, '{"other": 1}', True, True),  # keys: uncovered
    ("json_keys", {"keys": ["name", "summary"]}, f"```python\n{JSON}\n```", True, False),
    ("json_keys", {"keys": ["name", "summary"]}, f"[{JSON}]", False, True),
]


def test_every_registered_kind_is_mapped_or_listed_as_unmapped():
    """A new kind fails here until it gets an IFEval instruction or a reason it has none."""
    assert not set(IFEVAL_INSTRUCTIONS) & set(UNMAPPED)
    assert set(IFEVAL_INSTRUCTIONS) | set(UNMAPPED) == set(CONSTRAINT_KINDS)


def test_the_mapping_is_pinned():
    words = {"num_words": 11, "relation": "less than"}
    pins = [
        ("max_words", {"n": 10}, "length_constraints:number_words", words),
        ("lowercase", {}, "change_case:english_lowercase", {}),
        ("include_word", {"word": "rain"}, "keywords:existence", {"keywords": ["rain"]}),
        (
            "exclude_word",
            {"word": "rain"},
            "keywords:forbidden_words",
            {"forbidden_words": ["rain"]},
        ),
        ("no_commas", {}, "punctuation:no_comma", {}),
        ("end_with", {"phrase": END}, "startend:end_checker", {"end_phrase": END}),
        ("json_keys", {"keys": ["a"]}, "detectable_format:json_format", {}),
    ]
    assert sorted(kind for kind, *_ in pins) == sorted(IFEVAL_INSTRUCTIONS)
    for kind, params, instruction_id, kwargs in pins:
        assert ifeval_instruction(Constraint(kind, params)) == (instruction_id, kwargs)
    sums = Constraint("arithmetic", {"expression": "2 + 2", "answer": 4})
    assert ifeval_instruction(sums) is None
    assert ifeval_follows(Constraint("numbered_list", {"n": 2}), "1. a\n2. b") is None


@pytest.mark.parametrize(("kind", "params", "response", "cutkit", "ifeval"), CASES)
def test_both_verdicts_on_fixed_answers(kind, params, response, cutkit, ifeval):
    constraint = Constraint(kind, params)
    assert covered_ok(constraint, response) is cutkit
    assert ifeval_follows(constraint, response) is ifeval


def test_every_mapped_kind_has_fixed_answers_on_both_sides():
    for kind in IFEVAL_INSTRUCTIONS:
        verdicts = {(c, i) for k, _, _, c, i in CASES if k == kind}
        assert {(True, True), (False, False)} <= verdicts, kind


def test_agreement_frame_compares_each_mapped_constraint():
    task = Task(
        "t",
        "Describe rain in lowercase, at most 20 words.",
        [Constraint("lowercase"), Constraint("max_words", {"n": 20})],
        "lowercase",
    )
    sums = Task(
        "s",
        "What is 2 + 2?",
        [Constraint("arithmetic", {"expression": "2 + 2", "answer": 4})],
        "arithmetic",
    )
    keys = Task("j", "JSON", [Constraint("json_keys", {"keys": ["name"]})], "json_keys")
    responses = ["rain is water that falls from the clouds in the sky.", "4", '{"other": 1}']
    frame = agreement([task, sums, keys], responses)
    assert list(frame.kind) == ["lowercase", "max_words", "json_keys"]  # arithmetic: unmapped
    assert list(frame.row) == [0, 0, 2]
    assert frame.agree.all()
    assert list(frame.cutkit_ok) == [True, True, False]  # full verdict: wrong keys
    assert list(frame.covered_ok) == [True, True, True]
    assert ifeval_check(task, responses[0]) == {
        "change_case:english_lowercase": True,
        "length_constraints:number_words": True,
    }
    with pytest.raises(ValueError, match="pair them one to one"):
        agreement([task], [])


def test_nothing_is_downloaded_at_import_or_check_time(tmp_path):
    """In a fresh interpreter with every socket connection refused and an empty home (no NLTK
    data), importing and running every mapped checker works."""
    script = textwrap.dedent(
        """
        import socket

        def refuse(*args, **kwargs):
            raise OSError("network access during the IFEval check")

        socket.socket.connect = refuse
        socket.create_connection = refuse
        from cutkit.online.ifeval import IFEVAL_INSTRUCTIONS, ifeval_follows
        from cutkit.online.tasks import Constraint

        params = {"max_words": {"n": 5}, "include_word": {"word": "a"},
                  "exclude_word": {"word": "a"}, "end_with": {"phrase": "a"},
                  "json_keys": {"keys": ["a"]}}
        for kind in IFEVAL_INSTRUCTIONS:
            ifeval_follows(Constraint(kind, params.get(kind, {})), "this is a short answer.")
        print("ok")
        """
    )
    env = {"HOME": str(tmp_path), "NLTK_DATA": str(tmp_path / "nltk"), "PYTHONPATH": str(REPO)}
    env["PATH"] = "/usr/bin:/bin"
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert not (tmp_path / "nltk").exists()


def test_a_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "if_verifiable.ifeval.instructions_registry", None)
    with pytest.raises(ImportError, match=r"pip install 'cutkit\[ifeval\]'"):
        ifeval_follows(Constraint("no_commas"), "no commas here")


def test_the_agreement_benchmark_runs(tmp_path):
    script = load_benchmark("ifeval_agreement/ifeval_agreement")  # and onpolicy_experiment
    script.main(["--out", str(tmp_path)])
    readme = (tmp_path / "README.md").read_text()
    assert "**Agreement:" in readme and "### Probes" in readme
    rows = (tmp_path / "agreement.csv").read_text().splitlines()
    assert len(rows) > 4080  # every held-out answer, then the synthetic responses
