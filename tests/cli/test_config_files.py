"""``--config FILE.yaml`` for every command: the file sets options, flags override it, mistakes
are one clear line, a run saves a config that reproduces it, and the example configs parse."""

from __future__ import annotations

import pytest
import yaml

from cutkit.cli import main
from cutkit.cli.arguments import CONFIG_FILE, parse_command, parse_with
from cutkit.cli.compare import CompareScriptArguments
from cutkit.cli.demo import DemoSettings
from cutkit.cli.inspect import InspectArguments
from cutkit.cli.online import online_parser
from cutkit.cli.train import TrainScriptArguments
from cutkit.data.bundled import bundled_data_path
from cutkit.eval.comparison import CompareSettings
from cutkit.train.config import CUTConfig
from tests.helpers import REPO

COMMANDS = {
    "train": (TrainScriptArguments, CUTConfig),
    "inspect": (InspectArguments,),
    "demo": (DemoSettings,),
    "compare": (CompareScriptArguments, CompareSettings),
}


def write(path, values: dict) -> str:
    path.write_text(yaml.safe_dump(values))
    return str(path)


@pytest.mark.parametrize("command", [*COMMANDS, "online"])
def test_the_file_sets_options_and_flags_override_it(command, tmp_path):
    config = write(tmp_path / "c.yaml", {"threshold": 1.3, "template": "alpaca", "model": "m"})
    extra = ["--data", "d.jsonl"] if command in ("train", "inspect") else []

    def parse(*argv):
        if command == "online":
            return parse_with(online_parser(), [*argv, *extra])
        return parse_command([*argv, *extra], command, "", *COMMANDS[command])

    values = {k: v for s in parse("--config", config) for k, v in vars(s).items()}
    assert values["threshold"] == 1.3 and values["template"] == "alpaca" and values["model"] == "m"
    values = {
        k: v for s in parse("--threshold", "1.5", "--config", config) for k, v in vars(s).items()
    }
    assert values["threshold"] == 1.5, "a flag beats the file, wherever it stands"


def test_a_required_option_may_come_from_the_file(tmp_path):
    config = write(
        tmp_path / "c.yaml", {"data": "mine.jsonl", "lora_r": 8, "align_p_ratio": "none"}
    )
    script, cut = parse_command(["--config", config], "train", "", *COMMANDS["train"])
    assert script.data == "mine.jsonl" and script.lora_r == 8 and cut.align_p_ratio is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("thresold: 1.2\n", r"unknown setting 'thresold'; did you mean 'threshold'\?"),
        ("- a\n- b\n", "expected a mapping"),
        ("threshold: [1.2\n", "not a readable YAML file"),
        (None, "no such file"),
        ("threshold: nan\n", "threshold"),
    ],
)
def test_mistakes_in_the_file_are_one_clear_line(content, message, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CUTKIT_DEBUG", raising=False)
    path = tmp_path / "c.yaml"
    if content is not None:
        path.write_text(content)
    assert main(["demo", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("cutkit demo: error:")]
    assert __import__("re").search(message, line), line


def test_a_run_saves_the_config_that_reproduces_it(tiny_checkpoint, tmp_path):
    out = tmp_path / "run"
    argv = ["--data", str(bundled_data_path("starter/train.jsonl")), "--model", str(tiny_checkpoint),
            "--output", str(out), "--max_steps", "1", "--lora_r", "4", "--threshold", "1.3",
            "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
            "--use_cpu", "true", "--report_to", "none", "--lr_scheduler_type", "linear"]  # fmt: skip
    assert main(["train", *argv]) == 0
    saved = yaml.safe_load((out / CONFIG_FILE).read_text())
    assert saved["threshold"] == 1.3 and saved["lora_r"] == 4 and "resume" not in saved
    assert "accelerator_config" not in saved, "derived values are left out"
    original = parse_command(argv, "train", "", *COMMANDS["train"])
    again = parse_command(["--config", str(out / CONFIG_FILE)], "train", "", *COMMANDS["train"])
    assert again[0] == original[0]
    assert again[1].to_dict() == original[1].to_dict()


@pytest.mark.parametrize(
    ("path", "command"),
    [("configs/offline-shepherd.yaml", "train"), ("configs/online.yaml", "online")],
)
def test_the_example_configs_parse_for_their_command(path, command):
    argv = ["--config", str(REPO / path)]
    if command == "online":
        (config,) = parse_with(online_parser(), argv)
        assert config.threshold == 1.1 and config.ul_weight == 1.0 and config.align_p_ratio == 0.25
    else:
        script, config = parse_command(argv, command, "", *COMMANDS[command])
        assert config.threshold == 1.2 and config.ul_weight == 0.5 and config.template == "alpaca"
        assert (REPO / script.data).exists() and (REPO / script.eval_data).exists()
