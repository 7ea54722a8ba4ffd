"""Bad-input corpus, records built directly: ``JudgmentRecord(...)`` validates its fields when it
is built (the same rule the loaders apply: :func:`cutkit.data.records.validate_record`), and the
error names the record and the field. Each case is the constructor's keyword arguments and the
fragments the :class:`~cutkit.data.records.RecordError` must hold, or ``OK``."""

from __future__ import annotations

import dataclasses

import pytest

from cutkit.data.records import JudgmentRecord, RecordError

OK = None
BASE = {"id": "r1", "instruction": "What is 2 + 2?", "response": "It is 5.", "judgment": "Wrong."}

CASES = [
    ("instruction-none", {"instruction": None}, ("'instruction'", "expected a string")),
    ("instruction-int", {"instruction": 7}, ("'instruction'", "expected a string", "int 7")),
    ("instruction-blank", {"instruction": "  \n"}, ("'instruction'", "is empty")),
    ("response-empty", {"response": ""}, ("'response'", "is empty")),
    ("response-whitespace", {"response": " \t"}, ("'response'", "is empty")),
    ("response-int", {"response": 5}, ("'response'", "expected a string", "int 5")),
    ("response-bytes", {"response": b"It is 5."}, ("'response'", "bytes")),
    ("response-lone-surrogate", {"response": "bad \ud800"}, ("'response'", "surrogate")),
    ("judgment-int", {"judgment": 3}, ("'judgment'", "a string or null")),
    ("judgment-list", {"judgment": ["Wrong."]}, ("'judgment'", "a string or null")),
    ("input-int", {"input": 1}, ("'input'", "a string or null")),
    ("refinement-int", {"refinement": 4}, ("'refinement'", "a string or null")),
    ("is_positive-string", {"is_positive": "yes"}, ("'is_positive'", "true, false or null")),
    ("is_positive-int", {"is_positive": 1}, ("'is_positive'", "true, false or null")),
    ("meta-list", {"meta": [1, 2]}, ("'meta'", "an object")),
    ("id-none", {"id": None}, ("'id'", "a string or an integer")),
    ("id-float", {"id": 1.5}, ("'id'", "a string or an integer")),
    ("spans-reversed", {"error_spans": [(6, 3)]}, ("'error_spans[0]'", "0 <= start < end <= 8")),
    ("spans-past-the-end", {"error_spans": [(0, 99)]}, ("'error_spans[0]'", "<= 8")),
    ("spans-negative-start", {"error_spans": [(-2, 3)]}, ("'error_spans[0]'",)),
    ("spans-empty-span", {"error_spans": [(3, 3)]}, ("'error_spans[0]'", "empty")),
    ("spans-second-bad", {"error_spans": [(0, 2), (5, 4)]}, ("'error_spans[1]'",)),
    (
        "spans-as-digit-strings",
        {"error_spans": [("0", "5")]},
        ("'error_spans[0]'", "[start, end] or a substring"),
    ),
    ("spans-text-not-in-response", {"error_spans": ["seven"]}, ("'error_spans[0]'", "occur")),
    ("spans-not-a-list", {"error_spans": 5}, ("'error_spans'", "a list")),
    ("spans-triple", {"error_spans": [(0, 1, 2)]}, ("'error_spans[0]'",)),
    ("spans-bool", {"error_spans": [(False, True)]}, ("'error_spans[0]'",)),
    ("spans-valid", {"error_spans": [(6, 7)]}, OK),
    ("spans-substring", {"error_spans": ["5"]}, OK),
    ("id-int", {"id": 12}, OK),
    ("input-none", {"input": None}, OK),
    ("judgment-empty-is-positive", {"judgment": ""}, OK),
]


@pytest.mark.parametrize(("kwargs", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_record_built_directly_is_validated(kwargs, expected):
    if expected is OK:
        JudgmentRecord(**{**BASE, **kwargs})
        return
    with pytest.raises(RecordError) as caught:
        JudgmentRecord(**{**BASE, **kwargs})
    message = str(caught.value)
    record = repr(kwargs.get("id", BASE["id"]))
    assert f"record {record}" in message, message
    for fragment in expected:
        assert fragment in message, (fragment, message)


def test_spans_are_stored_as_int_pairs_and_substrings_are_resolved():
    record = JudgmentRecord(**{**BASE, "error_spans": [[6, 7], "It"]})
    assert record.error_spans == [(6, 7), (0, 2)]
    assert record.id == "r1" and JudgmentRecord(**{**BASE, "id": 7}).id == "7"


def test_replace_validates_again():
    record = JudgmentRecord(**BASE)
    with pytest.raises(RecordError, match=r"'response'.*is empty"):
        dataclasses.replace(record, response="")


def test_the_loaders_use_the_same_rule():
    """The same bad span read from a file: the file's field name and the record index."""
    from cutkit.data.loading import load_records

    rows = [{**BASE, "output": BASE["response"], "error_spans": [[6, 3]]}]
    del rows[0]["response"]
    with pytest.raises(RecordError) as from_file:
        load_records(rows)
    with pytest.raises(RecordError) as built:
        JudgmentRecord(**{**BASE, "error_spans": [(6, 3)]})
    assert from_file.value.problem == built.value.problem
    assert "<list>, record 0, field 'error_spans[0]'" in str(from_file.value)
