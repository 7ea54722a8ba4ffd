"""The main job end to end on the real default model, at a small scale."""

from __future__ import annotations

import json

import pytest

from cutkit.cli.demo import DemoSettings, demo_tasks, run_demo


def test_demo_tasks_split_topics_and_break_the_limit_mostly():
    train, held = demo_tasks(DemoSettings())
    assert len(train) == 48 and len(held) == 40
    assert not {t.topic for t in train} & {t.topic for t in held}
    assert {t.constraints[0].params["n"] for t in train} == {8, 10, 12}


@pytest.mark.integration
@pytest.mark.slow
def test_demo_runs_and_tells_what_cut_did(tmp_path, capsys):
    settings = DemoSettings(output=str(tmp_path / "demo"), n_train=12, n_heldout=6, epochs=1.0,
                            batch_size=6, max_new_tokens=96)  # fmt: skip
    result = run_demo(settings)
    captured = capsys.readouterr()
    printed = captured.out
    assert "Loading weights" not in captured.err and "FutureWarning" not in captured.err
    for stage in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert stage in printed
    assert "A: The capital of Australia is Canberra" in printed
    assert "detection AUC" in printed and "push balance" in printed
    gate = result["gate"]
    assert 0.5 < gate["auc"] <= 1 and gate["push_down"] > 0
    assert "in_error_span" in printed  # the token table
    lines = printed.split("[5/5]")[1].splitlines()
    assert lines[1].split()[0] == "before" or "before" in lines[1]
    assert lines[2].split()[0] == "satisfaction"  # the table leads with what CUT moves
    assert lines[3].split()[0] == "honest_satisfaction"  # and the content-checked figure
    assert "{'loss'" not in printed  # a progress bar, not a log dict per step
    assert "reading:" in printed and "side by side" in printed
    assert set(result["after"]) == {"cut", "cut+levers"}  # the paper's loss and the levers
    for figures in (result["before"], *result["after"].values()):
        assert 0 <= figures["honest_satisfaction"] <= figures["satisfaction"] <= 1
        assert figures["logp_error_tokens"] < 0 and figures["logp_other_tokens"] < 0
    out = tmp_path / "demo"
    for name, unflagged in (("cut", "mle"), ("cut+levers", "ignore")):
        assert (out / name / "adapter_model.safetensors").exists()
        run = json.loads((out / name / "cutkit_run.json").read_text())
        assert run["config"]["template"] == "chat" and run["gate"]["auc"] == gate["auc"]
        assert run["config"]["unflagged"] == unflagged
        history = json.loads((out / name / "trainer_state.json").read_text())["log_history"]
        assert any("ul/push_ratio" in h or "ul/push_down" in h for h in history)
    assert json.loads((out / "figures.json").read_text())["after"] == result["after"]


def test_a_lever_run_with_a_typo_fails_before_the_model_loads():
    with pytest.raises(ValueError, match="not CUTConfig fields"):
        DemoSettings(lever_run="unflaged=ignore")
    assert DemoSettings(lever_run="").lever_overrides() == {}
