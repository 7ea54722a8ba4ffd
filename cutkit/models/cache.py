"""The GGUF conversion cache: a GGUF is dequantised once into a safetensors checkpoint under
``$CUTKIT_CACHE`` (default ``~/.cache/cutkit``), written into a staging folder and renamed into
place, with a manifest that detects damaged entries.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from cutkit.data.atomic_write import write_text_atomic

logger = logging.getLogger(__name__)

MANIFEST = "cutkit-cache.json"
CACHE_FORMAT = 1
"""Bump when the layout of a cache entry changes; older entries are then rebuilt."""


def cache_root() -> Path:
    """``$CUTKIT_CACHE`` if set, else ``~/.cache/cutkit``."""
    return Path(os.environ.get("CUTKIT_CACHE") or Path.home() / ".cache" / "cutkit").expanduser()


def cache_entry_is_valid(folder: Path) -> bool:
    """True when ``folder`` holds a complete conversion: manifest present, every file the size it
    records, and the safetensors headers readable."""
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != CACHE_FORMAT:
            return False
        for rel, size in manifest["files"].items():
            if (folder / rel).stat().st_size != size:
                return False
        from safetensors import safe_open

        for rel in manifest["files"]:
            if rel.endswith(".safetensors"):
                with safe_open(str(folder / rel), framework="pt") as handle:
                    handle.keys()
        return True
    except Exception:  # any damage (missing file, bad JSON, truncated header) means "rebuild"
        return False


def ensure_converted(gguf_path: Path, target: Path) -> Path:
    """Convert ``gguf_path`` to a safetensors checkpoint at ``target`` unless a valid one is there.

    The conversion is written into a temporary sibling folder and renamed into place, so readers
    only ever see complete entries. A damaged entry is removed and rebuilt.
    """
    if cache_entry_is_valid(target):
        return target
    if target.exists():
        logger.warning("cutkit cache entry %s is incomplete or damaged; rebuilding it", target)
        shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        _convert_gguf(gguf_path, staging)
        staging.chmod(0o755)  # mkdtemp makes it private; a cache may be shared
        try:
            staging.rename(target)
        except OSError:  # another process finished first
            if not cache_entry_is_valid(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


STAGING_MAX_AGE_S = 3600.0
"""A staging folder untouched this long belongs to a conversion that was killed; it is removed."""


def _remove_abandoned_staging(target: Path) -> None:
    import time

    for staging in target.parent.glob(f".{target.name}.partial-*"):
        if time.time() - staging.stat().st_mtime > STAGING_MAX_AGE_S:
            shutil.rmtree(staging, ignore_errors=True)


def _convert_gguf(gguf_path: Path, out: Path) -> None:
    """Dequantise a GGUF model + tokenizer into ``out`` (safetensors) and write the manifest."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.warning(
        "converting %s to safetensors once (about 20-30 s); later loads use %s",
        gguf_path.name,
        out.parent,
    )
    folder, filename = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename)
    # transformers refuses save_pretrained on a GGUF-loaded (quantizer-tagged) model; the weights
    # are already dequantised, so drop the tag.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    files = {
        p.relative_to(out).as_posix(): p.stat().st_size
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }
    manifest = {"format": CACHE_FORMAT, "source": str(gguf_path), "files": files}
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1))
