"""The online run directory: atomic JSON / JSONL files, round folders, weight fingerprints."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    """Write JSON to ``path`` atomically (temporary file + rename)."""
    _write_atomic(path, json.dumps(data, indent=1, default=str) + "\n")


def write_jsonl(path: Path, rows: Sequence[dict]) -> None:
    """Write one JSON object per line to ``path`` atomically."""
    _write_atomic(path, "".join(json.dumps(row, default=str) + "\n" for row in rows))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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
