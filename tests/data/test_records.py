"""JudgmentRecord routing (docs/method.md §1), junk detection and RecordError messages."""

from __future__ import annotations

import doctest

import pytest

import cutkit.data.records
from cutkit.data.records import (
    JUNK_REASONS,
    JudgmentRecord,
    RecordError,
    is_commendation,
    is_junk_judgment,
    is_positive_judgment,
    junk_reason,
    refuse_junk,
    refuse_missing_refinements,
)


def make(judgment: str | None = None, **fields) -> JudgmentRecord:
    return JudgmentRecord(
        id="r", instruction="Do it.", response="Done.", judgment=judgment, **fields
    )


@pytest.mark.parametrize(
    ("judgment", "score", "positive"),
    [
        (None, None, True),  # missing judgment
        ("", None, True),  # empty judgment
        ("   \n", None, True),  # whitespace only
        ("Perfect.", None, True),  # a model judge's reply starting with "Perfect"
        ("perfect answer, nothing to add", None, True),
        ("  **Perfect!** Clear and correct.", None, True),
        ("Perfectly fine.", None, False),  # "Perfectly" is not the word "Perfect"
        ("The year is wrong.", None, False),
        ("The response is perfect.", None, False),  # does not START with "Perfect": negative
        ("The year is wrong.", 7, True),  # score >= 7 wins over the text
        ("The year is wrong.", 6.99, False),
        (None, 3, False),  # a low score makes even a missing judgment negative
        ("Perfect.", 2, False),
    ],
)
def test_routing(judgment, score, positive):
    assert is_positive_judgment(judgment, score) is positive
    assert make(judgment, score=score).is_positive is positive
    assert make(judgment, score=score).is_negative is (not positive)


def test_explicit_routing_wins_over_the_judgment():
    assert make("The year is wrong.", is_positive=True).is_positive is True
    assert make(None, is_positive=False).is_positive is False


def test_record_normalises_id_and_spans():
    record = JudgmentRecord(id=7, instruction="i", response="abcdef", error_spans=[[1, 3], (4, 6)])
    assert record.id == "7"
    assert record.error_spans == [(1, 3), (4, 6)]
    assert record.error_texts() == ["bc", "ef"]


def test_prompt_instruction_appends_input():
    assert make(input="").prompt_instruction == "Do it."
    assert make(input="the text").prompt_instruction == "Do it.\nthe text"


def test_to_dict_uses_official_field_names():
    record = make("Too short.", refinement="Done, in full.", error_spans=[(0, 4)], meta={"k": 1})
    assert record.to_dict() == {
        "id": "r",
        "instruction": "Do it.",
        "input": "",
        "output": "Done.",
        "judgment": "Too short.",
        "is_positive": False,
        "score": None,
        "refinement": "Done, in full.",
        "error_spans": [[0, 4]],
        "meta": {"k": 1},
    }


@pytest.mark.parametrize(
    ("judgment", "junk"),
    [
        ("$ERROR$", True),
        (" $ERROR$\n", True),
        ("$ERROR$ and more", True),
        ("$error$", True),
        ("$ERROR$: timeout", True),
        ("Error: 2+2 is 4, not 5.", False),
        ("The $ERROR$ placeholder is mentioned mid-text.", False),
        ("", False),
        (None, False),
    ],
)
def test_is_junk_judgment(judgment, junk):
    assert is_junk_judgment(judgment) is junk


@pytest.mark.parametrize(
    "judgment",
    [
        "The response is perfect.",
        "The response is perfect. It provides a detailed description of the water cycle.",
        "The response is perfect as it covers every step the instruction asked for.",
        "The headline is absolutely perfect: catchy, short and on topic.",
        "The answer follows the instruction perfectly and stays concise.",
    ],
)
def test_pure_praise_is_a_commendation(judgment):
    assert is_commendation(judgment)
    assert junk_reason(make(judgment)) == "commendation"


@pytest.mark.parametrize(
    "judgment",
    [
        "The response is almost perfect, but the second date is wrong.",
        "The response is perfect, but it includes an unnecessary explanation.",
        "The response is not perfect. The list has four items instead of five.",
        "The response is almost perfect. However, the tone is too formal.",
        "The response is perfect except for a missing full stop.",
        "The tagline is perfect; the explanation after it shouldn't be there.",
        "The year is wrong.",  # no praise at all
        "Perfectly reasonable structure; the second paragraph has an error.",
    ],
)
def test_critiques_are_not_commendations(judgment):
    assert not is_commendation(judgment)
    assert junk_reason(make(judgment)) is None


def test_junk_reasons():
    assert junk_reason(make("$ERROR$")) == "judge_error"
    assert junk_reason(make("$ERROR$", score=9)) == "judge_error"  # a failed call is junk anyway
    assert junk_reason(make(None, is_positive=False)) == "no_critique"
    assert junk_reason(make("  ", score=2)) == "no_critique"
    assert junk_reason(make(None)) is None  # a positive without text is fine
    assert junk_reason(make("Perfect. Nothing to add.")) is None  # routed positive
    assert junk_reason(make("The response is perfect.", is_positive=True)) is None
    assert set(JUNK_REASONS) == {"judge_error", "commendation", "no_critique"}
    assert "$ERROR$" in JUNK_REASONS["judge_error"]


def test_record_error_says_where_and_what_to_do():
    error = RecordError(
        "expected a string, got int 3",
        source="data.jsonl",
        index=4,
        line=6,
        field="instruction",
        fix="Make it a string",
    )
    assert str(error) == (
        "data.jsonl, record 4 (line 6), field 'instruction': expected a string, got int 3. "
        "Make it a string"
    )
    assert (error.index, error.line, error.field) == (4, 6, "instruction")
    assert isinstance(error, ValueError)
    assert str(RecordError("bad")) == "<records>: bad"


def test_refuse_junk_names_the_first_junk_record_and_the_fix():
    fine = [make(None), make("Wrong: it is 4.")]
    refuse_junk(fine)  # nothing to refuse
    junk = JudgmentRecord("bad", "Q?", "A.", "$ERROR$")
    with pytest.raises(RecordError, match="bad") as caught:
        refuse_junk([*fine, junk, make("The response is perfect.")])
    assert (caught.value.index, caught.value.field) == (2, "judgment")
    assert str(caught.value) == (
        "<records>, record 2, field 'judgment': junk judgment (judge_error) of record 'bad' "
        "cannot become training signal. load the data with cutkit.load_records(..., lenient=True)"
    )


def test_refuse_missing_refinements_checks_negatives_only():
    refuse_missing_refinements([make(None), make("Wrong.", refinement="Right.")], needed_by="x")
    with pytest.raises(RecordError) as caught:
        refuse_missing_refinements(
            [make(None), make("Wrong.", refinement="  ")], needed_by="DPO needs it", fix="Add one"
        )
    assert str(caught.value) == (
        "<records>, record 1, field 'refinement': negative record 'r' has no refinement, and DPO "
        "needs it. Add one"
    )


def test_module_docstring_example_runs():
    assert doctest.testmod(cutkit.data.records).failed == 0


@pytest.mark.parametrize("score", [float("inf"), float("-inf"), float("nan"), "8", True])
def test_a_score_that_is_not_a_finite_number_is_refused_not_routed(score):
    with pytest.raises(RecordError) as caught:
        make("The year is wrong.", score=score)
    message = str(caught.value)
    assert message.startswith("<records>, record 'r', field 'score': score must be a finite number")
    assert "routes the record" in message
    with pytest.raises(ValueError, match="score must be a finite number"):
        is_positive_judgment("Fine.", score)


def test_a_finite_score_is_kept_as_a_float():
    assert make("Fine.", score=8).score == 8.0 and make("Fine.", score=8).is_positive


@pytest.mark.parametrize("judgment", ["$error$", "$ERROR$: timeout", " $Error$ (429)\n"])
def test_judge_error_variants_are_junk_with_the_judge_error_reason(judgment):
    assert junk_reason(make(judgment, score=9)) == "judge_error"
    with pytest.raises(RecordError, match="judge_error"):
        refuse_junk([make(judgment)])
