"""The online run directory: atomic JSON / JSONL files, round folders, weight fingerprints."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cutkit.data.atomic_write import write_json_atomic, write_text_atomic


def write_json(path: Path, data: Any) -> None:
    """Write JSON to ``path`` atomically (:func:`cutkit.data.atomic_write.write_json_atomic`)."""
    write_json_atomic(path, data)


def write_jsonl(path: Path, rows: Sequence[dict]) -> None:
    """Write one JSON object per line to ``path`` atomically."""
    write_text_atomic(path, "".join(json.dumps(row, default=str) + "\n" for row in rows))


def read_json(path: Path, *, fix: str) -> Any:
    """The JSON in ``path``; a file that does not parse (cut short by a crash, edited by hand) is a
    ValueError naming it, where it breaks and ``fix`` (what to do)."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is damaged (not valid JSON: {error}); {fix}") from error


def read_jsonl(path: Path, *, fix: str = "delete the file or the run directory") -> list[dict]:
    """The JSON objects of ``path``, one per non-empty line; a damaged line is a ValueError
    naming the file, the line and ``fix``."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path} is damaged (line {number} is not valid JSON: {error}); {fix}"
            ) from error
    return rows


def round_dir(run_dir: Path, r: int) -> Path:
    return Path(run_dir) / f"round-{r:02d}"


def weights_fingerprint(model) -> str:
    """SHA-256 of every parameter and buffer's bytes, in name order (16 hex digits)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(dtype=_u8()).numpy())
    return digest.hexdigest()[:16]


def _u8():
    import torch

    return torch.uint8
