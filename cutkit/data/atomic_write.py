"""The one atomic file writer of cutkit: every JSON (and JSONL) file a run leaves behind, whose
half-written copy would be read back as damaged, goes through :func:`write_text_atomic`.

The text goes to a hidden temporary file beside the target (``.name.tmp-<pid>``), is flushed and
fsynced, and is then renamed over the target (``os.replace``, atomic on POSIX and Windows): a
reader sees the old file or the new one, never a part, even after a power cut.

It lives in the lowest layer (data) so that every layer may call it: the model cache's manifest
(models), the run directory's owner file and checkpoint manifest (train), the comparison settings
(eval), the online run directory (online) and the demo's figures (cli).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a fsynced temporary file renamed into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as JSON (``indent=1``, anything else as its ``str``, a final newline) to
    ``path`` atomically (:func:`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(data, indent=1, default=str) + "\n")
