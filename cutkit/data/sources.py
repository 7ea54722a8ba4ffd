"""Reading judgment sources: files (.json / .jsonl, optionally .gz), lists of dicts,
DataFrames and ``datasets.Dataset`` objects, into raw rows with a context for error messages.
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cutkit.data.records import JudgmentRecord, RecordError


@dataclass
class SourceContext:
    """Where rows came from, so errors can say file, record and JSONL line."""

    name: str
    lines: list[int] | None = None  # 1-based line of each row in a JSONL file

    def error(
        self, problem: str, *, index: int | None = None, field: str | None = None, fix: str = ""
    ) -> RecordError:
        line = self.lines[index] if self.lines is not None and index is not None else None
        return RecordError(problem, source=self.name, index=index, field=field, fix=fix, line=line)


def read_source_rows(source: Any) -> tuple[list[Any], SourceContext]:
    """The rows of any source ``load_records`` takes (a path, a DataFrame, a datasets.Dataset or a
    list of dicts) and the :class:`SourceContext` its errors name."""
    if isinstance(source, str | Path):
        return read_source_file(Path(source).expanduser())
    if hasattr(source, "columns") and hasattr(source, "to_dict"):  # pandas.DataFrame
        rows = [{k: _nan_to_none(v) for k, v in row.items()} for row in source.to_dict("records")]
        context = SourceContext("<DataFrame>")
        _check_frame_ids(rows, context)
        return rows, context
    if callable(getattr(source, "to_list", None)):  # datasets.Dataset
        return list(source.to_list()), SourceContext(f"<{type(source).__name__}>")
    if isinstance(source, Iterable) and not isinstance(source, Mapping | bytes | str):
        # records already built (e.g. a filtered list) load as their dict form: checked again
        rows = [row.to_dict() if isinstance(row, JudgmentRecord) else row for row in source]
        return rows, SourceContext("<list>")
    raise RecordError(
        f"cannot load records from a {type(source).__name__}",
        source=f"<{type(source).__name__}>",
        fix="Pass a path to a .json/.jsonl file, a list of dicts, a pandas DataFrame or a "
        "datasets.Dataset",
    )


def read_source_file(path: Path) -> tuple[list[Any], SourceContext]:
    """The rows of a .json / .jsonl file and the :class:`SourceContext` naming it; a missing file,
    a folder or text that does not parse is a located error."""
    context = SourceContext(str(path))
    if not path.is_file():
        problem = "is a directory, not a file" if path.is_dir() else "file does not exist"
        raise context.error(problem, fix=f"Check the path {str(path)!r} (cwd is {Path.cwd()})")
    name = path.name.lower().removesuffix(".gz")
    if not name.endswith((".json", ".jsonl")):
        raise context.error(
            f"unsupported file type {path.suffix!r}",
            fix="Give a .json or .jsonl file (.gz allowed)",
        )
    text = _decode(_read_bytes(path, context), context)
    if name.endswith(".jsonl"):
        return _parse_jsonl(text, context), context
    return _parse_json(text, context), context


def _read_bytes(path: Path, context: SourceContext) -> bytes:
    """The file's bytes, a ``.gz`` file's decompressed; a damaged archive or an unreadable file
    is a RecordError naming the file."""
    if path.suffix.lower() != ".gz":
        try:
            return path.read_bytes()
        except OSError as err:
            raise context.error(
                f"cannot read the file ({err})", fix="Check its permissions"
            ) from err
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        detail = str(err) or type(err).__name__
        if isinstance(err, EOFError):
            detail = "it ends before the end of the compressed data: truncated"
        raise context.error(
            f"damaged gzip archive ({detail})",
            fix="Re-download or re-create the file (`gzip -t FILE` tests an archive); a file "
            "that is not gzip-compressed must not end in .gz",
        ) from err
    except OSError as err:
        raise context.error(f"cannot read the file ({err})", fix="Check its permissions") from err


def _decode(raw: bytes, context: SourceContext) -> str:
    """UTF-8 text (a leading byte-order mark dropped); invalid bytes are a RecordError saying
    where."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        start = err.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        line = raw.count(b"\n", 0, start) + 1
        raise context.error(
            f"not UTF-8 text ({err.reason}: byte {raw[start : start + 1]!r} at offset {start}, "
            f"line {line})",
            fix="Re-save the file as UTF-8",
        ) from err


def _parse_json(text: str, context: SourceContext) -> list[Any]:
    duplicated: list[_DuplicateKeys] = []
    try:
        data = json.loads(text, object_pairs_hook=_pairs_hook(duplicated))
    except json.JSONDecodeError as err:
        raise context.error(
            f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}",
            fix="Fix the JSON syntax (one object per line belongs in a .jsonl file)",
        ) from err
    if isinstance(data, dict):
        lists = [key for key, value in data.items() if isinstance(value, list)]
        if len(lists) != 1:
            raise context.error(
                f"top-level object holds {len(lists)} lists (keys {sorted(data)}), not exactly one",
                fix="Store the records as a top-level JSON list",
            )
        data = data[lists[0]]
    if not isinstance(data, list):
        raise context.error(
            f"top level is a JSON {type(data).__name__}, not a list of records",
            fix="Store the records as a top-level JSON list",
        )
    if duplicated:
        _refuse_duplicate_keys(data, context)
    return data


def _parse_jsonl(text: str, context: SourceContext) -> list[Any]:
    rows: list[Any] = []
    context.lines = []
    # split on "\n" only: str.splitlines() would also split at U+2028, which JSON strings may hold
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        duplicated: list[_DuplicateKeys] = []
        try:
            rows.append(json.loads(line, object_pairs_hook=_pairs_hook(duplicated)))
        except json.JSONDecodeError as err:
            raise RecordError(
                f"invalid JSON at line {number}, column {err.colno}: {err.msg}",
                source=context.name,
                index=len(rows),
                line=number,
                fix="Each line of a .jsonl file must be one complete JSON object",
            ) from err
        context.lines.append(number)
        if duplicated:
            _refuse_duplicate_keys(rows, context, first=len(rows) - 1)
    return rows


class _DuplicateKeys(dict):
    """A JSON object that named a key twice; ``keys_named_twice`` lists them."""

    keys_named_twice: list[str]


def _pairs_hook(found: list[_DuplicateKeys]):
    """A ``json.loads`` object hook that builds dicts and notes the objects with a repeated key
    (JSON keeps the last value silently: ``"judgment": "wrong", "judgment": null`` would load
    as a positive)."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        marked = _DuplicateKeys(obj)
        seen: set[str] = set()
        marked.keys_named_twice = [k for k, _ in pairs if k in seen or seen.add(k)]
        found.append(marked)
        return marked

    return hook


def _refuse_duplicate_keys(rows: list[Any], context: SourceContext, first: int = 0) -> None:
    """RecordError at the first of ``rows`` (from index ``first``) holding an object with a
    repeated key, naming the record and the key (its path inside the record)."""
    for index in range(first, len(rows)):
        found = _find_duplicate(rows[index], "")
        if found is not None:
            path, key = found
            raise context.error(
                f"the key {key!r} appears more than once in one object (JSON keeps only the last "
                "value, silently)",
                index=index,
                field=path + key,
                fix="Keep one value per key: remove or rename the repeated one",
            )
    raise context.error(  # pragma: no cover - a repeated key outside every record
        "a key appears more than once in one object",
        fix="Keep one value per key: remove or rename the repeated one",
    )


def _find_duplicate(value: Any, path: str) -> tuple[str, str] | None:
    if isinstance(value, _DuplicateKeys):
        return path, value.keys_named_twice[0]
    if isinstance(value, dict):
        for key, item in value.items():
            found = _find_duplicate(item, f"{path}{key}.")
            if found is not None:
                return found
    elif isinstance(value, list):
        for k, item in enumerate(value):
            found = _find_duplicate(item, f"{path.removesuffix('.')}[{k}].")
            if found is not None:
                return found
    return None


def _check_frame_ids(rows: list[dict[str, Any]], context: SourceContext) -> None:
    """A DataFrame's ``id`` column: whole-number floats become ints again (pandas stores an
    integer column with a missing value as floats: ``3.0`` -> 3), and when some rows have an id,
    the first row without one is refused by name (a default id could collide with the others)."""
    ids = [row.get("id") for row in rows]
    floats = [v for v in ids if isinstance(v, float)]
    if floats and all(v.is_integer() for v in floats):
        for row in rows:
            if isinstance(row.get("id"), float):
                row["id"] = int(row["id"])
    missing = [index for index, value in enumerate(ids) if value is None]
    if missing and len(missing) < len(rows):
        made_float = " (pandas stores such an integer column as floats)" if floats else ""
        raise context.error(
            f"has no id while {len(rows) - len(missing)} other rows have one{made_float}",
            index=missing[0],
            field="id",
            fix="Give every row an id, or drop the id column",
        )


def _nan_to_none(value: Any) -> Any:
    """DataFrames store missing values as NaN; records want None."""
    return None if isinstance(value, float) and math.isnan(value) else value
