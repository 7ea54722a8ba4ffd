"""Shared fixtures: the real SmolLM2 tokenizer (loaded once per session) and tiny random models.
Shared builders and paths are in helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.helpers")  # before its import: detailed assert messages

from .helpers import OFFICIAL_SAMPLE  # noqa: E402


@pytest.fixture(scope="session")
def tokenizer():
    """The real SmolLM2-135M-Instruct tokenizer (from the cutkit cache, built on first use)."""
    from cutkit.models.loading import load_tokenizer

    return load_tokenizer()


@pytest.fixture
def tiny():
    """A fresh tiny random Llama model at the real vocabulary size (about 0.4 M parameters)."""
    from cutkit.models.tiny import tiny_model

    return tiny_model()


@pytest.fixture
def official_sample() -> Path:
    """The official CUT online-round sample from ../shared (skips cleanly when it is absent)."""
    if not OFFICIAL_SAMPLE.exists():
        pytest.skip(f"{OFFICIAL_SAMPLE} is not present (it lives in ../shared beside the repo)")
    return OFFICIAL_SAMPLE


@pytest.fixture
def tiny_checkpoint(tmp_path, tokenizer) -> Path:
    """A tiny random model saved as a Hugging Face checkpoint folder with the real tokenizer."""
    from cutkit.models.tiny import tiny_model

    folder = tmp_path / "tiny-ckpt"
    tiny_model().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
