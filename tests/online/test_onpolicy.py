"""The on-policy experiment's pieces (cutkit.online.onpolicy), shared by the demo and the
benchmark: the topic splits, the answer rows (raw and honest), the judged records with their
refinements, and the held-out figures under cutkit.evaluate's names."""

from __future__ import annotations

import pytest

from cutkit.eval.generation import Generation
from cutkit.online.onpolicy import (
    answer_rows,
    first_words,
    heldout_figures,
    judge_answers,
    word_limit_splits,
)


def generation(text: str, finished: bool = True) -> Generation:
    return Generation(text=text, finished=finished, n_tokens=len(text.split()))


def one_task():
    """One "Describe X in at most 8 words." task."""
    return word_limit_splits({"t": 3}, {"t": 3}, (8,), seed=0)["t"][0]


def test_splits_are_disjoint_in_topics_sized_and_reproducible():
    counts, sizes = {"train": 10, "val": 5, "heldout": None}, {"train": 12, "val": 6, "heldout": 9}
    tasks = word_limit_splits(counts, sizes, (8, 10), seed=7)
    assert {k: len(v) for k, v in tasks.items()} == sizes
    topics = {k: {t.topic for t in v} for k, v in tasks.items()}
    assert not topics["train"] & topics["val"] and not topics["val"] & topics["heldout"]
    assert not topics["train"] & topics["heldout"]
    again = word_limit_splits(counts, sizes, (8, 10), seed=7)
    assert [t.id for t in again["train"]] == [t.id for t in tasks["train"]]
    other = word_limit_splits(counts, sizes, (8, 10), seed=8)
    assert [t.id for t in other["train"]] != [t.id for t in tasks["train"]]
    with pytest.raises(ValueError, match="only 12 val instructions for 13"):  # 2 topics x 2 x 3
        word_limit_splits({"train": 10, "val": 2}, {"train": 12, "val": 13}, (8, 10), seed=7)


def test_rows_judge_raw_and_honest_satisfaction_apart():
    task = one_task()
    topic = task.topic
    answers = [
        generation(f"{topic.capitalize()} shape the land around them."),  # sound, in the limit
        generation(" ".join(["word"] * 20) + "."),  # too long
        generation("Yes."),  # meets the limit by saying nothing
        generation("An unfinished answer", finished=False),
    ]
    rows = answer_rows([task] * 4, answers)
    assert [r["satisfied"] for r in rows] == [True, False, True, False]
    assert [r["honest"] for r in rows] == [True, False, False, False]
    assert rows[2]["content_problem"] is not None and rows[0]["content_problem"] is None
    assert rows[3]["degenerate"] == "truncated" and rows[1]["words"] == 20


def test_judged_records_quote_the_excess_and_refine_the_too_long_only():
    task = one_task()
    long = "Coffee is a warm dark drink that many people love to have every single morning."
    rows = answer_rows([task] * 4, [generation(long), generation("Short and sound answer here."),
                                    generation(""), generation(long, finished=False)])  # fmt: skip
    records, n_cut_off = judge_answers([task] * 4, rows, "train")
    assert n_cut_off == 1 and len(records) == 2  # the empty answer and the cut-off one dropped
    too_long, fine = records
    assert too_long.is_negative and too_long.refinement == first_words(long, 8)
    assert too_long.error_spans and fine.is_positive and fine.refinement is None
    assert too_long.meta["task"]["id"] == task.id and too_long.id == f"train-{task.id}"
    kept, _ = judge_answers([task] * 4, rows, "train", keep_cut_off=True)
    assert len(kept) == 3 and kept[-1].meta["truncated"]


def test_first_words_ends_with_a_full_stop():
    assert (
        first_words("Coffee is a warm, dark drink, loved by many.", 5) == "Coffee is a warm, dark."
    )
    assert first_words("Short one!", 5) == "Short one!"


def test_heldout_figures_use_the_evaluate_names(tiny, tokenizer):
    task = one_task()
    long = "Coffee is a warm dark drink that many people love to have every single morning."
    rows = answer_rows([task, task], [generation(long), generation("A fine short answer.")])
    reference, _ = judge_answers([task, task], rows, "heldout")
    figures = heldout_figures(tiny, tokenizer, [task], reference, template="chat",
                              max_new_tokens=4, max_length=128)  # fmt: skip
    assert {"logp_error_tokens", "logp_other_tokens", "logp_good"} <= set(figures)
    assert figures["logp_error_tokens"] < 0 and figures["n_accepted"] == 1
    assert len(figures["rows"]) == 1 and 0 <= figures["honest_satisfaction"] <= 1
