"""The hand-written starter judgment set in data/starter: schema, splits, balance and loader routing."""

from __future__ import annotations

import pytest

from cutkit.data.loading import load_records_with_report
from tests.helpers import REPO, is_positive_row, read_jsonl_rows

STARTER = REPO / "data" / "starter"
SPLITS = ("train", "test")
KINDS = {
    "factual",
    "arithmetic",
    "unit_conversion",
    "format",
    "summary",
    "code",
    "commonsense",
    "style",
}
FIELDS = {"id", "kind", "instruction", "input", "output", "judgment", "refinement", "error_spans"}


def read_rows(split: str) -> list[dict]:
    return read_jsonl_rows(STARTER / f"{split}.jsonl")


is_positive = is_positive_row


@pytest.fixture(scope="module")
def rows() -> dict[str, list[dict]]:
    return {split: read_rows(split) for split in SPLITS}


def all_rows(rows: dict[str, list[dict]]) -> list[dict]:
    return [row for split in SPLITS for row in rows[split]]


def test_split_sizes_and_fields(rows):
    assert len(rows["train"]) == 48
    assert len(rows["test"]) == 16
    for row in all_rows(rows):
        assert set(row) == FIELDS, row.get("id")
        assert row["kind"] in KINDS, row["id"]
        for name in ("instruction", "output"):
            assert isinstance(row[name], str) and row[name].strip(), (row["id"], name)
        assert isinstance(row["input"], str), row["id"]
        assert isinstance(row["error_spans"], list), row["id"]


def test_ids_unique_across_splits(rows):
    ids = [row["id"] for row in all_rows(rows)]
    assert len(ids) == len(set(ids))


def test_no_instruction_shared_between_splits(rows):
    train = {row["instruction"] for row in rows["train"]}
    test = {row["instruction"] for row in rows["test"]}
    assert not train & test


@pytest.mark.parametrize("split", SPLITS)
def test_each_split_covers_all_kinds(rows, split):
    assert {row["kind"] for row in rows[split]} == KINDS


@pytest.mark.parametrize("split", SPLITS)
def test_positive_share(rows, split):
    share = sum(is_positive(row) for row in rows[split]) / len(rows[split])
    assert 0.2 <= share <= 0.4, share


def test_negatives_have_spans_and_refinement(rows):
    for row in all_rows(rows):
        if is_positive(row):
            continue
        assert row["error_spans"], row["id"]
        for span in row["error_spans"]:
            assert isinstance(span, str) and span, (row["id"], span)
            # exactly once: the loader maps a substring to its first occurrence
            assert row["output"].count(span) == 1, (row["id"], span)
        assert isinstance(row["refinement"], str) and row["refinement"].strip(), row["id"]
        assert row["refinement"] != row["output"], row["id"]


def test_positives_have_no_spans_or_refinement(rows):
    for row in all_rows(rows):
        if not is_positive(row):
            continue
        assert row["error_spans"] == [], row["id"]
        assert row["refinement"] is None, row["id"]
        assert row["judgment"] is None or row["judgment"].startswith("Perfect"), row["id"]


@pytest.mark.parametrize("split", SPLITS)
def test_loads_with_cutkit(rows, split):
    records, report = load_records_with_report(STARTER / f"{split}.jsonl")
    assert report.n_skipped == 0
    assert len(records) == len(rows[split])
    for row, record in zip(rows[split], records, strict=True):
        assert record.id == row["id"]
        assert record.response == row["output"]
        assert record.meta.get("kind") == row["kind"]
        assert record.is_positive == is_positive(row), row["id"]
        assert len(record.error_spans) == len(row["error_spans"]), row["id"]
        for (start, end), text in zip(record.error_spans, row["error_spans"], strict=True):
            assert record.response[start:end] == text, (row["id"], text)
