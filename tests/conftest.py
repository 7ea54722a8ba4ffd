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


def save_tiny_checkpoint(folder: Path, tokenizer) -> Path:
    """Save a tiny random model and the real tokenizer as a Hugging Face checkpoint ``folder``."""
    from cutkit.models.tiny import tiny_model

    tiny_model().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_checkpoint(tmp_path, tokenizer) -> Path:
    """A tiny random model checkpoint folder of this test's own (it may change it)."""
    return save_tiny_checkpoint(tmp_path / "tiny-ckpt", tokenizer)


@pytest.fixture(scope="session")
def shared_tiny_checkpoint(tmp_path_factory, tokenizer) -> Path:
    """One tiny random model checkpoint folder for the whole session: read it, never change it."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("shared") / "tiny-ckpt", tokenizer)
