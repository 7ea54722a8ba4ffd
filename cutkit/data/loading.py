"""Loaders: real judgment files and tables -> lists of :class:`~cutkit.data.records.JudgmentRecord`.

Formats (auto-detected from the first record's fields, or chosen with ``format=``):

- ``"cut"``: official CUT / Alpaca JSON(L) ``{id?, instruction, input?, output, judgment, score?,
  i_ans?}`` plus cutkit's own fields (``refinement``, ``error_spans``, ``is_positive``, ``meta``).
- ``"shepherd"``: Shepherd JSONL ``{question, answer, feedback}``, all negative; refinements come from
  the parallel raw file (``refinements=path``, ``metadata.output_correct``, matched line by line).
- ``"summarization"``: OpenAI summarization critiques JSONL; one record per question, built from its
  top-ranked answer.
- ``"ultrafeedback"``: ``{instruction, completions[{response, critique, overall_score}]}``; one record
  per completion, positive iff ``overall_score >= 7``.

Sources: a path to ``.json`` / ``.jsonl`` (optionally ``.gz``), a list of dicts, a pandas DataFrame or
a ``datasets.Dataset``. Malformed input raises one :class:`~cutkit.data.records.RecordError` naming the
file, record (and JSONL line), field and fix. Junk (see :data:`cutkit.data.records.JUNK_REASONS`) is never
loaded: the first junk record raises, unless ``lenient=True`` skips and counts it.

>>> rows = [{"id": "q1", "instruction": "Capital of Australia?", "output": "Sydney.",
...          "judgment": "Wrong: the capital is Canberra."},
...         {"id": "q2", "instruction": "2 + 2?", "output": "4", "judgment": None}]
>>> records, report = load_records_with_report(rows)
>>> [(r.id, r.is_positive) for r in records]
[('q1', False), ('q2', True)]
>>> print(report)
<list> (cut): 2 read, 2 loaded (1 positive, 1 negative), 0 skipped
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cutkit.data.formats import (
    CONVERTERS,
    ConvertedRows,
    LoadedRecord,
    resolve_format,
    shepherd_records,
)
from cutkit.data.records import JUNK_REASONS, JudgmentRecord, RecordError, junk_reason
from cutkit.data.sources import SourceContext, read_source_rows


class JunkRecordWarning(UserWarning):
    """Warned once by a lenient load that skipped junk records."""


@dataclass
class LoadReport:
    """What one load read, kept and skipped (:func:`load_records_with_report`).

    ``n_read == n_loaded + n_skipped``; ``skipped`` maps a reason (a key of
    :data:`cutkit.data.records.JUNK_REASONS`, or ``feedback_skip`` / ``empty_answer`` for summarization
    answers the labellers skipped or left empty) to the ids of the records it dropped.
    """

    source: str
    format: str
    n_read: int = 0
    n_loaded: int = 0
    n_positive: int = 0
    n_negative: int = 0
    n_negative_read: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)

    @property
    def n_skipped(self) -> int:
        return sum(len(ids) for ids in self.skipped.values())

    def __str__(self) -> str:
        text = (
            f"{self.source} ({self.format}): {self.n_read} read, {self.n_loaded} loaded "
            f"({self.n_positive} positive, {self.n_negative} negative), {self.n_skipped} skipped"
        )
        if self.skipped:
            text += ": " + ", ".join(f"{len(ids)} {why}" for why, ids in self.skipped.items())
        return text


def load_records(
    source: Any,
    *,
    format: str = "auto",
    lenient: bool = False,
    refinements: str | Path | None = None,
) -> list[JudgmentRecord]:
    """Load judgment records from a file, a list of dicts, a DataFrame or a ``datasets.Dataset``.

    Args:
        source: path (str or Path) to .json / .jsonl (.gz allowed), or in-memory rows.
        format: ``"auto"`` or one of :data:`FORMAT_FIELDS`.
        lenient: skip junk records (counted in the report, one :class:`JunkRecordWarning`) instead of
            raising on the first one.
        refinements: Shepherd only: the parallel raw JSONL holding ``metadata.output_correct``.

    Returns:
        the records; :func:`load_records_with_report` also says what was read and skipped.

    Raises:
        RecordError: malformed input, an unknown format, or (unless ``lenient``) a junk record.
    """
    records, _ = load_records_with_report(
        source, format=format, lenient=lenient, refinements=refinements
    )
    return records


def load_records_with_report(
    source: Any,
    *,
    format: str = "auto",
    lenient: bool = False,
    refinements: str | Path | None = None,
) -> tuple[list[JudgmentRecord], LoadReport]:
    """:func:`load_records` and a :class:`LoadReport` of what it read, kept and skipped."""
    rows, context = read_source_rows(source)
    chosen = resolve_format(rows, format, context)
    if refinements is not None and chosen != "shepherd":
        raise ValueError(f"refinements= is only for format='shepherd', not {chosen!r}")
    converted = ConvertedRows()
    if chosen == "shepherd":
        shepherd_records(rows, context, converted, refinements)
    else:
        CONVERTERS[chosen](rows, context, converted)
    return _keep_trainable(converted, chosen, context, lenient=lenient)


# --- junk and the report -----------------------------------------------------------------------


def _keep_trainable(
    converted: ConvertedRows, format: str, context: SourceContext, *, lenient: bool
) -> tuple[list[JudgmentRecord], LoadReport]:
    """Check ids, drop (lenient) or raise on junk, and count everything in a LoadReport."""
    _check_unique_ids(converted.loaded, context)
    reasons = [junk_reason(item.record) for item in converted.loaded]
    junk = [(item, why) for item, why in zip(converted.loaded, reasons, strict=True) if why]
    if junk and not lenient:
        raise _junk_error(junk, context)
    records = [item.record for item, why in zip(converted.loaded, reasons, strict=True) if not why]
    report = LoadReport(source=context.name, format=format, skipped=dict(converted.skipped))
    for item, why in junk:
        report.skipped.setdefault(why, []).append(item.record.id)
    report.n_read = len(converted.loaded) + sum(len(ids) for ids in converted.skipped.values())
    report.n_loaded = len(records)
    report.n_positive = sum(record.is_positive for record in records)
    report.n_negative = report.n_loaded - report.n_positive
    report.n_negative_read = sum(item.record.is_negative for item in converted.loaded)
    if junk:
        counts = Counter(why for _, why in junk)
        warnings.warn(
            f"{context.name}: skipped {len(junk)} junk records ({_count_text(counts)}); "
            "see LoadReport.skipped for their ids",
            JunkRecordWarning,
            stacklevel=3,
        )
    return records, report


def _check_unique_ids(loaded: list[LoadedRecord], context: SourceContext) -> None:
    first_seen: dict[str, int] = {}
    for item in loaded:
        earlier = first_seen.setdefault(item.record.id, item.index)
        if earlier != item.index:
            raise context.error(
                f"duplicate id {item.record.id!r} (also used by record {earlier})",
                index=item.index,
                field="id",
                fix="Give every record a unique id",
            )


def _junk_error(junk: list[tuple[LoadedRecord, str]], context: SourceContext) -> RecordError:
    item, why = junk[0]
    more = Counter(reason for _, reason in junk[1:])
    held = f"{len(junk) - 1} more junk records ({_count_text(more)})" if more else "no other junk"
    return context.error(
        f"{JUNK_REASONS[why]} (record id {item.record.id!r}); the source holds {held}",
        index=item.index,
        field=item.judgment_field,
        fix="Pass lenient=True to skip and count them, or fix/remove the record",
    )


def _count_text(counts: Counter[str]) -> str:
    labels = {"judge_error": 'judge_error "$ERROR$"'}
    return ", ".join(f"{n} {labels.get(why, why)}" for why, n in counts.most_common())
