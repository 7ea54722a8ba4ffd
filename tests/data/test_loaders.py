"""load_records: every format's fixture, every source type, every error path, junk handling."""

from __future__ import annotations

import doctest
import gzip
import json
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import cutkit.data.loading
from cutkit.data.formats import detect_format
from cutkit.data.loading import (
    JunkRecordWarning,
    LoadReport,
    load_records,
    load_records_with_report,
)
from cutkit.data.records import JudgmentRecord, RecordError, junk_reason
from tests.helpers import FIXTURES, read_jsonl_rows, write_jsonl_rows

LOADERS = FIXTURES / "loaders"


def good_row(**fields) -> dict:
    row = {"id": "a", "instruction": "Add 2 and 2.", "output": "2 + 2 = 5.", "judgment": "It is 4."}
    row.update(fields)
    return row


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def by_id(records: list[JudgmentRecord]) -> dict[str, JudgmentRecord]:
    return {record.id: record for record in records}


# --- formats -------------------------------------------------------------------------------------


def test_cut_fixture():
    records, report = load_records_with_report(LOADERS / "cut_alpaca.json")
    got = by_id(records)
    assert list(got) == [f"alp-00{k}" for k in range(1, 8)] + ["7", "alp-009"]  # no id -> index
    assert [r.id for r in records if r.is_positive] == ["alp-001", "alp-003", "alp-004", "alp-006"]
    conversion = got["alp-002"]
    assert conversion.input == "25 degrees Celsius"
    assert (
        conversion.prompt_instruction
        == "Convert the temperature to Fahrenheit.\n25 degrees Celsius"
    )
    assert conversion.refinement == "25 degrees Celsius is 77 degrees Fahrenheit."  # from i_ans
    assert conversion.error_texts() == ["67 degrees Fahrenheit"]  # substring -> span
    assert got["alp-007"].error_texts() == ["oxygen", "carbon dioxide"]  # [start, end] pairs
    assert got["alp-004"].score == 8.0
    assert got["7"].meta == {"reason": None}  # unknown fields are kept in meta
    assert got["alp-009"].meta == {"judge": "human", "round": 1}
    assert got["alp-009"].refinement == "Fresh bread, every morning."
    assert report == LoadReport(
        source=str(LOADERS / "cut_alpaca.json"),
        format="cut",
        n_read=9,
        n_loaded=9,
        n_positive=4,
        n_negative=5,
        n_negative_read=5,
        skipped={},
    )


def test_shepherd_fixture_with_refinements():
    path = LOADERS / "shepherd.jsonl"
    plain = load_records(path)
    refined = load_records(path, format="shepherd", refinements=LOADERS / "shepherd_raw.jsonl")
    assert [r.id for r in refined] == ["0", "1", "2"]
    assert all(r.is_negative for r in refined)  # Shepherd holds critiques only
    assert refined[0].instruction.startswith("Tom has 3 boxes")
    assert refined[0].judgment.startswith("The subtraction is wrong")
    assert refined[0].refinement == "3 x 12 = 36 pencils. 36 - 10 = 26 pencils are left."
    assert [r.refinement for r in plain] == [None, None, None]
    assert [r.response for r in plain] == [r.response for r in refined]


def test_summarization_fixture():
    records, report = load_records_with_report(LOADERS / "summarization.jsonl")
    got = by_id(records)
    assert list(got) == ["summ-a-0", "summ-a-1", "summ-b-1", "summ-b-2"]
    # rankings [0, 1]: the second answer ranks highest; its rating is 7 and it has no critiques
    best = got["summ-a-0"]
    assert best.is_positive and best.judgment is None
    assert best.response.startswith("After thirty years")
    assert best.instruction == "Summarize the story."
    assert best.input.startswith("Mara had kept the lighthouse")
    taught = got["summ-a-1"]  # two critiques: texts joined, the last refinement kept
    assert taught.is_negative
    assert taught.judgment == (
        "She teaches them to read the sea, not to read books. It should give examples, such as the "
        "colour of the water and the flight of gulls."
    )
    assert taught.refinement.startswith("She teaches them to read the sea: the colour")
    assert got["summ-b-1"].response.startswith("Yes, but")  # no rankings: the first answer
    assert got["summ-b-2"].is_negative  # rating 7 but a critique: negative; bad rankings: first
    assert got["summ-b-2"].meta == {"rating": 7.0, "answer_index": 0}
    assert report.skipped == {"feedback_skip": ["summ-b-0"]}  # top-ranked answer was skipped
    assert (report.n_read, report.n_loaded, report.n_positive, report.n_negative) == (5, 4, 1, 3)


def summarization_row(*answers, rankings=None) -> dict:
    question = {"question": "Summarize the passage.", "answers": list(answers)}
    if rankings is not None:
        question["rankings"] = rankings
    return {"data": {"passage": {"text": "A short passage."}, "questions": [question]}}


def test_summarization_empty_answers_are_skipped_and_uncritiqued_low_ratings_are_junk():
    empty = {"answer": " ", "feedback": {"rating": 7, "critiques": []}}
    records, report = load_records_with_report([summarization_row(empty)])
    assert records == [] and report.skipped == {"empty_answer": ["0-0"]}
    unexplained = {"answer": "A summary.", "feedback": {"rating": 4, "critiques": []}}
    with pytest.raises(RecordError, match=r"answers\[0\].feedback.critiques': negative record"):
        load_records([summarization_row(unexplained)])
    best_is_second = summarization_row(unexplained, empty, {"answer": "B."}, rankings=[2, 5, 5])
    _, report = load_records_with_report([best_is_second])  # ties: the first highest wins
    assert report.skipped == {"empty_answer": ["0-0"]}


def test_ultrafeedback_fixture():
    records = load_records(LOADERS / "ultrafeedback.jsonl")
    assert [(r.id, r.score, r.is_positive) for r in records] == [
        ("0-0", 8.5, True),
        ("0-1", 3.0, False),
        ("1-0", 7.0, True),  # exactly 7 is positive
        ("1-1", 1.5, False),
        ("1-2", 4.0, False),
    ]
    assert records[1].judgment.startswith("The function ignores b")
    assert (
        records[1].instruction
        == "Write a Python function that returns the largest of three numbers."
    )
    assert records[3].meta == {"source": "invented", "model": "model-c"}


@pytest.mark.filterwarnings("ignore::cutkit.data.loading.JunkRecordWarning")
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cut_alpaca.json", "cut"),
        ("cut_junk.jsonl", "cut"),
        ("shepherd.jsonl", "shepherd"),
        ("summarization.jsonl", "summarization"),
        ("ultrafeedback.jsonl", "ultrafeedback"),
    ],
)
def test_auto_detection(name, expected):
    _, report = load_records_with_report(LOADERS / name, lenient=True)
    assert report.format == expected
    assert load_records(LOADERS / name, format=expected, lenient=True) == load_records(
        LOADERS / name, lenient=True
    )


def test_detect_format_on_single_rows():
    assert detect_format(good_row()) == "cut"
    assert detect_format({"question": "q", "answer": "a", "feedback": "f"}) == "shepherd"
    assert detect_format({"instruction": "i", "completions": []}) == "ultrafeedback"
    assert detect_format({"data": {"passage": {}, "questions": []}}) == "summarization"
    assert detect_format({"prompt": "p"}) is None
    assert detect_format(["not", "a", "dict"]) is None


def test_explicit_format_overrides_detection():
    with pytest.raises(RecordError, match=r"record 0 \(line 1\), field 'instruction': missing"):
        load_records(LOADERS / "shepherd.jsonl", format="cut")


# --- sources -------------------------------------------------------------------------------------


def test_list_of_dicts_and_generators():
    rows = [good_row(id="a"), good_row(id="b", judgment=None)]
    records = load_records(rows)
    assert [(r.id, r.is_positive) for r in records] == [("a", False), ("b", True)]
    assert load_records(row for row in rows) == records
    assert load_records([]) == []


def test_dataframe_source_with_missing_values():
    frame = pd.DataFrame(
        [
            good_row(id=10, score=None, error_spans=[[0, 5]]),
            good_row(id=11, judgment=None, score=8.0, error_spans=[]),
        ]
    )
    records, report = load_records_with_report(frame)
    assert report.source == "<DataFrame>"
    assert [r.id for r in records] == ["10", "11"]  # numpy integers become string ids
    assert records[0].score is None  # NaN in the float column becomes None
    assert records[0].error_spans == [(0, 5)]
    assert records[1].judgment is None and records[1].is_positive


def test_dataset_source():
    datasets = pytest.importorskip("datasets")
    expected = load_records(LOADERS / "cut_alpaca.json")
    rows = [{**r.to_dict(), "meta": {"judge": "human"}} for r in expected]
    records, report = load_records_with_report(datasets.Dataset.from_list(rows))
    assert report.source == "<Dataset>"
    assert [r.id for r in records] == [r.id for r in expected]
    assert [r.error_spans for r in records] == [r.error_spans for r in expected]
    assert [r.is_positive for r in records] == [r.is_positive for r in expected]


def test_gzip_and_object_holding_a_list(tmp_path):
    rows = [good_row(id="a"), good_row(id="b")]
    path = tmp_path / "wrapped.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        json.dump({"version": 2, "records": rows}, handle)
    assert [r.id for r in load_records(path)] == ["a", "b"]
    assert [r.id for r in load_records(str(path))] == ["a", "b"]


# --- malformed input: one RecordError naming file, record, field and fix ----------------------------


@pytest.mark.parametrize(
    ("fields", "field", "problem"),
    [
        ({"instruction": 42}, "instruction", "expected a string, got int 42"),
        ({"instruction": "  "}, "instruction", "is empty"),
        ({"output": ""}, "output", "is empty"),
        ({"output": None}, "output", "expected a string"),
        ({"judgment": ["x"]}, "judgment", "expected a string or null"),
        ({"input": 3}, "input", "expected a string or null"),
        ({"score": "high"}, "score", "expected a number"),
        ({"score": True}, "score", "expected a number"),
        ({"is_positive": "yes"}, "is_positive", "expected true, false or null"),
        ({"meta": [1]}, "meta", "expected an object"),
        ({"id": 1.5}, "id", "expected a string or an integer, got float 1.5"),
        ({"error_spans": "2 + 2"}, "error_spans", "expected a list"),
        ({"error_spans": [[0, 99]]}, "error_spans[0]", "outside the response"),
        ({"error_spans": [[4, 4]]}, "error_spans[0]", "is empty or outside"),
        ({"error_spans": [[0, 3], [5, 2]]}, "error_spans[1]", "is empty or outside"),
        ({"error_spans": [[-1, 2]]}, "error_spans[0]", "outside the response"),
        ({"error_spans": [[0, 1, 2]]}, "error_spans[0]", "expected [start, end] or a substring"),
        ({"error_spans": [[0.5, 2]]}, "error_spans[0]", "expected [start, end] or a substring"),
        ({"error_spans": ["= 6"]}, "error_spans[0]", "does not occur in the response"),
        ({"error_spans": [""]}, "error_spans[0]", "does not occur in the response"),
    ],
)
def test_bad_field_names_file_record_line_and_field(tmp_path, fields, field, problem):
    path = write_jsonl_rows(tmp_path / "bad.jsonl", [good_row(id="ok"), good_row(**fields)])
    with pytest.raises(RecordError) as caught:
        load_records(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, record 1 (line 2), field '{field}': ")
    assert problem in message
    assert (caught.value.index, caught.value.line, caught.value.field) == (1, 2, field)
    assert caught.value.fix  # and says what to do


def test_missing_fields(tmp_path):
    row = good_row()
    del row["judgment"]
    path = write_json(tmp_path / "no_judgment.json", [row])
    with pytest.raises(RecordError, match=r"record 0, field 'judgment': missing required field\. "):
        load_records(path)
    with pytest.raises(RecordError, match=r"<list>, record 1, field 'output': missing required"):
        load_records([good_row(), {"instruction": "x", "judgment": None}])
    with pytest.raises(RecordError, match=r"<list>, record 0, field 'output': missing required"):
        load_records([{"instruction": "x", "judgment": None}], format="cut")


def test_invalid_json_reports_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"instruction": "a",\n   "output": }\n]')
    with pytest.raises(RecordError, match=r"broken\.json: invalid JSON at line 3, column 14"):
        load_records(path)


def test_invalid_jsonl_reports_record_and_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(good_row(id="a")) + "\n\n" + '{"instruction": "x",\n')
    with pytest.raises(RecordError) as caught:
        load_records(path)
    assert str(caught.value).startswith(
        f"{path}, record 1 (line 3): invalid JSON at line 3, column"
    )


def test_jsonl_keeps_unicode_line_separators_inside_strings(tmp_path):
    path = write_jsonl_rows(tmp_path / "sep.jsonl", [good_row(output="one\u2028two")])
    path.write_text(path.read_text().replace("\\u2028", "\u2028"))
    assert load_records(path)[0].response == "one\u2028two"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("42", "top level is a JSON int, not a list of records"),
        ('"text"', "top level is a JSON str"),
        ('{"a": [], "b": []}', "top-level object holds 2 lists"),
        ('{"a": 1}', "top-level object holds 0 lists"),
    ],
)
def test_top_level_must_be_a_list(tmp_path, content, problem):
    path = tmp_path / "top.json"
    path.write_text(content)
    with pytest.raises(RecordError, match=problem) as caught:
        load_records(path)
    assert str(caught.value).startswith(str(path))
    assert "top-level JSON list" in str(caught.value)  # the fix


def test_record_must_be_an_object(tmp_path):
    path = write_json(tmp_path / "rows.json", [good_row(), ["not", "an", "object"]])
    with pytest.raises(RecordError, match=r"rows\.json, record 1: record is a list, not an object"):
        load_records(path)


def test_unknown_format(tmp_path):
    path = write_jsonl_rows(tmp_path / "odd.jsonl", [{"prompt": "p", "completion": "c"}])
    with pytest.raises(RecordError) as caught:
        load_records(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, record 0 (line 1): unknown record format")
    assert "['completion', 'prompt']" in message  # the fields found
    for name in ("cut", "messages", "shepherd", "summarization", "ultrafeedback"):
        assert name in message  # the known formats
    with pytest.raises(RecordError, match=r"unknown format 'alpaca'.*cut, messages, shepherd"):
        load_records(LOADERS / "cut_alpaca.json", format="alpaca")


def test_bad_paths_and_sources(tmp_path):
    missing = tmp_path / "nowhere" / "data.json"
    with pytest.raises(RecordError, match="file does not exist") as caught:
        load_records(missing)
    assert str(missing) in str(caught.value)
    with pytest.raises(RecordError, match="is a directory"):
        load_records(tmp_path)
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(RecordError, match=r"unsupported file type '\.csv'.*\.json or \.jsonl"):
        load_records(tmp_path / "data.csv")
    (tmp_path / "latin.json").write_bytes('[{"instruction": "caf\xe9"}]'.encode("latin-1"))
    with pytest.raises(RecordError, match="not UTF-8"):
        load_records(tmp_path / "latin.json")
    with pytest.raises(RecordError, match="cannot load records from a int"):
        load_records(3)
    with pytest.raises(RecordError, match="cannot load records from a dict"):
        load_records(good_row())


def gz_bytes(*rows) -> bytes:
    return gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode())


@pytest.mark.parametrize(
    ("damage", "detail"),
    [
        (lambda gz: gz[: len(gz) // 2], "truncated"),  # EOFError from gzip
        (lambda gz: gz[:5], "truncated"),
        (lambda gz: b"plain text, not gzip\n", "Not a gzipped file"),  # BadGzipFile
        (lambda gz: gz[:-8] + b"\0\0\0\0" + gz[-4:], "CRC check failed"),
        (lambda gz: gz + b"garbage!", "Not a gzipped file"),
    ],
)
def test_a_damaged_gzip_archive_is_a_record_error_naming_the_file(tmp_path, damage, detail):
    path = tmp_path / "data.jsonl.gz"
    path.write_bytes(damage(gz_bytes(good_row(id="a"), good_row(id="b"))))
    with pytest.raises(RecordError, match="damaged gzip archive") as caught:
        load_records(path)
    assert str(caught.value).startswith(f"{path}: ") and detail in str(caught.value)
    assert "gzip -t" in caught.value.fix


def test_invalid_utf8_says_where_and_a_bom_is_fine(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(json.dumps(good_row(id="a")).encode() + b'\n{"id": "\xff"}\n')
    with pytest.raises(RecordError, match=r"not UTF-8 text .*b'\\xff' at offset \d+, line 2"):
        load_records(path)
    gz = tmp_path / "data.jsonl.gz"
    gz.write_bytes(gzip.compress(b'{"id": "\xfe"}\n'))
    with pytest.raises(RecordError, match="not UTF-8 text") as caught:
        load_records(gz)
    assert str(gz) in str(caught.value)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(good_row(id="a")).encode() + b"\n")
    assert [r.id for r in load_records(bom)] == ["a"]


@pytest.mark.parametrize("field", ["instruction", "output", "input", "judgment", "refinement"])
def test_a_lone_surrogate_is_a_record_error_naming_file_record_and_field(tmp_path, field):
    """``"\\ud800"`` is a valid JSON escape but no character: refused at load time (naming
    where), not left for the tokenizer to fail on with a TypeError naming nothing."""
    bad = json.dumps(good_row(id="b", **{field: "@@"})).replace('"@@"', '"bad \\ud800 text"')
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(good_row(id="a")) + "\n" + bad + "\n")
    with pytest.raises(RecordError) as caught:
        load_records(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, record 1 (line 2), field {field!r}: holds a lone surrogate")
    assert "'\\ud800' at character 4" in message
    rows = [good_row(id="a"), good_row(id="b", **{field: "x\udfff"})]
    with pytest.raises(RecordError, match=rf"<list>, record 1, field '{field}': .*surrogate"):
        load_records(rows)
    pair = json.dumps(good_row(id="c", output="@@")).replace('"@@"', '"smile \\ud83d\\ude00"')
    path.write_text(pair + "\n")
    assert load_records(path)[0].response == "smile \U0001f600"  # an escaped pair is fine


def test_duplicate_ids(tmp_path):
    path = write_json(tmp_path / "dup.json", [good_row(id="a"), good_row(id="b"), good_row(id="a")])
    with pytest.raises(
        RecordError, match=r"record 2, field 'id': duplicate id 'a' \(also used by record 0\)"
    ):
        load_records(path)


def test_shepherd_refinement_errors(tmp_path):
    feedback = LOADERS / "shepherd.jsonl"
    raw_rows = read_jsonl_rows(LOADERS / "shepherd_raw.jsonl")
    answers = [row["answer"] for row in read_jsonl_rows(feedback)]
    short = write_jsonl_rows(tmp_path / "short_raw.jsonl", raw_rows[:2])
    with pytest.raises(
        RecordError, match=r"short_raw\.jsonl: holds 2 records but the feedback file"
    ):
        load_records(feedback, refinements=short)
    raw_rows[1]["metadata"]["output_candidate"] = "a different answer"
    shuffled = write_jsonl_rows(tmp_path / "shuffled_raw.jsonl", raw_rows)
    with pytest.raises(
        RecordError, match=r"record 1 \(line 2\), field 'metadata.output_candidate'"
    ):
        load_records(feedback, refinements=shuffled)
    del raw_rows[2]["metadata"]["output_correct"]
    raw_rows[1]["metadata"]["output_candidate"] = answers[1]
    incomplete = write_jsonl_rows(tmp_path / "incomplete_raw.jsonl", raw_rows)
    with pytest.raises(RecordError, match=r"record 2 \(line 3\), field 'metadata.output_correct'"):
        load_records(feedback, refinements=incomplete)
    with pytest.raises(ValueError, match="only for format='shepherd'"):
        load_records(LOADERS / "cut_alpaca.json", refinements=short)


def test_nested_format_errors_name_the_nested_field(tmp_path):
    summary = {
        "data": {"passage": {"text": "P."}, "questions": [{"question": "Q?", "answers": []}]}
    }
    path = write_jsonl_rows(tmp_path / "summ.jsonl", [summary])
    with pytest.raises(RecordError, match=r"field 'data.questions\[0\].answers': no answers"):
        load_records(path)
    summary["data"]["questions"][0]["answers"] = [{"answer": "A.", "feedback": {"rating": "good"}}]
    write_jsonl_rows(path, [summary])
    with pytest.raises(RecordError, match=r"'data.questions\[0\].answers\[0\].feedback.rating'"):
        load_records(path)
    ultra = {"instruction": "I", "completions": [{"response": "R", "critique": "C"}]}
    with pytest.raises(
        RecordError, match=r"record 0, field 'completions\[0\].overall_score': missing"
    ):
        load_records([ultra])


# --- junk -------------------------------------------------------------------------------------------


def test_strict_load_raises_on_the_first_junk_record():
    path = LOADERS / "cut_junk.jsonl"
    with pytest.raises(RecordError) as caught:
        load_records(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, record 1 (line 2), field 'judgment': ")
    assert '"$ERROR$"' in message
    assert "2 more junk records (1 commendation, 1 judge_error" in message
    assert "lenient=True" in message and "fix/remove the record" in message


def test_lenient_load_skips_counts_and_warns_once():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records, report = load_records_with_report(LOADERS / "cut_junk.jsonl", lenient=True)
    assert [w.category for w in caught] == [JunkRecordWarning]
    assert "skipped 3 junk records (2 judge_error" in str(caught[0].message)
    assert caught[0].filename == __file__  # points at the caller
    assert [r.id for r in records] == ["j-0", "j-3", "j-5"]  # "almost perfect, but ..." stays
    assert report.skipped == {"judge_error": ["j-1", "j-4"], "commendation": ["j-2"]}
    assert (report.n_read, report.n_loaded, report.n_skipped) == (6, 3, 3)
    assert (report.n_negative_read, report.n_negative) == (5, 2)
    assert str(report) == (
        f"{LOADERS / 'cut_junk.jsonl'} (cut): 6 read, 3 loaded (1 positive, 2 negative), "
        "3 skipped: 2 judge_error, 1 commendation"
    )


def test_no_warning_without_junk():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_records(LOADERS / "cut_alpaca.json", lenient=True)


def test_negative_without_critique_is_junk():
    ultra = {
        "instruction": "I",
        "completions": [{"response": "R", "critique": "", "overall_score": 2}],
    }
    with pytest.raises(
        RecordError, match=r"field 'completions\[0\].critique': negative record without"
    ):
        load_records([ultra])
    with pytest.warns(JunkRecordWarning, match="1 no_critique"):
        assert load_records([ultra], lenient=True) == []
    uncritiqued = {**good_row(), "judgment": None, "is_positive": False}
    with pytest.warns(JunkRecordWarning):
        _, report = load_records_with_report([uncritiqued], lenient=True)
    assert report.skipped == {"no_critique": ["a"]}


# --- round trip -------------------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
_nonblank = _text.filter(str.strip)
_json_values = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | _text


@st.composite
def judgment_records(draw) -> JudgmentRecord:
    response = draw(_nonblank)
    spans = draw(
        st.lists(
            st.tuples(st.integers(0, len(response) - 1), st.integers(1, len(response))).filter(
                lambda span: span[0] < span[1]
            ),
            max_size=3,
        )
    )
    return JudgmentRecord(
        id=draw(_nonblank),
        instruction=draw(_nonblank),
        response=response,
        judgment=draw(st.none() | _text),
        input=draw(_text),
        is_positive=draw(st.none() | st.booleans()),
        score=draw(st.none() | st.floats(0, 10, allow_nan=False)),
        refinement=draw(st.none() | _text),
        error_spans=spans,
        meta=draw(st.dictionaries(_nonblank, _json_values, max_size=3)),
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(judgment_records(), max_size=5, unique_by=lambda r: r.id))
def test_to_dict_round_trips_through_load_records(tmp_path, records):
    assume(all(junk_reason(record) is None for record in records))
    rows = [record.to_dict() for record in records]
    assert load_records(rows) == records
    path = write_jsonl_rows(tmp_path / "round.jsonl", rows)
    assert load_records(path, format="cut") == records
    assert load_records(write_json(tmp_path / "round.json", rows), format="cut") == records


# --- the official CUT sample (../shared; skips when absent) ----------------------------------------


def test_official_sample_strict_load_names_the_junk(official_sample):
    with pytest.raises(RecordError) as caught:
        load_records(official_sample)
    message = str(caught.value)
    assert message.startswith(f"{official_sample}, record 33, field 'judgment': ")
    assert '"$ERROR$"' in message and "lenient=True" in message
    assert "60 more junk records (46 judge_error" in message and "14 commendation" in message


def test_official_sample_lenient_counts(official_sample):
    with pytest.warns(JunkRecordWarning, match="skipped 61 junk records"):
        records, report = load_records_with_report(official_sample, lenient=True)
    assert report.n_read == 1000
    assert report.n_negative_read == 287
    assert len(report.skipped["judge_error"]) == 47
    assert len(report.skipped["commendation"]) == 14
    assert len(records) == report.n_loaded == 1000 - 47 - 14
    assert report.n_positive + report.n_negative == report.n_loaded
    assert report.n_negative == 287 - 47 - 14
    assert all(junk_reason(record) is None for record in records)
    praised = [j for r in records if (j := r.judgment or "").startswith("The response is perfect")]
    assert len(praised) == 3  # kept: each also says "but" or "not" (see records.is_commendation)
    assert all(" but " in judgment or " not " in judgment for judgment in praised)


def test_module_docstring_example_runs():
    assert doctest.testmod(cutkit.data.loading).failed == 0


def test_load_records_always_returns_a_list_and_the_report_has_its_own_function():
    rows = [
        {"id": "a", "instruction": "2 + 2?", "output": "5", "judgment": "Wrong: it is 4."},
        {"id": "b", "instruction": "2 + 3?", "output": "5", "judgment": None},
    ]
    records = load_records(rows)
    assert type(records) is list and [r.id for r in records] == ["a", "b"]
    with pytest.raises(TypeError, match="report"):
        load_records(rows, report=True)  # the old flag that changed the return type
    same, report = load_records_with_report(rows)
    assert same == records and (report.n_loaded, report.n_negative) == (2, 1)
