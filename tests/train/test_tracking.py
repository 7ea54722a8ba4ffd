"""report_to reaches every entry point, and the held-out summaries of compare and online land in
TensorBoard: the event files are read back."""

from __future__ import annotations

import sys

import pytest

from cutkit.train.tracking import check_report_to, log_figures, trackers


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the TensorBoard event files under ``folder``: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, list[tuple[int, float]]] = {}
    for run in sorted({events.parent for events in folder.rglob("events.out.tfevents.*")}):
        accumulator = EventAccumulator(str(run))  # reads every event file of the run
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            found.setdefault(tag, []).extend((e.step, e.value) for e in accumulator.Scalars(tag))
    return found


def test_report_to_is_read_as_transformers_reads_it():
    assert trackers("none") == [] and trackers(None) == [] and trackers(["none"]) == []
    assert trackers("tensorboard, wandb") == ["tensorboard", "wandb"]
    assert "tensorboard" in trackers("all")


def test_log_figures_writes_finite_numbers_only(tmp_path):
    figures = {"pref_accuracy": 0.5, "n": 3, "flag": True, "bad": float("nan"), "name": "x"}
    assert log_figures(figures, tmp_path, "tensorboard", step=7) == ["tensorboard"]
    assert scalars(tmp_path) == {"heldout/pref_accuracy": [(7, 0.5)], "heldout/n": [(7, 3.0)]}
    assert log_figures(figures, tmp_path / "none", "none") == []
    assert not (tmp_path / "none").exists()
    with pytest.warns(UserWarning, match="wandb"):
        assert log_figures(figures, tmp_path / "w", "wandb") == []


def test_a_missing_tensorboard_is_named_before_training(monkeypatch):
    from cutkit.eval.comparison import CompareSettings

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(ValueError, match=r"pip install cutkit\[tracking\]"):
        check_report_to("tensorboard")
    with pytest.raises(ValueError, match="tensorboard"):
        CompareSettings(report_to="tensorboard")
    check_report_to("none")


def test_compare_logs_training_and_held_out_figures_to_tensorboard(tiny_checkpoint, tmp_path):
    from cutkit.data.bundled import load_bundled_or_path
    from cutkit.eval.comparison import CompareSettings, compare

    settings = CompareSettings(
        model=str(tiny_checkpoint), template="alpaca", steps=2, batch_size=2, max_length=256,
        generate=False, output=str(tmp_path / "compare"), report_to="tensorboard",
    )  # fmt: skip
    train = load_bundled_or_path("starter/train.jsonl")[:8]
    test = load_bundled_or_path("starter/test.jsonl")[:4]
    frame = compare(["cut"], train, test, seeds=[0], settings=settings)
    logged = scalars(tmp_path / "compare" / "cut-seed0")
    assert [step for step, _ in logged["train/loss"]] == [1, 2]  # the trainer's own logs
    held = logged["heldout/pref_accuracy"]
    assert held == [(2, pytest.approx(frame.loc[1, "pref_accuracy"]))]


def test_online_logs_held_out_satisfaction_per_round(shared_tiny_checkpoint, tmp_path):
    from cutkit.online.config import OnlineConfig
    from cutkit.online.loop import run_online

    config = OnlineConfig(
        model=str(shared_tiny_checkpoint), output_dir=str(tmp_path / "run"), rounds=1,
        instructions_per_round=6, heldout=3, max_new_tokens=4, batch_size=4, lora_r=4,
        device="cpu", show_progress=False, truncated="keep", report_to="tensorboard",
    )  # fmt: skip
    run = run_online(config)
    logged = scalars(run.run_dir / "tensorboard")
    rates = [m["heldout"]["satisfaction_rate"] for m in run.metrics]
    assert logged["heldout/satisfaction_rate"] == [
        (r, pytest.approx(rate)) for r, rate in enumerate(rates)
    ]
    assert "train/loss" in scalars(run.run_dir / "round-01")
