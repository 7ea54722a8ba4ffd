"""The command line: `cutkit train` writes a complete run directory; the entry points exist."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cutkit.cli import COMMANDS, main
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


def test_train_with_self_distillation(tiny_checkpoint, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--data", str(bundled_data_path("starter/train.jsonl")), "--model",
            str(tiny_checkpoint), "--output", str(out), "--max_steps", "1", "--lora_r", "4",
            "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
            "--logging_steps", "1", "--use_cpu", "true", "--objective", "self_distill",
            "--distill_top_k", "16", "--distill_temperature", "2"]  # fmt: skip
    assert main(argv) == 0
    run = json.loads((out / "cutkit_run.json").read_text())
    assert run["config"]["objective"] == "self_distill" and run["config"]["distill_top_k"] == 16
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert any(h.get("distill/kl", -1) >= 0 for h in history)


def test_bad_data_stops_with_the_file_and_record(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CUTKIT_DEBUG", raising=False)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"instruction": "Q?", "output": "A.", "judgment": "$ERROR$"}]))
    argv = ["train", "--data", str(bad), "--model", str(tiny_checkpoint)]
    argv += ["--output", str(tmp_path / "run"), "--use_cpu", "true"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("cutkit train: error: ")]
    assert re.search(r"bad\.json.*record 0.*lenient", line), line
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match=r"bad\.json.*record 0.*lenient"):
        main([*argv, "--debug"])  # --debug (anywhere) re-raises: the traceback
    monkeypatch.setenv("CUTKIT_DEBUG", "1")
    with pytest.raises(ValueError, match=r"bad\.json.*record 0.*lenient"):
        main(argv)


def test_an_unexpected_error_keeps_its_traceback(monkeypatch):
    def broken(argv):
        raise KeyError("train")  # an internal bug, not bad input

    def library_error(argv):
        import json

        json.loads("{")  # a ValueError raised outside cutkit's own code

    monkeypatch.delenv("CUTKIT_DEBUG", raising=False)
    monkeypatch.setitem(COMMANDS, "train", broken)
    with pytest.raises(KeyError):
        main(["train"])
    monkeypatch.setitem(COMMANDS, "train", library_error)
    with pytest.raises(ValueError):
        main(["train"])


def test_input_errors_are_one_line_with_status_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CUTKIT_DEBUG", raising=False)
    missing = tmp_path / "missing.jsonl"
    assert main(["train", "--data", str(missing), "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cutkit train: error: ") and str(missing) in err
    assert not (tmp_path / "run").exists()
    assert main(["fly"]) == 2
    assert "cutkit: error: unknown command 'fly'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:  # argparse's usage errors keep their exit status 2
        main(["train", "--data", str(missing), "--no_such_option", "1"])
    assert stop.value.code == 2
    assert "unrecognized arguments: --no_such_option 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("rows", "extra", "message"),
    [
        ([], [], r"empty\.jsonl holds no trainable records"),
        ([{"instruction": "Q?", "output": "A.", "judgment": "$ERROR$"}], ["--lenient", "true"],
         r"empty\.jsonl holds no trainable records"),
        ([{"instruction": "Q?", "output": "A.", "judgment": None}], [],
         r"objective 'cut' learns from judged mistakes.*none of the 1 records is negative"),
        ([{"instruction": "Q?", "output": "A.", "judgment": "Wrong."}], ["--objective", "ilf"],
         r"record 0.*'refinement'.*no refinement"),
        ([{"instruction": "Q?", "output": "A.", "judgment": None}], ["--template", "nope"],
         r"unknown template 'nope'"),
    ],
    ids=["empty", "all-junk-lenient", "all-positive", "ilf-no-refinement", "template"],
)  # fmt: skip
def test_train_checks_data_and_settings_before_loading_the_model(
    rows, extra, message, tmp_path, capsys, monkeypatch
):
    """No model is loaded (a missing one would fail differently) and no run directory made."""
    monkeypatch.delenv("CUTKIT_DEBUG", raising=False)
    data = tmp_path / "empty.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    argv = ["train", "--data", str(data), "--model", str(tmp_path / "never-loaded")]
    assert main([*argv, "--output", str(tmp_path / "run"), *extra]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and re.search(message, err), err
    assert not (tmp_path / "run").exists()


def test_an_output_that_cannot_be_written_is_refused_first(tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    data = str(bundled_data_path("starter/train.jsonl"))
    never = str(tmp_path / "never-loaded")
    for argv in (
        ["train", "--data", data, "--model", never, "--output", str(tmp_path / "a_file" / "run")],
        ["inspect", "--data", data, "--model", never, "--out", str(tmp_path / "a_file" / "r.html")],
        ["compare", "--train", data, "--test", data, "--model", never, "--output",
         str(tmp_path / "a_file")],
        ["online", "--model", never, "--output", str(tmp_path / "a_file")],
        ["demo", "--model", never, "--output", str(tmp_path / "a_file")],
    ):  # fmt: skip
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err and "a_file" in err and "never-loaded" not in err, err


def test_inspect_creates_the_folders_of_its_output(tiny_checkpoint, tmp_path, capsys):
    report = tmp_path / "new" / "folder" / "report.html"
    data = str(bundled_data_path("starter/train.jsonl"))
    argv = ["inspect", "--data", data, "--model", str(tiny_checkpoint), "--limit", "2"]
    assert main([*argv, "--out", str(report)]) == 0
    assert report.exists()


def test_compare_refuses_an_empty_test_set_before_training(tmp_path, capsys):
    (tmp_path / "empty.jsonl").write_text("")
    data = str(bundled_data_path("starter/train.jsonl"))
    argv = ["compare", "--train", data, "--test", str(tmp_path / "empty.jsonl")]
    argv += ["--model", str(tmp_path / "never-loaded"), "--output", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--test" in err and "empty.jsonl holds no records" in err
    assert not (tmp_path / "out").exists()


def test_help_and_unknown_commands():
    assert main(["--help"]) == 0
    assert main(["fly"]) == 2
    assert main([]) == 2


def test_console_script_and_module_entry_points(tmp_path):
    module = subprocess.run(
        [sys.executable, "-m", "cutkit", "--help"], capture_output=True, text=True
    )
    assert module.returncode == 0 and "train" in module.stdout
    script = shutil.which("cutkit", path=str(Path(sys.executable).parent))
    assert script, "the cutkit console script is installed beside the interpreter"
    result = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "inspect" in result.stdout
    bad = ["train", "--data", str(tmp_path / "missing.jsonl")]  # both exit with main's status
    module = subprocess.run([sys.executable, "-m", "cutkit", *bad], capture_output=True, text=True)
    assert module.returncode == 2 and "Traceback" not in module.stderr
    assert module.stderr.startswith("cutkit train: error: ") and "missing.jsonl" in module.stderr
    result = subprocess.run([script, *bad], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr


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
    args += ["--batch_size", "2", "--max_length", "256", "--max_new_tokens", "4"]
    args += [
        "--template",
        "alpaca",
        "--train",
        "starter/train.jsonl",
        "--test",
        "starter/test.jsonl",
    ]
    objectives = ["sft", "cut", "kto", "self_distill"]
    assert main(["compare", "--objectives", *objectives, "--seeds", "5", *args]) == 0
    printed = capsys.readouterr().out
    assert "48 training records, 16 held-out, 1 steps of 2 records each" in printed
    assert all(f"| {o} | 1 |" in printed for o in objectives)
    runs = (out / "runs.csv").read_text().splitlines()
    assert [line.split(",")[:2] for line in runs[1:]] == [
        ["base", "-1"],
        *[[o, "5"] for o in objectives],
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


@pytest.mark.parametrize(
    ("option", "value", "settings"),
    [("--threshold", "0.5", {"threshold": 0.5}), ("--threshold", "inf", {"threshold": math.inf}),
     ("--ul_weight", "-1.0", {"ul_weight": -1.0})],
    ids=["threshold-below-1", "threshold-inf", "ul_weight-negative"],
)  # fmt: skip
def test_every_command_refuses_lambda_and_alpha_with_the_rule_of_training(
    option, value, settings, tmp_path, capsys, monkeypatch
):
    """One rule for lambda (>= 1, finite) and alpha (>= 0, finite): ``cutkit inspect`` refuses
    ``--threshold 0.5`` (it used to accept any lambda >= 0) with the message training gives, and so
    do the other commands, before any model loads or folder is made."""
    from cutkit.train.config import CUTConfig

    monkeypatch.delenv("CUTKIT_DEBUG", raising=False)
    with pytest.raises(ValueError) as training:
        CUTConfig(output_dir=str(tmp_path / "unused"), **settings)
    expected = " ".join(str(training.value).split())
    if option == "--threshold":
        assert "less likely" in expected  # lambda < 1 flags tokens the judgment made less likely
    data = str(bundled_data_path("starter/train.jsonl"))
    never = ["--model", str(tmp_path / "never-loaded"), "--output", str(tmp_path / "out")]
    commands = {
        "train": ["--data", data],
        "inspect": ["--data", data],
        "compare": ["--objectives", "cut"],
        "online": [],
        "demo": [],
    }
    for command, extra in commands.items():
        given = [option, value]
        if command == "compare" and option == "--ul_weight":  # compare sets levers per arm
            extra, given = ["--objectives", f"cut:ul_weight={value}"], []
        assert main([command, *extra, *never, *given]) == 2, command
        err = capsys.readouterr().err
        assert err == f"cutkit {command}: error: {expected}\n", command
        assert not (tmp_path / "out").exists()


def test_online_is_a_cli_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["online", "--help"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "--instructions-per-round" in printed and "--judge" in printed


def _train_argv(checkpoint, out, *extra) -> list[str]:
    return [
        "train", "--data", str(bundled_data_path("starter/train.jsonl")), "--model",
        str(checkpoint), "--output", str(out), "--max_steps", "2",
        "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1", "--lora_r",
        "4", "--use_cpu", "true", "--seed", "0", "--disable_tqdm", "true", *extra,
    ]  # fmt: skip


def test_train_with_a_seed_is_reproducible_bit_for_bit(tiny_checkpoint, tmp_path):
    """--seed seeds before the LoRA is created, so two runs give the same adapter."""
    from safetensors.torch import load_file

    for name in ("a", "b"):
        assert main(_train_argv(tiny_checkpoint, tmp_path / name, "--save_strategy", "no")) == 0
    a, b = (load_file(str(tmp_path / n / "adapter_model.safetensors")) for n in ("a", "b"))
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)


def test_train_owns_its_run_directory(tiny_checkpoint, tmp_path, capsys):
    """A run records what made it (cutkit_owner.json); another run into the directory is refused
    unless --overwrite, a resume must keep the settings, and --resume last picks the newest
    complete checkpoint, taking no extra step on a finished run."""
    out = tmp_path / "run"
    assert main(_train_argv(tiny_checkpoint, out, "--save_steps", "1")) == 0
    owner = json.loads((out / "cutkit_owner.json").read_text())
    assert owner["settings"]["data"] == str(bundled_data_path("starter/train.jsonl").resolve())
    assert len(owner["data_sha256"]) == 64 and owner["cutkit_version"]
    capsys.readouterr()
    assert main(_train_argv(tiny_checkpoint, out, "--learning_rate", "1e-3")) == 2
    error = capsys.readouterr().err
    assert "already holds another run" in error and "learning_rate: 0.0004 -> 0.001" in error
    assert main(_train_argv(tiny_checkpoint, out, "--resume", "last", "--lora_r", "8")) == 2
    assert "lora_r: 4 -> 8" in capsys.readouterr().err
    (out / "checkpoint-2" / "cutkit_checkpoint.json").unlink()  # as if killed while saving
    assert main(_train_argv(tiny_checkpoint, out, "--resume", "last")) == 0
    printed = capsys.readouterr().out
    assert "skipped incomplete checkpoint-2" in printed and "checkpoint-1" in printed
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2
    assert main(_train_argv(tiny_checkpoint, out, "--overwrite", "true", "--seed", "1")) == 0
    assert json.loads((out / "cutkit_owner.json").read_text())["settings"]["seed"] == 1
