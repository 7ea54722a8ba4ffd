"""The command line: `cutkit train` writes a complete run directory; the entry points exist."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cutkit.cli import main
from cutkit.data.bundled import bundled_data_path


def test_train_writes_adapter_config_history_and_figures(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            str(bundled_data_path("starter/train.jsonl")),
            "--eval_data",
            str(bundled_data_path("starter/test.jsonl")),
            "--model",
            str(tiny_checkpoint),
            "--output",
            str(out),
            "--max_steps",
            "2",
            "--per_device_train_batch_size",
            "2",
            "--gradient_accumulation_steps",
            "1",
            "--lora_r",
            "4",
            "--threshold",
            "1.2",
            "--logging_steps",
            "1",
            "--use_cpu",
            "true",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "48 read, 48 loaded (14 positive, 34 negative), 0 skipped" in printed
    assert "held-out before training: n_records=16" not in printed  # ints are not figures
    assert "pref_accuracy=" in printed
    assert (out / "adapter_model.safetensors").exists() and (out / "adapter_config.json").exists()
    run = json.loads((out / "cutkit_run.json").read_text())
    assert run["config"]["threshold"] == 1.2 and run["script"]["lora_r"] == 4
    assert run["build_reports"]["train"]["n_negative"] == 34
    assert {"pref_accuracy", "logp_good"} <= run["before"].keys() <= run["after"].keys()
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert any("ul/flagged_frac" in h for h in history)


def test_bad_data_stops_with_the_file_and_record(tiny_checkpoint, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"instruction": "Q?", "output": "A.", "judgment": "$ERROR$"}]))
    with pytest.raises(ValueError, match=r"bad\.json.*record 0.*lenient"):
        main(
            [
                "train",
                "--data",
                str(bad),
                "--model",
                str(tiny_checkpoint),
                "--output",
                str(tmp_path / "run"),
                "--use_cpu",
                "true",
            ]
        )


def test_help_and_unknown_commands():
    assert main(["--help"]) == 0
    assert main(["fly"]) == 2
    assert main([]) == 2


def test_console_script_and_module_entry_points():
    module = subprocess.run(
        [sys.executable, "-m", "cutkit", "--help"], capture_output=True, text=True
    )
    assert module.returncode == 0 and "train" in module.stdout
    script = shutil.which("cutkit", path=str(Path(sys.executable).parent))
    assert script, "the cutkit console script is installed beside the interpreter"
    result = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "inspect" in result.stdout


def test_inspect_writes_a_token_report_with_an_adapter(tiny_checkpoint, tmp_path, capsys):
    from cutkit.models.loading import load_model

    model, _ = load_model(tiny_checkpoint, lora={"r": 2})
    model.save_pretrained(tmp_path / "adapter")
    out = tmp_path / "report.html"
    assert (
        main(
            [
                "inspect",
                "--data",
                str(bundled_data_path("starter/test.jsonl")),
                "--model",
                str(tiny_checkpoint),
                "--adapter",
                str(tmp_path / "adapter"),
                "--limit",
                "3",
                "--threshold",
                "1.5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "wrote" in printed
    # detection quality against the gold spans, overall and per kind, then the push balance
    assert "detection against the gold error spans" in printed and " auc " in printed
    table = printed.split("flagged_frac at λ = 1.5):\n")[1].splitlines()
    assert table[0].split() == [
        "group", "n_records", "n_tokens", "base_rate", "auc", "precision", "recall", "f1",
        "flagged_frac",
    ]  # fmt: skip
    assert [line.split()[0] for line in table[1:4]] == ["all", "arithmetic", "factual"]
    assert "push balance of CUT's plain-prompt term at λ = 1.5, α = 1: push-down" in printed
    assert "on the gold error tokens alone: push-down" in printed
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "<script" not in page.lower()
    assert page.count('class="ck-tv-record"') == 3
    assert "flagged at λ = 1.5" in page


def test_compare_writes_runs_and_summary(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "compare"
    args = ["--model", str(tiny_checkpoint), "--output", str(out), "--steps", "1"]
    args += ["--batch_size", "2", "--max_length", "64", "--max_new_tokens", "4"]
    args += [
        "--template",
        "alpaca",
        "--train",
        "starter/train.jsonl",
        "--test",
        "starter/test.jsonl",
    ]
    assert main(["compare", "--objectives", "sft", "cut", "--seeds", "5", *args]) == 0
    printed = capsys.readouterr().out
    assert "48 training records, 16 held-out, 1 steps of 2 records each" in printed
    assert "| cut | 1 |" in printed and "| sft | 1 |" in printed
    runs = (out / "runs.csv").read_text().splitlines()
    assert [line.split(",")[:2] for line in runs[1:]] == [
        ["base", "-1"],
        ["sft", "5"],
        ["cut", "5"],
    ]
    assert (out / "summary.md").read_text().startswith("| objective | seeds | train s |")


@pytest.mark.parametrize(
    "command, extra",
    [("train", ["--data", "d.jsonl"]), ("inspect", ["--data", "d.jsonl"]), ("demo", []),
     ("compare", []), ("online", [])],
)  # fmt: skip
def test_every_command_takes_the_same_options(command, extra):
    from cutkit.cli.arguments import parse_command
    from cutkit.cli.compare import CompareScriptArguments
    from cutkit.cli.demo import DemoSettings
    from cutkit.cli.inspect import InspectArguments
    from cutkit.cli.train import TrainScriptArguments
    from cutkit.eval.comparison import CompareSettings
    from cutkit.online.config import OnlineConfig
    from cutkit.train.config import CUTConfig

    classes = {
        "train": (TrainScriptArguments, CUTConfig),
        "inspect": (InspectArguments,),
        "demo": (DemoSettings,),
        "compare": (CompareScriptArguments, CompareSettings),
        "online": (OnlineConfig,),
    }[command]
    shared = ["--model", "m", "--output", "o", "--template", "alpaca", "--threshold", "1.3"]
    training = ["--lora_r", "4", "--lora-alpha", "8", "--learning_rate", "0.01"]
    argv = shared + (training if command != "inspect" else []) + extra
    parsed = parse_command(argv, command, "", *classes)
    values = {k: v for settings in parsed for k, v in vars(settings).items()}
    assert values["model"] == "m" and values.get("output", values.get("output_dir")) == "o"
    assert (values["template"], values["threshold"]) == ("alpaca", 1.3)
    if command == "inspect":  # --out, its option before every command said --output, still works
        (inspect,) = parse_command(["--data", "d", "--out", "r.html"], command, "", *classes)
        assert inspect.output == "r.html"
    else:
        assert (values["lora_r"], values["lora_alpha"], values["learning_rate"]) == (4, 8, 0.01)


def test_online_is_a_cli_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["online", "--help"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "--instructions-per-round" in printed and "--judge" in printed
