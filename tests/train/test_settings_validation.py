"""Every numeric setting is checked when it is constructed: finite, in range, and the message names
the field, the value, the range and why (CUTConfig, TrainSettings, CUTLevers, ModelSettings and
the shared helper cutkit._checks.check_number)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cutkit._checks import MIN_CONTEXT, check_number
from cutkit.models.lora import ModelSettings
from cutkit.train.config import CUTConfig
from cutkit.train.settings import CUTLevers, TrainSettings

NAN, INF = math.nan, math.inf


def config(**kwargs) -> CUTConfig:
    return CUTConfig(output_dir="unused", report_to="none", **kwargs)


# ---------------------------------------------------------------------------------------------
# the helper


def test_check_number_returns_the_value_and_names_everything_in_its_error():
    assert check_number("x", 3, minimum=0) == 3.0 and isinstance(check_number("x", 3), float)
    assert check_number("n", 4.0, minimum=1, integer=True) == 4
    assert check_number("n", None, optional=True) is None
    assert check_number("x", np.float32(0.5), minimum=0, maximum=1) == 0.5
    assert check_number("x", torch.tensor(2.0), minimum=0) == 2.0
    assert check_number("n", "auto", minimum=1, words=("auto",)) == "auto"
    with pytest.raises(ValueError) as caught:
        check_number("lora_dropout", 1.0, minimum=0, maximum=1, max_open=True, why="a probability")
    assert str(caught.value) == (
        "lora_dropout must be a finite number in [0, 1), got 1.0: a probability"
    )


@pytest.mark.parametrize(
    ("value", "kwargs", "allowed"),
    [
        (NAN, {}, "a finite number"),
        (INF, {"minimum": 0}, "a finite number >= 0"),
        (-INF, {"maximum": 0}, "a finite number <= 0"),
        (0.0, {"minimum": 0, "min_open": True}, "a finite number > 0"),
        (2.5, {"minimum": 1, "integer": True}, "an integer >= 1"),
        (True, {}, "a finite number"),
        ("1e-3", {}, "a finite number"),
        (None, {"minimum": 0}, "a finite number >= 0"),
        ([1], {}, "a finite number"),
        (-1, {"minimum": 0, "optional": True}, "a finite number >= 0 or None"),
        ("big", {"minimum": 1, "words": ("auto",)}, "a finite number >= 1 or 'auto'"),
        (
            "big",
            {"words": ("auto",), "optional": True, "integer": True},
            "an integer, 'auto' or None",
        ),
    ],
)
def test_check_number_refuses(value, kwargs, allowed):
    with pytest.raises(ValueError) as caught:
        check_number("x", value, **kwargs)
    assert str(caught.value).startswith(f"x must be {allowed}, got ")


# ---------------------------------------------------------------------------------------------
# CUTConfig


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ul_weight": NAN}, "ul_weight must be a finite number >= 0, got nan: alpha weighs"),
        ({"ul_weight": -5.0}, "ul_weight must be a finite number >= 0, got -5.0"),
        ({"gamma": NAN}, "gamma must be a finite number >= 0, got nan: the dynamic weight"),
        ({"gamma": -0.5}, "gamma must be a finite number >= 0, got -0.5"),
        ({"max_length": 8}, "max_length must be an integer >= 64, got 8: the prompt templates"),
        ({"max_length": 100.5}, "max_length must be an integer >= 64"),
        ({"max_response_length": 2048}, "max_response_length must be an integer in [1, 2048)"),
        ({"max_response_length": 0}, "max_response_length must be an integer in [1, 2048)"),
        ({"align_p_ratio": -1.0}, "align_p_ratio must be a finite number >= 0 or None, got -1.0"),
        ({"align_p_ratio": INF}, "align_p_ratio must be a finite number >= 0 or None, got inf"),
        ({"learning_rate": 0.0}, "learning_rate must be a finite number > 0, got 0.0"),
        ({"learning_rate": NAN}, "learning_rate must be a finite number > 0, got nan"),
        ({"warmup_steps": -1}, "warmup_steps must be a finite number >= 0"),
        ({"num_train_epochs": 0}, "num_train_epochs must be a finite number > 0"),
        ({"num_train_epochs": INF}, "num_train_epochs must be a finite number > 0"),
        ({"per_device_train_batch_size": 0}, "per_device_train_batch_size must be an integer >= 1"),
        ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps must be an integer >= 1"),
        ({"chunk_size": 0}, "chunk_size must be an integer >= 1, 'auto' or None, got 0"),
        ({"chunk_size": 2.5}, "chunk_size must be an integer >= 1, 'auto' or None, got 2.5"),
        ({"chunk_size": "big"}, "chunk_size must be an integer >= 1, 'auto' or None, got 'big'"),
        ({"chunk_memory_mb": 0.0}, "chunk_memory_mb must be a finite number > 0, got 0.0: the"),
        ({"chunk_memory_mb": NAN}, "chunk_memory_mb must be a finite number > 0, got nan"),
        ({"chunk_memory_mb": INF}, "chunk_memory_mb must be a finite number > 0, got inf"),
        ({"threshold": INF}, "threshold (lambda) must be a finite number >= 1"),
    ],
)
def test_cut_config_refuses_bad_numbers_with_the_field_value_range_and_reason(kwargs, message):
    with pytest.raises(ValueError) as caught:
        config(**kwargs)
    assert message in str(caught.value)


def test_cut_config_accepts_the_edges():
    c = config(ul_weight=0.0, gamma=0.0, max_length=MIN_CONTEXT, max_response_length=63)
    assert (c.ul_weight, c.max_length) == (0.0, 64)
    config(align_p_ratio=None, warmup_steps=0, num_train_epochs=0, max_steps=5)  # steps rule


# ---------------------------------------------------------------------------------------------
# TrainSettings, CUTLevers, ModelSettings (every command's settings inherit them)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"learning_rate": NAN}, "learning_rate must be a finite number > 0, got nan"),
        ({"learning_rate": -1e-3}, "learning_rate must be a finite number > 0"),
        ({"epochs": 0.0}, "epochs must be a finite number > 0, got 0.0"),
        ({"epochs": NAN}, "epochs must be a finite number > 0"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        (
            {"gradient_accumulation_steps": -1},
            "gradient_accumulation_steps must be an integer >= 1",
        ),
        ({"warmup": -0.5}, "warmup must be a finite number >= 0"),
        ({"max_length": 32}, "max_length must be an integer >= 64, got 32"),
        ({"threshold": 0.9}, "threshold (lambda) must be a finite number >= 1"),
        ({"align_p_ratio": NAN}, "align_p_ratio must be a finite number >= 0 or None"),
        ({"lora_r": 0}, "lora_r must be an integer >= 1, got 0: these settings train a fresh LoRA"),
        ({"lora_r": -3}, "lora_r must be an integer >= 0, got -3"),  # ModelSettings' rule first
        ({"lora_dropout": 1.5}, "lora_dropout must be a finite number in [0, 1), got 1.5"),
    ],
)
def test_train_settings_refuse_bad_numbers(kwargs, message):
    with pytest.raises(ValueError) as caught:
        TrainSettings(**kwargs)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lora_r": -3}, "lora_r must be an integer >= 0, got -3: the LoRA rank"),
        ({"lora_r": 2.5}, "lora_r must be an integer >= 0, got 2.5"),
        ({"lora_alpha": 0}, "lora_alpha must be a finite number > 0, got 0"),
        ({"lora_alpha": INF}, "lora_alpha must be a finite number > 0, got inf"),
        ({"lora_dropout": 1.0}, "lora_dropout must be a finite number in [0, 1), got 1.0"),
        ({"lora_dropout": NAN}, "lora_dropout must be a finite number in [0, 1), got nan"),
    ],
)
def test_model_settings_refuse_bad_numbers(kwargs, message):
    with pytest.raises(ValueError) as caught:
        ModelSettings(**kwargs)
    assert message in str(caught.value)


def test_model_settings_allow_rank_zero_for_full_fine_tuning():
    assert ModelSettings(lora_r=0).lora_r == 0


@pytest.mark.parametrize("ul_weight", [NAN, -5.0, INF])
def test_levers_refuse_a_bad_ul_weight(ul_weight):
    with pytest.raises(ValueError, match="ul_weight must be a finite number >= 0"):
        CUTLevers(ul_weight=ul_weight)


def test_levers_beside_train_settings_check_both():
    """A class inheriting both (the demo's and online settings) runs both checks."""
    from dataclasses import dataclass

    @dataclass
    class Both(CUTLevers, TrainSettings):
        pass

    Both()
    with pytest.raises(ValueError, match="learning_rate"):
        Both(learning_rate=NAN)
    with pytest.raises(ValueError, match="ul_weight"):
        Both(ul_weight=NAN)
    with pytest.raises(ValueError, match="lora_dropout"):
        Both(lora_dropout=-1.0)
