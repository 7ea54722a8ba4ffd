"""Bad command-line input: every case exits with status 2 and one clear line on stderr
(``cutkit <command>: error: ...`` naming what is wrong), never a Python traceback, and before
any model is trained. The cases run against a tiny model with a one-step budget, so a check that
is missing shows up as a wrong exit status, not as a long run."""

from __future__ import annotations

import json

import pytest

from cutkit.cli import main
from cutkit.data.bundled import bundled_data_path

GOOD = {"instruction": "What is 2 + 2?", "output": "It is 4.", "judgment": None}
BAD = {"instruction": "What is 2 + 3?", "output": "It is 6.", "judgment": "Wrong: it is 5."}


@pytest.fixture(scope="module")
def files(tmp_path_factory, shared_tiny_checkpoint):
    """Placeholder -> path: the tiny model and the data files the cases name."""
    root = tmp_path_factory.mktemp("badinput")
    model = shared_tiny_checkpoint

    def write(name: str, rows: list[dict]) -> str:
        (root / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
        return str(root / name)

    (root / "empty.jsonl").write_text("")
    (root / "malformed.json").write_text('[{"instruction": "Q?", "output": ')
    (root / "a_file").write_text("not a folder")
    (root / "a_folder").mkdir()
    return {
        "{model}": str(model),
        "{data}": str(bundled_data_path("starter/train.jsonl")),
        "{empty}": str(root / "empty.jsonl"),
        "{malformed}": str(root / "malformed.json"),
        "{missing}": str(root / "missing.jsonl"),
        "{junk}": write("junk.jsonl", [{**BAD, "judgment": "$ERROR$"}] * 3),
        "{positive}": write("positive.jsonl", [GOOD] * 4),
        "{negative}": write("negative.jsonl", [BAD] * 4),
        "{a_file}": str(root / "a_file"),
        "{a_folder}": str(root / "a_folder"),
        "{tmp}": str(root),
    }


TRAIN = ["--model", "{model}", "--max_steps", "1", "--use_cpu", "true", "--output", "{tmp}/run"]
INSPECT = ["--model", "{model}", "--output", "{tmp}/report.html"]
COMPARE = ["--model", "{model}", "--objectives", "cut", "--seeds", "0", "--steps", "1"]
COMPARE += ["--generate", "false", "--output", "{tmp}/compare"]
ONLINE = ["--model", "{model}", "--rounds", "0", "--heldout", "2", "--instructions_per_round"]
ONLINE += ["1", "--output", "{tmp}/online", "--device", "cpu"]

# (case id, argv, words the error line names (any one, case-insensitive))
CASES = [
    ("unknown-command", ["fly"], ["fly"]),
    ("train-unknown-option", ["train", "--data", "{data}", "--nope", "1", *TRAIN], ["--nope"]),
    ("train-no-data-option", ["train", *TRAIN], ["--data"]),
    ("train-missing-data", ["train", "--data", "{missing}", *TRAIN], ["missing.jsonl"]),
    ("train-data-is-folder", ["train", "--data", "{a_folder}", *TRAIN], ["a_folder"]),
    ("train-malformed-json", ["train", "--data", "{malformed}", *TRAIN], ["malformed.json"]),
    ("train-empty-data", ["train", "--data", "{empty}", *TRAIN], ["empty.jsonl"]),
    ("train-all-junk", ["train", "--data", "{junk}", *TRAIN], ["junk.jsonl"]),
    (
        "train-all-junk-lenient",
        ["train", "--data", "{junk}", "--lenient", "true", *TRAIN],
        ["junk.jsonl"],
    ),
    ("train-all-positive-cut", ["train", "--data", "{positive}", *TRAIN], ["negative"]),
    (
        "train-all-positive-ul_all",
        ["train", "--data", "{positive}", "--objective", "ul_all", *TRAIN],
        ["negative"],
    ),
    (
        "train-all-positive-hindsight",
        ["train", "--data", "{positive}", "--objective", "hindsight", *TRAIN],
        ["negative"],
    ),
    (
        "train-all-negative-sft",
        ["train", "--data", "{negative}", "--objective", "sft", *TRAIN],
        ["positive"],
    ),
    (
        "train-ilf-without-refinements",
        ["train", "--data", "{negative}", "--objective", "ilf", *TRAIN],
        ["refinement"],
    ),
    (
        "train-missing-eval-data",
        ["train", "--data", "{data}", "--eval_data", "{missing}", *TRAIN],
        ["missing.jsonl"],
    ),
    (
        "train-unknown-template",
        ["train", "--data", "{data}", "--template", "nope", *TRAIN],
        ["template"],
    ),
    (
        "train-unknown-objective",
        ["train", "--data", "{data}", "--objective", "nope", *TRAIN],
        ["objective"],
    ),
    (
        "train-unknown-format",
        ["train", "--data", "{data}", "--format", "nope", *TRAIN],
        ["format", "nope"],
    ),
    (
        "train-missing-model",
        ["train", "--data", "{data}", *TRAIN, "--model", "{tmp}/no-model"],
        ["no-model"],
    ),
    ("train-lora-r-negative", ["train", "--data", "{data}", "--lora_r", "-3", *TRAIN], ["lora_r"]),
    ("train-lora-r-text", ["train", "--data", "{data}", "--lora_r", "abc", *TRAIN], ["lora_r"]),
    (
        "train-lora-dropout",
        ["train", "--data", "{data}", "--lora_dropout", "1.5", *TRAIN],
        ["lora_dropout"],
    ),
    (
        "train-threshold-inf",
        ["train", "--data", "{data}", "--threshold", "inf", *TRAIN],
        ["threshold"],
    ),
    (
        "train-threshold-nan",
        ["train", "--data", "{data}", "--threshold", "nan", *TRAIN],
        ["threshold"],
    ),
    (
        "train-align-p-ratio",
        ["train", "--data", "{data}", "--align_p_ratio", "-1", *TRAIN],
        ["align_p_ratio"],
    ),
    (
        "train-max-length-zero",
        ["train", "--data", "{data}", "--max_length", "0", *TRAIN],
        ["max_length"],
    ),
    (
        "train-output-under-a-file",
        ["train", "--data", "{data}", *TRAIN, "--output", "{a_file}/run"],
        ["a_file"],
    ),
    (
        "train-output-is-a-file",
        ["train", "--data", "{data}", *TRAIN, "--output", "{a_file}"],
        ["a_file"],
    ),
    ("inspect-missing-data", ["inspect", "--data", "{missing}", *INSPECT], ["missing.jsonl"]),
    (
        "inspect-malformed-json",
        ["inspect", "--data", "{malformed}", *INSPECT],
        ["malformed.json"],
    ),
    ("inspect-empty-data", ["inspect", "--data", "{empty}", *INSPECT], ["empty.jsonl"]),
    ("inspect-no-negatives", ["inspect", "--data", "{positive}", *INSPECT], ["negative"]),
    (
        "inspect-unknown-template",
        ["inspect", "--data", "{data}", "--template", "nope", *INSPECT],
        ["template"],
    ),
    (
        "inspect-threshold-inf",
        ["inspect", "--data", "{data}", "--threshold", "inf", *INSPECT],
        ["threshold"],
    ),
    ("inspect-limit-zero", ["inspect", "--data", "{data}", "--limit", "0", *INSPECT], ["limit"]),
    (
        "inspect-missing-adapter",
        ["inspect", "--data", "{data}", "--adapter", "{missing}", *INSPECT],
        ["missing.jsonl", "adapter"],
    ),
    (
        "inspect-output-under-a-file",
        ["inspect", "--data", "{data}", *INSPECT, "--output", "{a_file}/report.html"],
        ["a_file"],
    ),
    (
        "inspect-output-is-a-folder",
        ["inspect", "--data", "{data}", *INSPECT, "--output", "{a_folder}"],
        ["a_folder"],
    ),
    (
        "compare-empty-test",
        ["compare", "--train", "{data}", "--test", "{empty}", *COMPARE],
        ["test", "empty.jsonl"],
    ),
    (
        "compare-empty-train",
        ["compare", "--train", "{empty}", "--test", "{data}", *COMPARE],
        ["train", "empty.jsonl"],
    ),
    (
        "compare-missing-train",
        ["compare", "--train", "{missing}", "--test", "{data}", *COMPARE],
        ["missing.jsonl"],
    ),
    (
        "compare-unknown-objective",
        ["compare", "--train", "{data}", "--test", "{data}", *COMPARE, "--objectives", "nope"],
        ["nope"],
    ),
    (
        "compare-seeds-text",
        ["compare", "--train", "{data}", "--test", "{data}", *COMPARE, "--seeds", "x"],
        ["seeds"],
    ),
    (
        "compare-all-positive-cut",
        ["compare", "--train", "{positive}", "--test", "{data}", *COMPARE],
        ["negative"],
    ),
    (
        "compare-dpo-without-refinements",
        ["compare", "--train", "{negative}", "--test", "{data}", *COMPARE, "--objectives", "dpo"],
        ["refinement"],
    ),
    (
        "compare-steps-zero",
        ["compare", "--train", "{data}", "--test", "{data}", *COMPARE, "--steps", "0"],
        ["steps"],
    ),
    (
        "compare-output-under-a-file",
        ["compare", "--train", "{data}", "--test", "{data}", *COMPARE, "--output", "{a_file}/out"],
        ["a_file"],
    ),
    ("online-unknown-objective", ["online", *ONLINE, "--objective", "nope"], ["objective"]),
    ("online-rounds-negative", ["online", *ONLINE, "--rounds", "-1"], ["rounds"]),
    ("online-unknown-judge", ["online", *ONLINE, "--judge", "nope"], ["judge", "nope"]),
    ("online-unknown-family", ["online", *ONLINE, "--families", "nope"], ["nope"]),
    (
        "online-no-instructions",
        ["online", *ONLINE, "--instructions_per_round", "0"],
        ["instructions_per_round"],
    ),
    ("online-truncated", ["online", *ONLINE, "--truncated", "nope"], ["truncated"]),
    ("online-training-not-json", ["online", *ONLINE, "--training", "{bad"], ["training"]),
    ("online-threshold-inf", ["online", *ONLINE, "--threshold", "inf"], ["threshold"]),
    ("online-unknown-template", ["online", *ONLINE, "--template", "nope"], ["template"]),
    ("online-output-is-a-file", ["online", *ONLINE, "--output", "{a_file}"], ["a_file"]),
    ("online-output-under-a-file", ["online", *ONLINE, "--output", "{a_file}/run"], ["a_file"]),
    ("demo-unknown-option", ["demo", "--nope"], ["--nope"]),
]


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """``main(argv)``'s exit status (argparse's usage errors exit) and its stderr."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("argv", "names"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(argv, names, files, capsys, monkeypatch):
    monkeypatch.delenv("CUTKIT_DEBUG", raising=False)
    for placeholder, path in files.items():
        argv = [arg.replace(placeholder, path) for arg in argv]
    code, err = run_cli(argv, capsys)
    assert "Traceback" not in err, err
    command = argv[0] if argv[0] != "fly" else ""
    prefix = f"cutkit {command}: error:".replace(" :", ":")
    lines = [line for line in err.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, f"want one '{prefix}' line in stderr, got:\n{err}"
    assert any(name.lower() in lines[0].lower() for name in names), lines[0]
    assert code == 2, err
