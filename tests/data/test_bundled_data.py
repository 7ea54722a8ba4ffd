"""The bundled judgment set in data/judgments: schema, split, balance, spans and reproducibility."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter

import pytest

from cutkit.data.loading import load_records_with_report
from cutkit.eval.metrics import answer_correct
from tests.helpers import REPO, is_positive_row, read_jsonl_rows

BUNDLED = REPO / "data" / "judgments"
SCRIPT = REPO / "scripts" / "make_judgments.py"
SPLITS = ("train", "test")
FIELDS = [
    "id",
    "kind",
    "instruction",
    "input",
    "output",
    "judgment",
    "refinement",
    "error_spans",
    "answer",
    "source",
]


def read_rows(split: str) -> list[dict]:
    return read_jsonl_rows(BUNDLED / f"{split}.jsonl")


is_positive = is_positive_row


@pytest.fixture(scope="module")
def rows() -> dict[str, list[dict]]:
    return {split: read_rows(split) for split in SPLITS}


@pytest.fixture(scope="module")
def everything(rows) -> list[dict]:
    return [row for split in SPLITS for row in rows[split]]


def test_fields_and_types(everything):
    for row in everything:
        assert list(row) == FIELDS, row.get("id")
        for name in ("instruction", "output"):
            assert isinstance(row[name], str) and row[name].strip(), (row["id"], name)
        assert isinstance(row["input"], str), row["id"]
        assert isinstance(row["error_spans"], list), row["id"]
        assert row["source"] == "handwritten" or row["source"].startswith("generated:"), row["id"]


def test_size_kinds_and_split(rows, everything):
    assert len(everything) >= 400
    kinds = {row["kind"] for row in everything}
    assert len(kinds) >= 8
    for split in SPLITS:
        assert {row["kind"] for row in rows[split]} == kinds, split
    assert 0.15 <= len(rows["test"]) / len(everything) <= 0.25


def test_ids_unique_across_splits(everything):
    ids = [row["id"] for row in everything]
    assert len(ids) == len(set(ids))


def test_no_instruction_and_output_shared_between_splits(rows):
    train = {(row["instruction"], row["output"]) for row in rows["train"]}
    test = {(row["instruction"], row["output"]) for row in rows["test"]}
    assert not train & test


def test_positive_share(rows, everything):
    share = sum(map(is_positive, everything)) / len(everything)
    assert 0.25 <= share <= 0.35, share
    for split in SPLITS:
        split_share = sum(map(is_positive, rows[split])) / len(rows[split])
        assert 0.2 <= split_share <= 0.4, (split, split_share)


def test_negatives_have_refinement_and_exact_spans(everything):
    for row in everything:
        if is_positive(row):
            continue
        assert isinstance(row["refinement"], str) and row["refinement"].strip(), row["id"]
        assert row["refinement"] != row["output"], row["id"]
        assert row["error_spans"], row["id"]
        for span in row["error_spans"]:
            assert isinstance(span, str) and span.strip(), (row["id"], span)
            # exactly once: the loader maps a substring to its first occurrence
            assert row["output"].count(span) == 1, (row["id"], span)


def test_positives_have_no_spans_or_refinement(everything):
    for row in everything:
        if not is_positive(row):
            continue
        assert row["error_spans"] == [], row["id"]
        assert row["refinement"] is None, row["id"]
        assert row["judgment"] is None or row["judgment"].startswith("Perfect"), row["id"]


def test_sources_handwritten_and_family_shares(everything):
    sources = Counter(row["source"] for row in everything)
    assert sources["handwritten"] >= 150
    for source, count in sources.items():
        if source != "handwritten":
            assert count <= 0.25 * len(everything), (source, count)


def test_handwritten_records_come_from_the_source_file(everything):
    path = BUNDLED / "source" / "handwritten.jsonl"
    source = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    bundled = [
        {k: v for k, v in row.items() if k not in ("id", "source", "answer")}
        for row in sorted(everything, key=lambda r: r["id"])
        if row["source"] == "handwritten"
    ]
    assert bundled == source


def test_checkable_answers_are_stated_by_the_good_response_only(everything):
    """``answer``: the generated arithmetic, unit and fact records carry the final answer that
    cutkit.evaluate checks greedy generations against; the good response states it (the bad one of
    a negative does not), and no other record has one."""
    checkable = [row for row in everything if row["answer"] is not None]
    assert len(checkable) >= 150
    assert {row["source"] for row in checkable} == {
        "generated:arithmetic_word",
        "generated:unit_factor",
        "generated:fact_table",
    }
    for row in everything:
        if row["source"] in {row["source"] for row in checkable}:
            assert isinstance(row["answer"], str) and row["answer"], row["id"]
    for row in checkable:
        good = row["output"] if is_positive(row) else row["refinement"]
        assert answer_correct(good, row["answer"]), (row["id"], good, row["answer"])
        if not is_positive(row):
            assert not answer_correct(row["output"], row["answer"]), (row["id"], row["output"])


def test_no_instruction_from_the_starter_set(everything):
    starter = {
        json.loads(line)["instruction"]
        for path in sorted((REPO / "data" / "starter").glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line
    }
    assert not {row["instruction"] for row in everything} & starter


def test_script_regenerates_identical_files(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("make_judgments", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--out", str(tmp_path)]) == 0
    assert "| **all** |" in capsys.readouterr().out
    for split in SPLITS:
        expected = (BUNDLED / f"{split}.jsonl").read_bytes()
        assert (tmp_path / f"{split}.jsonl").read_bytes() == expected, split


@pytest.mark.parametrize("split", SPLITS)
def test_loads_strictly_with_cutkit(rows, split):
    records, report = load_records_with_report(BUNDLED / f"{split}.jsonl")  # strict: junk raises
    assert report.n_skipped == 0
    assert len(records) == len(rows[split])
    for row, record in zip(rows[split], records, strict=True):
        assert record.id == row["id"]
        assert record.response == row["output"]
        assert record.meta.get("kind") == row["kind"]
        assert record.meta.get("answer") == row["answer"]
        assert record.is_positive == is_positive(row), row["id"]
        assert len(record.error_spans) == len(row["error_spans"]), row["id"]
        for (start, end), text in zip(record.error_spans, row["error_spans"], strict=True):
            assert record.response[start:end] == text, (row["id"], text)
