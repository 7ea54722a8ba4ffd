"""Bad-input corpus, loader sources: a JSON object naming a key twice is refused (JSON would keep
the last value silently, turning a critique into a positive), a DataFrame whose id column pandas
made float is read right and a missing id is blamed on its own row, and a list of records already
built loads instead of being told to rename its fields."""

from __future__ import annotations

import json

import pytest

from cutkit.data.loading import load_records
from cutkit.data.records import JudgmentRecord, RecordError

ROW = '{"id": "a", "instruction": "Add 2 and 2.", "output": "2 + 2 = 5.", "judgment": "It is 4."}'
DUPLICATE_JUDGMENT = (
    '{"id": "b", "instruction": "Add 2 and 3.", "output": "6.", '
    '"judgment": "Wrong: it is 5.", "judgment": null}'
)
NESTED = (
    '{"id": "c", "instruction": "Q?", "output": "A.", "judgment": "Bad.", "meta": {"k": 1, "k": 2}}'
)

DUPLICATES = [
    # (case id, file name, content, fragments of the error)
    (
        "jsonl-judgment-twice",
        "d.jsonl",
        f"{ROW}\n{DUPLICATE_JUDGMENT}\n",
        ("record 1", "line 2", "'judgment'", "more than once"),
    ),
    (
        "json-judgment-twice",
        "d.json",
        f"[{ROW}, {DUPLICATE_JUDGMENT}]",
        ("record 1", "'judgment'", "more than once"),
    ),
    ("jsonl-nested-key-twice", "d.jsonl", f"{NESTED}\n", ("record 0", "'meta.k'")),
    (
        "json-wrapped-list",
        "d.json",
        f'{{"records": [{ROW}, {DUPLICATE_JUDGMENT}]}}',
        ("record 1", "'judgment'"),
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "expected"), [c[1:] for c in DUPLICATES], ids=[c[0] for c in DUPLICATES]
)
def test_a_key_named_twice_is_refused(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(RecordError) as caught:
        load_records(path)
    message = str(caught.value)
    assert str(path) in message, message
    for fragment in expected:
        assert fragment in message, (fragment, message)


def test_the_same_key_in_two_records_is_fine(tmp_path):
    path = tmp_path / "d.jsonl"
    other = ROW.replace('"a"', '"b"')
    path.write_text(f"{ROW}\n{other}\n")
    assert [r.id for r in load_records(path)] == ["a", "b"]


def frame(ids):
    import pandas as pd

    return pd.DataFrame(
        [
            {"id": i, "instruction": f"Q{k}?", "output": f"A{k}.", "judgment": "Wrong."}
            for k, i in enumerate(ids)
        ]
    )


def test_a_float_id_column_with_a_gap_blames_the_row_without_an_id():
    df = frame([1, None, 3])
    assert str(df["id"].dtype) == "float64"
    with pytest.raises(RecordError) as caught:
        load_records(df)
    assert "<DataFrame>, record 1, field 'id'" in str(caught.value), str(caught.value)
    assert "no id" in str(caught.value)


def test_a_float_id_column_of_whole_numbers_loads_as_integers():
    df = frame([1, 2, 3]).astype({"id": "float64"})
    assert [r.id for r in load_records(df)] == ["1", "2", "3"]


def test_a_frame_without_ids_still_loads():
    df = frame([None, None]).drop(columns="id")
    assert [r.id for r in load_records(df)] == ["0", "1"]


def test_a_list_of_records_loads():
    records = [
        JudgmentRecord("n", "Q?", "A.", "Wrong.", error_spans=[(0, 1)], meta={"k": 1}),
        JudgmentRecord("p", "Q2?", "B."),
    ]
    loaded = load_records(records)
    assert loaded == records


def test_a_list_of_records_is_still_checked_for_junk():
    records = [JudgmentRecord("n", "Q?", "A.", "$ERROR$")]
    with pytest.raises(RecordError, match=r"record 0.*\$ERROR\$"):
        load_records(records)
    from cutkit.data.loading import JunkRecordWarning

    with pytest.warns(JunkRecordWarning):
        assert load_records(records, lenient=True) == []


def test_records_roundtrip_through_to_dict_and_a_file(tmp_path):
    records = [JudgmentRecord("n", "Q?", "A.", "Wrong.", error_spans=[(0, 1)])]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records))
    assert load_records(path) == records
