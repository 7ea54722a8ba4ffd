"""Bad-input corpus, damaged state: a file cutkit reads back (an adapter under ``inspect
--adapter``, an online run's ``online_run.json``, a round's ``metrics.json``) that is cut short
is named in one error line with what to do (exit status 2), never a bare safetensors or JSON
traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cutkit.cli import main
from cutkit.data.bundled import bundled_data_path
from tests.helpers import truncate_file


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except Exception as error:  # before: the library's own error, a traceback
        pytest.fail(f"raised {type(error).__name__}: {error}")
    return code, capsys.readouterr().err


def one_line(err: str, command: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"cutkit {command}: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    import torch

    from cutkit.models.lora import apply_lora
    from cutkit.models.tiny import tiny_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("adapter") / "run"
    apply_lora(tiny_model(), {"r": 4}).save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        ("truncated_weights", "adapter_model.safetensors"),
        ("truncated_config", "adapter_config.json"),
        ("no_config", "adapter_config.json"),
    ],
)
def test_inspect_names_a_damaged_adapter(
    damage, named, adapter, shared_tiny_checkpoint, tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("CUTKIT_DEBUG", raising=False)
    folder = tmp_path / "adapter"
    shutil.copytree(adapter, folder)
    if damage == "truncated_weights":
        truncate_file(folder / "adapter_model.safetensors")
    elif damage == "truncated_config":
        truncate_file(folder / "adapter_config.json")
    else:
        (folder / "adapter_config.json").unlink()
    argv = [
        "inspect", "--data", str(bundled_data_path("starter/train.jsonl")), "--limit", "2",
        "--model", str(shared_tiny_checkpoint), "--adapter", str(folder),
        "--output", str(tmp_path / "report.html"),
    ]  # fmt: skip
    code, err = run_cli(argv, capsys)
    line = one_line(err, "inspect")
    assert named in line and str(folder) in line and "--overwrite" in line, line
    assert code == 2


def test_inspect_with_a_complete_adapter_still_works(
    adapter, shared_tiny_checkpoint, tmp_path, capsys
):
    argv = [
        "inspect", "--data", str(bundled_data_path("starter/train.jsonl")), "--limit", "1",
        "--model", str(shared_tiny_checkpoint), "--adapter", str(adapter),
        "--output", str(tmp_path / "report.html"),
    ]  # fmt: skip
    assert run_cli(argv, capsys)[0] == 0
    assert (tmp_path / "report.html").exists()


@pytest.fixture(scope="module")
def online_run(tmp_path_factory, shared_tiny_checkpoint) -> tuple[Path, list[str]]:
    """A finished online run of round 0 only (the base model's evaluation)."""
    out = tmp_path_factory.mktemp("online") / "run"
    argv = [
        "online", "--model", str(shared_tiny_checkpoint), "--rounds", "0", "--heldout", "2",
        "--max_new_tokens", "6", "--output", str(out), "--device", "cpu",
        "--show_progress", "false",
    ]  # fmt: skip
    assert main(argv) == 0
    return out, argv


@pytest.mark.parametrize(
    ("damaged", "fix"),
    [
        ("online_run.json", "delete it"),
        ("round-00/metrics.json", "delete"),
    ],
)
def test_online_names_a_damaged_state_file(damaged, fix, online_run, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CUTKIT_DEBUG", raising=False)
    original, argv = online_run
    out = tmp_path / "run"
    shutil.copytree(original, out)
    truncate_file(out / damaged)
    argv = [str(out) if arg == str(original) else arg for arg in argv]
    code, err = run_cli(argv, capsys)
    line = one_line(err, "online")
    assert str(out / damaged) in line and "damaged" in line and fix in line, line
    assert code == 2


def test_a_damaged_round_file_says_which_round_to_redo(tmp_path):
    from cutkit.online.resume import completed_metrics

    (tmp_path / "round-00").mkdir()
    (tmp_path / "round-01").mkdir()
    (tmp_path / "round-00" / "metrics.json").write_text('{"round": 0}')
    (tmp_path / "round-01" / "metrics.json").write_text('{"round": ')
    with pytest.raises(ValueError, match=r"round-01.*metrics\.json is damaged.*round 1 is redone"):
        completed_metrics(tmp_path, [0, 1])
