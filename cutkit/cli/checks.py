"""Checks every command runs before it loads a model or scores or trains anything, so that bad
input fails in a second with a message saying what is wrong, where, and what to do, and a failed
start leaves no empty run directory behind (the commands create their output only after these).

Each check raises :class:`CommandError` (a ValueError), which ``cutkit`` prints as one line
(:func:`cutkit.cli.main`)."""

from __future__ import annotations

import os
from pathlib import Path


class CommandError(ValueError):
    """Bad command-line input found before any work: the message says what, where and the fix."""


def check_output_path(path: str | os.PathLike, option: str = "--output", *, folder: bool) -> Path:
    """Refuse an output that cannot be written: ``path`` is a file where a folder is wanted (or a
    folder where a file is wanted), or its nearest existing parent is not a writable folder.
    Missing parent folders are fine (the command creates them when it writes). Returns the path."""
    path = Path(path).expanduser()
    if path.exists() and folder and not path.is_dir():
        raise CommandError(f"{option} {path} is a file, not a folder; choose a folder path")
    if path.exists() and not folder and path.is_dir():
        raise CommandError(f"{option} {path} is a folder; give a file path such as {path}/out.html")
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise CommandError(
            f"{option} {path} cannot be created: {parent} is a file, not a folder; choose "
            "another path"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CommandError(
            f"{option} {path} cannot be created: {parent} is not writable; choose another path"
        )
    return path


def check_template(name: str, option: str = "--template") -> None:
    """Refuse a template name :func:`cutkit.data.templates.get_template` does not know (whether
    the tokenizer has a chat template is checked when the model is loaded)."""
    from cutkit.data.templates import TEMPLATES

    if name not in TEMPLATES:
        raise CommandError(f"{option}: unknown template {name!r}; choose one of {TEMPLATES}")
