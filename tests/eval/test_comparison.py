"""compare(): every objective from the same start and budget, tidy results, resume, summaries."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import cutkit.eval.comparison as compare_module
from cutkit.data.records import JudgmentRecord
from cutkit.eval.comparison import (
    CompareSettings,
    compare,
    save_comparison,
    summarize,
    summary_markdown,
)

TRAIN = [
    JudgmentRecord(
        f"n{k}",
        f"What is {k} + {k}?",
        f"{k} + {k} = {2 * k + 1}.",
        f"Wrong sum: {k} + {k} = {2 * k}.",
        refinement=f"{k} + {k} = {2 * k}.",
        error_spans=[(len(f"{k} + {k} = "), len(f"{k} + {k} = {2 * k + 1}"))],
    )
    for k in range(1, 5)
] + [JudgmentRecord(f"p{k}", f"Say hello {k} times.", "hello " * k) for k in range(1, 3)]
TEST = [
    JudgmentRecord(
        "t1",
        "What is 6 + 6?",
        "6 + 6 = 13.",
        "Wrong sum: 12.",
        refinement="6 + 6 = 12.",
        error_spans=[(8, 10)],
        meta={"answer": "12"},
    ),
    JudgmentRecord("t2", "Say hello.", "hello", meta={"answer": "hello"}),
]


@pytest.fixture
def settings(tiny_checkpoint, tmp_path) -> CompareSettings:
    return CompareSettings(
        model=str(tiny_checkpoint),
        template="alpaca",
        steps=2,
        batch_size=2,
        max_length=128,  # the judged prompt must fit whole beside the response
        max_new_tokens=4,
        align_p_ratio=None,
        output=str(tmp_path / "compare"),
    )


def test_compare_trains_every_objective_and_seed_from_the_same_start(settings):
    frame = compare(["sft", "cut", "ul_all"], TRAIN, TEST, seeds=[0, 1], settings=settings)
    assert frame[["objective", "seed"]].values.tolist() == [
        ["base", -1],
        *[[o, s] for s in (0, 1) for o in ("sft", "cut", "ul_all")],
    ]
    assert (frame["steps"] == [0] + [2] * 6).all()
    assert frame["n_checkable"].eq(2).all() and frame["gen_accuracy"].between(0, 1).all()
    trained = frame[frame["objective"] != "base"]
    assert (trained["train_seconds"] > 0).all()
    base = frame.iloc[0]
    assert (trained["pref_margin"] != base["pref_margin"]).all(), "every run moved the model"
    cut = trained.set_index(["objective", "seed"])["pref_margin"]
    assert cut[("cut", 0)] != cut[("cut", 1)], "the seed changes the run"
    saved = pd.read_csv(f"{settings.output}/runs.csv")
    assert (
        saved[["objective", "seed"]].values.tolist() == frame[["objective", "seed"]].values.tolist()
    )
    assert json.loads(Path(settings.output, "settings.json").read_text())["steps"] == 2


def test_same_seed_same_result_and_resume_skips_finished_runs(settings, tmp_path, monkeypatch):
    first = compare(["cut"], TRAIN, TEST, seeds=[3], settings=settings, verbose=False)
    again = compare(
        ["cut"], TRAIN, TEST, seeds=[3], settings=settings, output=str(tmp_path / "again")
    )
    pd.testing.assert_frame_equal(
        first.drop(columns="train_seconds"), again.drop(columns="train_seconds")
    )

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(compare_module, "train_arm", no_training)
    resumed = compare(["cut"], TRAIN, TEST, seeds=[3], settings=settings)
    pd.testing.assert_frame_equal(resumed, first, check_dtype=False)
    with pytest.raises(AssertionError, match="trained again"):  # a changed budget starts afresh
        compare(["cut"], TRAIN, TEST, seeds=[3], settings=settings, steps=3)


def test_dpo_runs_through_trl_with_the_same_budget(settings):
    pytest.importorskip("trl")
    frame = compare(["dpo"], TRAIN, TEST, seeds=[0], settings=settings, verbose=False)
    assert frame["objective"].tolist() == ["base", "dpo"] and frame["steps"].tolist() == [0, 2]
    assert frame.loc[1, "pref_margin"] != frame.loc[0, "pref_margin"]


def test_kto_and_self_distill_train_with_the_same_budget(settings):
    frame = compare(["kto", "self_distill"], TRAIN, TEST, seeds=[0], settings=settings)
    assert frame["objective"].tolist() == ["base", "kto", "self_distill"]
    assert frame["steps"].tolist() == [0, 2, 2]
    base = frame.iloc[0]
    for row in (1, 2):
        assert frame.loc[row, "pref_margin"] != base["pref_margin"], "the run moved the model"


def test_unknown_objectives_are_refused_before_any_work(settings):
    with pytest.raises(ValueError, match=r"unknown objective 'ppo'.*'dpo'"):
        compare(["cut", "ppo"], TRAIN, TEST, settings=settings)


def test_records_no_arm_can_use_are_refused_before_any_work(tmp_path, monkeypatch):
    """An empty test or training set, and training records an arm cannot train on, fail before
    the model loads and before the output folder is made (not after every run has trained)."""

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the records were checked")

    monkeypatch.setattr(compare_module, "load_model", no_model)
    settings = CompareSettings(model="unused", steps=1, output=str(tmp_path / "out"))
    positives = [r for r in TRAIN if r.is_positive]
    unrefined = [JudgmentRecord("n", "Q?", "A.", "Wrong.")]
    cases = [
        (["cut"], TRAIN, [], r"test \(held-out\) records are empty"),
        (["cut"], [], TEST, r"arm 'cut'.*holds no trainable records"),
        (["sft", "cut"], positives, TEST, r"arm 'cut'.*none of the 2 records is negative"),
        (["sft"], [r for r in TRAIN if r.is_negative], TEST, r"'sft'.*none of the 4.*positive"),
        (["ilf"], unrefined, TEST, r"arm 'ilf'.*record 0.*'refinement'"),
        (["dpo"], unrefined, TEST, r"arm 'dpo'.*record 0.*'refinement'"),
        (["kto"], [r for r in TRAIN if r.is_negative], TEST, r"'kto'.*none of the 4.*positive"),
        (["self_distill"], positives, TEST, r"'self_distill'.*none of the 2.*negative"),
        (["forward:align_p_ratio=0.25"], positives, TEST, r"align_p_ratio=0.25.*negative"),
    ]
    for objectives, train, test, message in cases:
        with pytest.raises(ValueError, match=message):
            compare(objectives, train, test, settings=settings)
        assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        CompareSettings(steps=0)
    with pytest.raises(ValueError, match="kto_beta"):
        CompareSettings(kto_beta=0)


def test_arms_carry_cut_settings_and_typos_fail_before_training():
    from cutkit.eval.comparison import parse_arm

    assert parse_arm("cut") == ("cut", {})
    assert parse_arm("cut:detector=spans, unflagged=ignore,align_n=false,threshold=1.5") == (
        "cut",
        {"detector": "spans", "unflagged": "ignore", "align_n": False, "threshold": 1.5},
    )
    for bad, message in [
        ("cot", "unknown objective"),
        ("cut:unflaged=ignore", "not CUTConfig fields"),
        ("cut:unflagged=drop", "unflagged"),
        ("cut:align_n", "key=value"),
        ("dpo:threshold=2", "DPO"),
        ("kto:threshold=2", "KTO"),
        ("self_distill:distill_temperature=0", "distill_temperature"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_arm(bad)


def test_budget_defaults_to_epochs_over_the_training_records():
    assert CompareSettings(epochs=1, batch_size=8).budget(356) == 45
    assert CompareSettings(epochs=0.5, batch_size=4).budget(10) == 2
    assert CompareSettings(steps=7).budget(356) == 7
    assert CompareSettings(batch_size=4, gradient_accumulation_steps=2).budget(356) == 45


def test_lora_alpha_is_its_own_setting():
    config = CompareSettings(lora_r=4).lora_config()
    assert (config.r, config.lora_alpha, config.lora_dropout) == (4, 16, 0.05)
    assert CompareSettings(lora_r=4, lora_alpha=8).lora_config().lora_alpha == 8


def test_summaries_give_mean_and_spread_per_objective(tmp_path):
    frame = pd.DataFrame(
        {
            "objective": ["base", "cut", "cut", "sft", "sft"],
            "seed": [-1, 0, 1, 0, 1],
            "train_seconds": [0.0, 10.0, 12.0, 5.0, 7.0],
            "pref_accuracy": [0.5, 0.6, 0.8, 0.5, 0.5],
            "gen_accuracy": [0.2, 0.3, 0.3, 0.1, 0.3],
        }
    )
    table = summarize(frame)
    assert table.index.tolist() == ["base", "cut", "sft"]
    assert table.loc["cut", ("pref_accuracy", "mean")] == pytest.approx(0.7)
    assert table.loc["cut", ("pref_accuracy", "std")] == pytest.approx(0.1414, abs=1e-4)
    assert table.loc["sft", ("seeds", "")] == 2
    assert table.loc["sft", ("train_seconds", "mean")] == 6.0
    # 95% t interval over 2 seeds: 0.7 +- 12.706 * 0.1414 / sqrt(2)
    assert table.loc["cut", ("pref_accuracy", "low")] == pytest.approx(0.7 - 1.2706, abs=1e-3)
    markdown = summary_markdown(frame)
    assert "| cut | 2 | 11 | 0.700 [-0.571, 1.971] (tie) | 0.300 [0.300, 0.300] |" in markdown
    assert "| base | 1 | 0 | 0.500 | 0.200 |" in markdown
    assert "seeds [0, 1]" in markdown and "95% interval" in markdown
    out = save_comparison(frame, tmp_path / "saved")
    assert {p.name for p in out.iterdir()} == {"runs.csv", "summary.csv", "summary.md"}
