"""The main job end to end on the real default model, at a fraction of an epoch."""

from __future__ import annotations

import json

import pytest

from cutkit.demo import DemoSettings, run_demo


@pytest.mark.integration
@pytest.mark.slow
def test_demo_runs_and_writes_the_run_directory(tmp_path, capsys):
    result = run_demo(DemoSettings(output=str(tmp_path / "demo"), epochs=0.1))
    printed = capsys.readouterr().out
    for stage in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert stage in printed
    assert "A: The capital of Australia is Canberra" in printed
    assert "' Or'" in printed, "the token table of the Orinoco record is printed"
    for split in ("train", "held-out"):
        for when in ("before", "after"):
            figures = result[when][split]
            assert 0 <= figures["pref_accuracy"] <= 1 and figures["logp_bad"] < 0
            assert figures["logp_error_tokens"] < figures["logp_other_tokens"]
    out = tmp_path / "demo"
    assert (out / "adapter_model.safetensors").exists()
    run = json.loads((out / "cutkit_run.json").read_text())
    assert run["config"]["template"] == "chat" and run["after"]["train"]["n_records"] == 48
    assert any(
        "ul/flagged_frac" in h
        for h in json.loads((out / "trainer_state.json").read_text())["log_history"]
    )
    page = (out / "token_report.html").read_text()
    assert page.startswith("<!doctype html>") and "<script" not in page.lower()
