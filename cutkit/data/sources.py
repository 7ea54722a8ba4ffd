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

from cutkit.data.records import RecordError


@dataclass
class _Context:
    """Where rows came from, so errors can say file, record and JSONL line."""

    name: str
    lines: list[int] | None = None  # 1-based line of each row in a JSONL file

    def error(
        self, problem: str, *, index: int | None = None, field: str | None = None, fix: str = ""
    ) -> RecordError:
        line = self.lines[index] if self.lines is not None and index is not None else None
        return RecordError(problem, source=self.name, index=index, field=field, fix=fix, line=line)


def _read_rows(source: Any) -> tuple[list[Any], _Context]:
    if isinstance(source, str | Path):
        return _read_file(Path(source).expanduser())
    if hasattr(source, "columns") and hasattr(source, "to_dict"):  # pandas.DataFrame
        rows = [{k: _nan_to_none(v) for k, v in row.items()} for row in source.to_dict("records")]
        return rows, _Context("<DataFrame>")
    if callable(getattr(source, "to_list", None)):  # datasets.Dataset
        return list(source.to_list()), _Context(f"<{type(source).__name__}>")
    if isinstance(source, Iterable) and not isinstance(source, Mapping | bytes):
        return list(source), _Context("<list>")
    raise RecordError(
        f"cannot load records from a {type(source).__name__}",
        source=f"<{type(source).__name__}>",
        fix="Pass a path to a .json/.jsonl file, a list of dicts, a pandas DataFrame or a "
        "datasets.Dataset",
    )


def _read_file(path: Path) -> tuple[list[Any], _Context]:
    context = _Context(str(path))
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


def _read_bytes(path: Path, context: _Context) -> bytes:
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


def _decode(raw: bytes, context: _Context) -> str:
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


def _parse_json(text: str, context: _Context) -> list[Any]:
    try:
        data = json.loads(text)
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
    return data


def _parse_jsonl(text: str, context: _Context) -> list[Any]:
    rows: list[Any] = []
    context.lines = []
    # split on "\n" only: str.splitlines() would also split at U+2028, which JSON strings may hold
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise RecordError(
                f"invalid JSON at line {number}, column {err.colno}: {err.msg}",
                source=context.name,
                index=len(rows),
                line=number,
                fix="Each line of a .jsonl file must be one complete JSON object",
            ) from err
        context.lines.append(number)
    return rows


def _nan_to_none(value: Any) -> Any:
    """DataFrames store missing values as NaN; records want None."""
    return None if isinstance(value, float) and math.isnan(value) else value
