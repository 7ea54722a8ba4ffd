"""Bad-input corpus, numeric settings and records: every numeric setting is checked when it is
constructed (finite, in range, with the reason), a non-finite score never routes a record, judge
errors in any case or with a suffix are junk, and a judged prompt never silently loses its
instruction to the context budget.

Each case is an input and either the fragment of the clear error it must raise or ``OK`` (it must
be accepted)."""

from __future__ import annotations

import math

import pytest
import torch

from cutkit.data.records import JudgmentRecord, RecordError, is_junk_judgment

OK = None
NAN, INF = math.nan, math.inf


def cut_config(**kwargs):
    from cutkit.train.config import CUTConfig

    return CUTConfig(output_dir="unused", report_to="none", **kwargs)


def train_settings(**kwargs):
    from cutkit.train.settings import TrainSettings

    return TrainSettings(**kwargs)


def levers(**kwargs):
    from cutkit.train.settings import CUTLevers

    return CUTLevers(**kwargs)


def model_settings(**kwargs):
    from cutkit.models.lora import ModelSettings

    return ModelSettings(**kwargs)


def loss(**kwargs):
    from cutkit.train.losses import cut_loss

    logp = torch.full((1, 3), -1.0)
    return cut_loss(
        logp, logp - 1, torch.ones(1, 3, dtype=torch.bool), torch.tensor([True]), **kwargs
    )


def record(**kwargs):
    return JudgmentRecord(**{"id": "r1", "instruction": "Q?", "response": "A.", **kwargs})


CASES = [
    # CUTConfig
    (
        "config-ul_weight-nan",
        cut_config,
        {"ul_weight": NAN},
        "ul_weight must be a finite number >= 0",
    ),
    (
        "config-ul_weight-inf",
        cut_config,
        {"ul_weight": INF},
        "ul_weight must be a finite number >= 0",
    ),
    (
        "config-ul_weight-negative",
        cut_config,
        {"ul_weight": -5.0},
        "ul_weight must be a finite number >= 0",
    ),
    ("config-ul_weight-zero", cut_config, {"ul_weight": 0.0}, OK),
    ("config-gamma-nan", cut_config, {"gamma": NAN}, "gamma must be a finite number >= 0"),
    ("config-gamma-negative", cut_config, {"gamma": -1.0}, "gamma must be a finite number >= 0"),
    ("config-gamma-inf", cut_config, {"gamma": INF}, "gamma must be a finite number >= 0"),
    ("config-gamma-half", cut_config, {"gamma": 0.5}, OK),
    (
        "config-threshold-inf",
        cut_config,
        {"threshold": INF},
        "threshold (lambda) must be a finite number >= 1",
    ),
    (
        "config-threshold-nan",
        cut_config,
        {"threshold": NAN},
        "threshold (lambda) must be a finite number >= 1",
    ),
    ("config-threshold-below-one", cut_config, {"threshold": 0.5}, "threshold (lambda) must be"),
    ("config-max_length-8", cut_config, {"max_length": 8}, "max_length must be an integer >= 64"),
    ("config-max_length-0", cut_config, {"max_length": 0}, "max_length must be an integer >= 64"),
    ("config-max_length-64", cut_config, {"max_length": 64}, OK),
    (
        "config-max_response_length-0",
        cut_config,
        {"max_response_length": 0},
        "max_response_length must be",
    ),
    (
        "config-max_response_length-too-long",
        cut_config,
        {"max_length": 64, "max_response_length": 64},
        "max_response_length must be",
    ),
    ("config-max_response_length-none", cut_config, {"max_response_length": None}, OK),
    (
        "config-align_p_ratio-negative",
        cut_config,
        {"align_p_ratio": -0.5},
        "align_p_ratio must be a finite number >= 0 or None",
    ),
    (
        "config-align_p_ratio-nan",
        cut_config,
        {"align_p_ratio": NAN},
        "align_p_ratio must be a finite number >= 0 or None",
    ),
    ("config-align_p_ratio-none", cut_config, {"align_p_ratio": None}, OK),
    (
        "config-learning_rate-nan",
        cut_config,
        {"learning_rate": NAN},
        "learning_rate must be a finite number > 0",
    ),
    (
        "config-learning_rate-negative",
        cut_config,
        {"learning_rate": -1e-4},
        "learning_rate must be a finite number > 0",
    ),
    (
        "config-warmup_steps-negative",
        cut_config,
        {"warmup_steps": -1},
        "warmup_steps must be a finite number >= 0",
    ),
    ("config-chunk_size-0", cut_config, {"chunk_size": 0}, "chunk_size must be an integer >= 1"),
    (
        "config-chunk_memory_mb-negative",
        cut_config,
        {"chunk_memory_mb": -128.0},
        "chunk_memory_mb must be a finite number > 0",
    ),
    (
        "config-epochs-nan",
        cut_config,
        {"num_train_epochs": NAN},
        "num_train_epochs must be a finite number",
    ),
    # TrainSettings / CUTLevers / ModelSettings
    (
        "settings-learning_rate-nan",
        train_settings,
        {"learning_rate": NAN},
        "learning_rate must be a finite number > 0",
    ),
    (
        "settings-learning_rate-zero",
        train_settings,
        {"learning_rate": 0.0},
        "learning_rate must be a finite number > 0",
    ),
    (
        "settings-learning_rate-inf",
        train_settings,
        {"learning_rate": INF},
        "learning_rate must be a finite number > 0",
    ),
    ("settings-epochs-zero", train_settings, {"epochs": 0.0}, "epochs must be a finite number > 0"),
    ("settings-epochs-inf", train_settings, {"epochs": INF}, "epochs must be a finite number > 0"),
    (
        "settings-batch_size-zero",
        train_settings,
        {"batch_size": 0},
        "batch_size must be an integer >= 1",
    ),
    (
        "settings-batch_size-fraction",
        train_settings,
        {"batch_size": 2.5},
        "batch_size must be an integer >= 1",
    ),
    (
        "settings-accumulation-zero",
        train_settings,
        {"gradient_accumulation_steps": 0},
        "gradient_accumulation_steps must be an integer >= 1",
    ),
    (
        "settings-warmup-negative",
        train_settings,
        {"warmup": -0.1},
        "warmup must be a finite number >= 0",
    ),
    ("settings-warmup-nan", train_settings, {"warmup": NAN}, "warmup must be a finite number >= 0"),
    (
        "settings-max_length-8",
        train_settings,
        {"max_length": 8},
        "max_length must be an integer >= 64",
    ),
    (
        "settings-threshold-inf",
        train_settings,
        {"threshold": INF},
        "threshold (lambda) must be a finite number >= 1",
    ),
    (
        "settings-align_p_ratio-inf",
        train_settings,
        {"align_p_ratio": INF},
        "align_p_ratio must be a finite number >= 0 or None",
    ),
    ("settings-lora_r-zero", train_settings, {"lora_r": 0}, "lora_r must be an integer >= 1"),
    ("settings-defaults", train_settings, {}, OK),
    ("levers-ul_weight-nan", levers, {"ul_weight": NAN}, "ul_weight must be a finite number >= 0"),
    (
        "levers-ul_weight-negative",
        levers,
        {"ul_weight": -5.0},
        "ul_weight must be a finite number >= 0",
    ),
    ("model-lora_r-negative", model_settings, {"lora_r": -3}, "lora_r must be an integer >= 0"),
    ("model-lora_r-fraction", model_settings, {"lora_r": 2.5}, "lora_r must be an integer >= 0"),
    ("model-lora_r-zero-full-fine-tuning", model_settings, {"lora_r": 0}, OK),
    (
        "model-lora_alpha-zero",
        model_settings,
        {"lora_alpha": 0},
        "lora_alpha must be a finite number > 0",
    ),
    (
        "model-lora_alpha-nan",
        model_settings,
        {"lora_alpha": NAN},
        "lora_alpha must be a finite number > 0",
    ),
    (
        "model-lora_dropout-one",
        model_settings,
        {"lora_dropout": 1.0},
        "lora_dropout must be a finite number in [0, 1)",
    ),
    (
        "model-lora_dropout-negative",
        model_settings,
        {"lora_dropout": -0.1},
        "lora_dropout must be a finite number in [0, 1)",
    ),
    (
        "model-lora_dropout-nan",
        model_settings,
        {"lora_dropout": NAN},
        "lora_dropout must be a finite number in [0, 1)",
    ),
    # cut_loss
    ("loss-ul_weight-nan", loss, {"ul_weight": NAN}, "ul_weight must be a finite number >= 0"),
    (
        "loss-ul_weight-negative",
        loss,
        {"ul_weight": -5.0},
        "ul_weight must be a finite number >= 0",
    ),
    ("loss-gamma-nan", loss, {"gamma": NAN}, "gamma must be a finite number >= 0"),
    ("loss-gamma-negative", loss, {"gamma": -2.0}, "gamma must be a finite number >= 0"),
    (
        "loss-threshold-inf",
        loss,
        {"threshold": INF},
        "threshold (lambda) must be a finite number >= 1",
    ),
    ("loss-defaults", loss, {}, OK),
    # records: scores
    ("record-score-inf", record, {"score": INF, "judgment": "Wrong."}, "score"),
    ("record-score-nan", record, {"score": NAN, "judgment": "Wrong."}, "score"),
    ("record-score-minus-inf", record, {"score": -INF, "judgment": "Wrong."}, "score"),
    ("record-score-eight", record, {"score": 8.0, "judgment": "Fine."}, OK),
]

JUNK = [
    ("$ERROR$", True),
    ("$error$", True),
    ("$Error$", True),
    ("$ERROR$: timeout", True),
    ("  $ERROR$ (rate limited)", True),
    ("The answer has an error: 2+2 is 4.", False),
    ("ERROR in step 2: the sum is wrong.", False),
]


@pytest.mark.parametrize(
    ("build", "kwargs", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_numeric_and_record_inputs(build, kwargs, expected):
    if expected is OK:
        build(**kwargs)
        return
    with pytest.raises(ValueError) as caught:
        build(**kwargs)
    assert expected in str(caught.value), str(caught.value)


@pytest.mark.parametrize(("judgment", "junk"), JUNK)
def test_judge_error_placeholders_are_junk_in_any_case(judgment, junk):
    assert is_junk_judgment(judgment) is junk


@pytest.mark.parametrize("score", ["Infinity", "-Infinity", "NaN"])
def test_a_non_finite_score_in_a_file_is_refused_with_its_place(tmp_path, score):
    path = tmp_path / "data.jsonl"
    path.write_text(
        f'{{"id": "x", "instruction": "Q?", "output": "A.", "judgment": "Wrong.", "score": {score}}}\n'
    )
    from cutkit.data.loading import load_records

    with pytest.raises(RecordError, match="score") as caught:
        load_records(path, format="cut")
    assert "finite" in str(caught.value)


BUDGET = [
    # (instruction, judgment, max_length, expected)
    ("What is 2+2?", "Wrong: it is 4.", 256, OK),
    ("What is 2+2?", "Wrong: it is 4.", 64, OK),
    ("word " * 300 + "What is 2+2?", "Wrong: it is 4.", 64, OK),  # a long instruction is cut
    ("What is 2+2?", "Wrong, " * 10 + "it is 4.", 64, "judged prompt needs"),
    ("What is 2+2?", "Wrong, " * 400 + "it is 4.", 256, "judged prompt needs"),
    ("word " * 300 + "What is 2+2?", "Wrong, " * 30 + "it is 4.", 64, "judged prompt needs"),
    ("What is 2+2?", "Wrong: it is 4.", 8, "identical"),
    ("What is 2+2?", "Wrong: it is 4.", 16, "judged prompt needs"),
]


@pytest.mark.parametrize(("instruction", "judgment", "max_length", "expected"), BUDGET)
def test_a_judged_prompt_never_silently_loses_its_instruction(
    tokenizer, instruction, judgment, max_length, expected
):
    from cutkit.train.batching import build_examples

    rec = JudgmentRecord("b", instruction, "It is 5.", judgment)
    if expected is OK:
        (example,), _ = build_examples([rec], tokenizer, max_length=max_length)
        judged = tokenizer.decode(example["judged_prompt_ids"])
        assert "What is 2+2?" in judged and "it is 4." in judged
        return
    with pytest.raises(RecordError) as caught:
        build_examples([rec], tokenizer, max_length=max_length)
    assert expected in str(caught.value) and "'b'" in str(caught.value)


def test_log1mexp_gradient_stays_bounded_near_p_one():
    from cutkit.train.losses import log1mexp

    x = torch.tensor([-1e-30, 0.0, -1e-12], dtype=torch.float64, requires_grad=True)
    log1mexp(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().max() <= 1e9


CLI = [
    (
        ["train", "--data", "x.jsonl", "--ul_weight", "nan"],
        "ul_weight must be a finite number >= 0",
    ),
    (["train", "--data", "x.jsonl", "--gamma", "nan"], "gamma must be a finite number >= 0"),
    (["train", "--data", "x.jsonl", "--ul_weight", "-5"], "ul_weight must be a finite number >= 0"),
    (["train", "--data", "x.jsonl", "--lora_r", "-3"], "lora_r must be an integer >= 0"),
    (["train", "--data", "x.jsonl", "--max_length", "8"], "max_length must be an integer >= 64"),
    (["train", "--data", "x.jsonl", "--learning_rate", "nan"], "learning_rate must be a finite"),
    (["demo", "--ul_weight", "-5"], "ul_weight must be a finite number >= 0"),
    (["demo", "--lr", "inf"], "learning_rate must be a finite number > 0"),
    (["compare", "--train", "a", "--test", "b", "--lora_dropout", "1"], "lora_dropout must be"),
    (["online", "--ul_weight", "nan"], "ul_weight must be a finite number >= 0"),
]


@pytest.mark.parametrize(
    ("argv", "message"), CLI, ids=[" ".join(a[::2][:1] + a[-2:]) for a, _ in CLI]
)
def test_every_command_refuses_a_bad_number_before_loading_anything(capsys, argv, message):
    from cutkit.cli import main

    assert main(argv) == 2  # a clear input error, before any data or model is read
    assert message in capsys.readouterr().err
