"""Paths of the judgment data bundled with cutkit (the repository's ``data/`` folder).

In a wheel the folder is installed as ``cutkit/_bundled_data``; in a source checkout (editable
install) it is ``data/`` beside the package.

>>> bundled_data_path("starter/train.jsonl").name
'train.jsonl'
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]


def bundled_data_root() -> Path:
    """The folder holding cutkit's bundled data."""
    for candidate in (_PACKAGE / "_bundled_data", _PACKAGE.parent / "data"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        "cutkit's bundled data folder is missing (looked for cutkit/_bundled_data and ../data); "
        "reinstall cutkit or run from a source checkout"
    )


def bundled_data_path(relative: str) -> Path:
    """Path of a bundled data file, e.g. ``bundled_data_path("starter/train.jsonl")``."""
    path = bundled_data_root() / relative
    if not path.exists():
        available = sorted(
            p.relative_to(bundled_data_root()).as_posix()
            for p in bundled_data_root().rglob("*.json*")
        )
        raise FileNotFoundError(f"no bundled data file {relative!r}; available: {available}")
    return path


def load_bundled_or_path(name: str | Path, **load_kwargs):
    """Records of a file path, or of a bundled file (``"judgments/test.jsonl"``) when no such path
    exists; ``load_kwargs`` go to :func:`cutkit.load_records`."""
    from cutkit.data.loading import load_records

    path = Path(name)
    return load_records(path if path.exists() else bundled_data_path(str(name)), **load_kwargs)
