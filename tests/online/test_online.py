"""The online loop on the tiny model: round artefacts, resume after an interruption (nothing
redone, judgments reused, same result as an uninterrupted run), the objectives, failed judges,
refused resumes, answers cut off at max_new_tokens (dropped or kept without EOS), batched
generation and the CLI."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from cutkit.cli.online import online_main, online_parser
from cutkit.data.loading import load_records
from cutkit.eval.generation import Generation, generate_from_ids, generate_responses
from cutkit.online.config import HELDOUT_FILE, PROGRESS_FILE, TRUNCATED_REASON, OnlineConfig
from cutkit.online.judges.base import JudgeFailure, Judgment
from cutkit.online.judges.rule import RuleJudge
from cutkit.online.loop import run_online
from cutkit.online.rounds import heldout_metrics, judged_records
from cutkit.online.rundir import read_jsonl, round_dir
from cutkit.online.tasks import Constraint, Task
from cutkit.train.batching import build_examples


@pytest.fixture(scope="session")
def checkpoint(shared_tiny_checkpoint) -> Path:
    return shared_tiny_checkpoint


def small_config(checkpoint: Path, output: Path, **overrides) -> OnlineConfig:
    settings = dict(
        model=str(checkpoint),
        output_dir=str(output),
        rounds=2,
        instructions_per_round=9,
        heldout=4,
        max_new_tokens=6,
        generation_batch_size=8,
        batch_size=8,
        learning_rate=1e-2,
        lora_r=4,
        device="cpu",
        show_progress=False,
        truncated="keep",  # the random tiny model never writes EOS: every answer is cut off
        judge_content_check=False,  # its answers are no sound answers: the rounds need positives
    )
    return OnlineConfig(**{**settings, **overrides})


class CountingJudge:
    """A RuleJudge that counts the responses it is asked to judge."""

    def __init__(self, seed: int = 42, fail: bool = False):
        self.inner, self.fail, self.calls = RuleJudge(seed=seed), fail, 0
        self.name = "rule"

    def judge(self, instructions, responses):
        self.calls += len(responses)
        if self.fail:
            return [JudgeFailure("HTTP 503: unavailable (gave up after 3 attempts)", 3)] * len(
                responses
            )
        return self.inner.judge(instructions, responses)


@pytest.fixture(scope="module")
def uninterrupted(checkpoint, tmp_path_factory):
    """Two CUT rounds in one go: the reference run."""
    return run_online(small_config(checkpoint, tmp_path_factory.mktemp("online") / "run"))


def file_stamps(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_rounds_write_their_artefacts(uninterrupted):
    run_dir = uninterrupted.run_dir
    progress = json.loads((run_dir / PROGRESS_FILE).read_text())
    assert progress["completed_rounds"] == [0, 1, 2]
    assert progress["config"]["objective"] == "cut" and progress["judge"] == "rule"
    assert len((run_dir / HELDOUT_FILE).read_text().splitlines()) == 4
    base = json.loads((round_dir(run_dir, 0) / "metrics.json").read_text())
    assert "train" not in base and 0 <= base["heldout"]["satisfaction_rate"] <= 1
    for r in (1, 2):
        folder = round_dir(run_dir, r)
        assert (folder / "adapter" / "adapter_model.safetensors").exists()
        assert (folder / "trainer" / "trainer_state.json").exists()
        metrics = json.loads((folder / "metrics.json").read_text())
        train = metrics["train"]
        assert train["trained"] and train["steps"] >= 1 and train["n_instructions"] == 9
        assert train["n_positive"] + train["n_negative"] + train["n_excluded"] == 9
        assert train["build_report"]["objective"] == "cut"
        assert any("ul/flagged_frac" in h for h in train["log_history"])
        assert set(metrics["heldout"]) >= {"satisfaction_rate", "by_family", "by_constraint"}
        records = load_records(folder / "records.jsonl")
        assert len(records) == train["n_judged"]
        for record in records:
            assert record.meta["round"] == r and record.meta["task"]["instruction"]
            assert record.judgment.startswith("Perfect") == record.is_positive
            if record.is_negative:
                assert record.meta["violations"]
        config = json.loads((folder / "config.json").read_text())
        assert config["training"]["objective"] == "cut" and config["training"]["seed"] == 42 + r
        heldout = [json.loads(line) for line in (folder / "heldout.jsonl").read_text().splitlines()]
        assert sum(row["satisfied"] for row in heldout) == metrics["heldout"]["n_satisfied"]
    instructions = [
        {json.loads(line)["instruction"] for line in (round_dir(run_dir, r) / "tasks.jsonl").open()}
        for r in (1, 2)
    ]
    heldout_instructions = {
        json.loads(line)["instruction"] for line in (run_dir / HELDOUT_FILE).open()
    }
    assert not instructions[0] & instructions[1] and not heldout_instructions & instructions[0]
    table = uninterrupted.table()
    assert list(table.index) == [0, 1, 2] and table.loc[1, "trained"]
    assert not list(run_dir.glob("*.partial"))


def test_interrupted_run_resumes_without_redoing_or_losing_work(
    checkpoint, tmp_path, uninterrupted, monkeypatch
):
    out = tmp_path / "run"
    run_online(small_config(checkpoint, out, rounds=1))
    done = {r: file_stamps(round_dir(out, r)) for r in (0, 1)}

    def power_cut(self, *args, **kwargs):
        raise RuntimeError("power cut")

    with monkeypatch.context() as patch:  # round 2 dies in training, after judging
        patch.setattr("cutkit.train.trainer.CUTTrainer.train", power_cut)
        with pytest.raises(RuntimeError, match="power cut"):
            run_online(small_config(checkpoint, out, rounds=2))
    partial = out / "round-02.partial"
    assert (partial / "records.jsonl").exists() and not round_dir(out, 2).exists()
    assert json.loads((out / PROGRESS_FILE).read_text())["completed_rounds"] == [0, 1]

    judge = CountingJudge()
    resumed = run_online(small_config(checkpoint, out, rounds=2), judge=judge)
    assert judge.calls == 0  # round 2's judgments were reused, nothing judged twice
    assert {r: file_stamps(round_dir(out, r)) for r in (0, 1)} == done  # rounds 0, 1 untouched
    assert not partial.exists() and [m["round"] for m in resumed.metrics] == [0, 1, 2]
    reference = uninterrupted.metrics[2]
    assert resumed.metrics[2]["fingerprint"] == reference["fingerprint"]  # same weights
    ref_dir = round_dir(uninterrupted.run_dir, 2)
    for name in ("heldout.jsonl", "records.jsonl", "tasks.jsonl"):
        assert (round_dir(out, 2) / name).read_text() == (ref_dir / name).read_text()
    assert json.loads((out / PROGRESS_FILE).read_text())["completed_rounds"] == [0, 1, 2]

    again = CountingJudge()
    assert len(run_online(small_config(checkpoint, out, rounds=2), judge=again).metrics) == 3
    assert again.calls == 0 and file_stamps(round_dir(out, 2))


@pytest.mark.parametrize("objective", ["sft", "hindsight"])
def test_baseline_objectives(checkpoint, tmp_path, objective):
    run = run_online(small_config(checkpoint, tmp_path / "run", rounds=1, objective=objective))
    train = run.metrics[1]["train"]
    assert train["n_positive"] > 0 and train["n_negative"] > 0
    assert train["trained"] and train["build_report"]["objective"] == objective
    history = train["log_history"]
    assert not any("ul/flagged_frac" in h for h in history)  # no Misalign term in either
    if objective == "sft":  # rejection sampling: only the accepted responses are trained on
        assert train["build_report"]["n_negative_dropped"] == train["n_negative"]
        assert train["n_examples"] == train["n_positive"]
    else:
        assert train["n_examples"] == train["build_report"]["n_examples"] >= train["n_negative"]


def test_self_distill_and_kto_train_a_round(checkpoint, tmp_path):
    distilled = run_online(
        small_config(checkpoint, tmp_path / "sd", rounds=1, objective="self_distill")
    )
    train = distilled.metrics[1]["train"]
    assert train["trained"] and train["build_report"]["objective"] == "self_distill"
    assert all(h["distill/kl"] >= 0 for h in train["log_history"] if "loss" in h)
    kto = run_online(small_config(checkpoint, tmp_path / "kto", rounds=1, objective="kto"))
    train = kto.metrics[1]["train"]
    assert train["n_positive"] > 0 and train["n_negative"] > 0
    assert train["trained"] and train["steps"] >= 1 and train["train_loss"] is not None
    assert train["n_examples"] <= train["n_positive"] + train["n_negative"]
    assert (round_dir(kto.run_dir, 1) / "adapter" / "adapter_model.safetensors").exists()
    with pytest.raises(ValueError, match="batch_size must be an integer >= 2"):
        small_config(checkpoint, tmp_path / "x", objective="kto", batch_size=1)


def test_levers_and_families_reach_the_rounds(checkpoint, tmp_path):
    config = small_config(checkpoint, tmp_path / "run", rounds=1, detector="spans",
                          unflagged="ignore", align_n=False, families="max_words,lowercase")  # fmt: skip
    run = run_online(config)
    tasks = read_jsonl(round_dir(run.run_dir, 1) / "tasks.jsonl")
    assert {t["family"] for t in tasks} <= {"max_words", "lowercase"}
    training = json.loads((round_dir(run.run_dir, 1) / "config.json").read_text())["training"]
    assert (training["detector"], training["unflagged"], training["align_n"]) == (
        "spans", "ignore", False)  # fmt: skip
    history = run.metrics[1]["train"]["log_history"]
    assert any(h.get("ul/push_up") == 0 for h in history)  # unflagged tokens get no likelihood


class RejectingJudge:
    name = "rejects everything"

    def judge(self, instructions, responses):
        return [Judgment("Wrong: the response misses the point.", False) for _ in responses]


def test_sft_without_accepted_responses_skips_training(checkpoint, tmp_path, caplog):
    out = tmp_path / "run"
    config = small_config(checkpoint, out, rounds=1, objective="sft")
    with caplog.at_level(logging.INFO, logger="cutkit.online.loop"):
        run = run_online(config, judge=RejectingJudge())
    assert "round 1: not training: " in caplog.text  # progress is logged, not printed
    train = run.metrics[1]["train"]
    assert (train["trained"], train["n_positive"], train["n_negative"]) == (False, 0, 9)
    assert "none of the 9 records is positive" in train["skip_reason"]
    assert not (round_dir(out, 1) / "adapter").exists()
    assert run.metrics[1]["fingerprint"] == run.metrics[0]["fingerprint"]  # model unchanged


def test_a_judge_that_always_fails_stops_the_round_with_the_reason(checkpoint, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match=r"all 9 judge calls failed.*HTTP 503"):
        run_online(small_config(checkpoint, out, rounds=1), judge=CountingJudge(fail=True))
    assert (round_dir(out, 0) / "metrics.json").exists() and not round_dir(out, 1).exists()


def test_resume_with_other_settings_is_refused(checkpoint, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    stored = small_config(checkpoint, out, objective="sft")
    from dataclasses import asdict

    (out / PROGRESS_FILE).write_text(json.dumps({"config": asdict(stored)}))
    with pytest.raises(ValueError, match=r"objective: 'sft' -> 'cut'.*new --output"):
        run_online(small_config(checkpoint, out, rounds=5))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="objective must be one of"):
        OnlineConfig(objective="dpo")
    with pytest.raises(ValueError, match=r"truncated must be one of \('drop', 'keep'\)"):
        OnlineConfig(truncated="trim")
    with pytest.raises(ValueError, match="instructions_per_round"):
        OnlineConfig(instructions_per_round=0)
    with pytest.raises(ValueError, match="unknown judge spec 'gpt-4'"):
        OnlineConfig(judge="gpt-4")
    with pytest.raises(ValueError, match="families"):
        OnlineConfig(families="haiku")
    with pytest.raises(ValueError, match="detector"):
        OnlineConfig(detector="oracle")


def test_a_missing_api_key_fails_before_any_work(checkpoint, tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    config = small_config(checkpoint, tmp_path / "run", judge="openai:http://h/v1,m,NO_SUCH_KEY")
    with pytest.raises(ValueError, match="NO_SUCH_KEY is not set"):
        run_online(config)
    assert not (tmp_path / "run").exists()  # a failed start leaves no empty run directory


def test_a_run_resumes_however_its_output_is_written(checkpoint, tmp_path, monkeypatch, capsys):
    """`--output run`, then the same run as an absolute path, with a trailing slash, and from
    another working directory: each resumes it (nothing redone) instead of refusing it."""
    monkeypatch.chdir(tmp_path)
    first = run_online(small_config(checkpoint, "run", rounds=0))
    assert [m["round"] for m in first.metrics] == [0]
    stamps = file_stamps(round_dir(tmp_path / "run", 0))
    for output in (str(tmp_path / "run"), "run/", str(tmp_path / "run") + "/"):
        judge = CountingJudge()
        again = run_online(small_config(checkpoint, output, rounds=0), judge=judge)
        assert [m["round"] for m in again.metrics] == [0] and judge.calls == 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    online_main(["--output", "../run/", "--model", str(checkpoint), "--rounds", "0",
                 "--instructions_per_round", "9", "--heldout", "4", "--max_new_tokens", "6",
                 "--generation_batch_size", "8", "--batch_size", "8", "--learning_rate", "1e-2",
                 "--lora_r", "4", "--device", "cpu", "--show_progress", "false",
                 "--truncated", "keep", "--judge_content_check", "false"])  # fmt: skip
    assert file_stamps(round_dir(tmp_path / "run", 0)) == stamps  # round 0 was not redone


def test_a_failed_start_leaves_no_run_directory(checkpoint, tmp_path):
    from cutkit.models.registry import ModelNotFoundError

    config = small_config(tmp_path / "no-such-model", tmp_path / "run")
    with pytest.raises(ModelNotFoundError):
        run_online(config)
    assert not (tmp_path / "run").exists()
    (tmp_path / "a_file").write_text("not a run")
    with pytest.raises(ValueError, match="a_file is a file, not a run directory"):
        run_online(small_config(checkpoint, tmp_path / "a_file"))


def test_judged_records_exclude_empty_failed_and_junk():
    tasks = [Task(f"t{i}", f"Task {i}.", [Constraint("lowercase")], "lowercase") for i in range(4)]
    results = [
        Judgment("Perfect.", True),
        None,  # an empty response is never judged
        JudgeFailure("timed out after 60 s (gave up after 5 attempts)", 5),
        Judgment("The response is perfectly fine.", False),  # praise routed negative: junk
    ]
    records, excluded = judged_records(3, tasks, ["ok", "", "x", "y"], results, "judge")
    assert [r.id for r in records] == ["r03-t0"]
    reasons = [row["reason"] for row in excluded]
    assert reasons[0].startswith("empty response") and reasons[1].startswith("timed out")
    assert "praises" in reasons[2]


def test_judged_records_drop_or_mark_truncated_responses():
    tasks = [Task(f"t{i}", f"Task {i}.", [Constraint("lowercase")], "lowercase") for i in range(4)]
    results = [Judgment("Perfect.", True), None, Judgment("Wrong: capitals in X.", False), None]
    records, excluded = judged_records(
        1, tasks, ["ok", "cut off", "X cut", ""], results, "rule", truncated=[0, 1, 1, 1]
    )
    assert [(r.id, r.meta.get("truncated")) for r in records] == [
        ("r01-t0", None),
        ("r01-t2", True),  # judged as it is; batching builds it without EOS
    ]
    assert [(row["id"], row["reason"], row.get("truncated")) for row in excluded] == [
        ("r01-t1", TRUNCATED_REASON, True),
        ("r01-t3", "empty response (not judged)", True),
    ]


def test_heldout_metrics_count_truncated_and_degenerate_answers():
    tasks = [Task(f"t{i}", "Quiet.", [Constraint("lowercase")], "lowercase") for i in range(4)]
    answers = [
        Generation("all quiet here", True, 4),
        Generation("all quiet and then it went on and", False, 9),  # cut off
        Generation("so so quiet", True, 3),  # repetitive
        Generation("", True, 1),
    ]
    metrics, rows = heldout_metrics(tasks, answers)
    assert [row["finished"] for row in rows] == [True, False, True, True]
    assert [row["degenerate"] for row in rows] == [None, "truncated", "repetitive", "empty"]
    assert (metrics["n_truncated"], metrics["n_degenerate"], metrics["n_empty"]) == (1, 3, 1)
    assert metrics["degenerate"] == {"empty": 1, "truncated": 1, "repetitive": 1}
    texts = [a.text for a in answers]
    flags = [a.finished for a in answers]
    assert heldout_metrics(tasks, texts, flags) == (metrics, rows)  # flags passed separately
    plain, _ = heldout_metrics(tasks, texts)  # plain strings: taken as finished
    assert (plain["n_truncated"], plain["n_degenerate"]) == (0, 2)


def cut_off_every_third_answer(monkeypatch) -> None:
    """The tiny model's answers, with answers 0, 3, 6, ... of every generation call cut off at
    max_new_tokens and all others finished."""
    from cutkit.eval import generation

    real = generation.generate_answers

    def answers(*args, **kwargs):
        out = real(*args, **kwargs)
        return [Generation(a.text, i % 3 != 0, a.n_tokens) for i, a in enumerate(out)]

    monkeypatch.setattr(generation, "generate_answers", answers)


def capture_training_records(monkeypatch) -> list:
    """The ids of the records each round's training examples are built from."""
    from cutkit.train import objectives

    real, seen = objectives.build_objective_examples, []

    def build(records, *args, **kwargs):
        seen.extend(r.id for r in records)
        return real(records, *args, **kwargs)

    monkeypatch.setattr(objectives, "build_objective_examples", build)
    return seen


def truncated_ids(run_dir: Path) -> set[str]:
    tasks = [json.loads(line) for line in (round_dir(run_dir, 1) / "tasks.jsonl").open()]
    return {f"r01-{task['id']}" for i, task in enumerate(tasks) if i % 3 == 0}


def test_truncated_answers_are_dropped_by_default(checkpoint, tmp_path, monkeypatch):
    assert OnlineConfig().truncated == "drop"
    cut_off_every_third_answer(monkeypatch)
    trained = capture_training_records(monkeypatch)
    out, judge = tmp_path / "run", CountingJudge()
    config = small_config(checkpoint, out, rounds=1, truncated="drop")
    run = run_online(config, judge=judge)
    train = run.metrics[1]["train"]
    assert judge.calls == 6  # the 3 cut-off answers are never judged
    assert (train["n_truncated"], train["n_judged"], train["n_excluded"]) == (3, 6, 3)
    assert train["excluded"] == {TRUNCATED_REASON: 3} and train["trained"]
    cut = truncated_ids(out)
    excluded = [json.loads(line) for line in (round_dir(out, 1) / "excluded.jsonl").open()]
    assert {row["id"] for row in excluded} == cut
    assert all(row["reason"] == TRUNCATED_REASON and row["truncated"] for row in excluded)
    records = load_records(round_dir(out, 1) / "records.jsonl")
    assert not {r.id for r in records} & cut and not any(r.meta.get("truncated") for r in records)
    assert sorted(trained) == sorted(r.id for r in records)  # never trained on
    heldout = run.metrics[1]["heldout"]
    assert heldout["n_truncated"] == 2 and heldout["degenerate"]["truncated"] == 2  # of 4
    rows = [json.loads(line) for line in (round_dir(out, 0) / "heldout.jsonl").open()]
    assert [row["finished"] for row in rows] == [False, True, True, False]
    assert run.table().loc[1, "n_truncated"] == 3


def test_kept_truncated_answers_are_judged_and_marked(checkpoint, tmp_path, monkeypatch, tokenizer):
    cut_off_every_third_answer(monkeypatch)
    trained = capture_training_records(monkeypatch)
    out, judge = tmp_path / "run", CountingJudge()
    run = run_online(small_config(checkpoint, out, rounds=1, truncated="keep"), judge=judge)
    train = run.metrics[1]["train"]
    assert judge.calls == 9 and train["n_truncated"] == 3 and train["n_excluded"] == 0
    records = load_records(round_dir(out, 1) / "records.jsonl")
    marked = {r.id for r in records if r.meta.get("truncated")}
    assert marked == truncated_ids(out) and set(trained) == {r.id for r in records}
    assert all(r.meta.get("truncated") is None for r in records if r.id not in marked)
    examples, _ = build_examples(records, tokenizer, "chat")  # cut-off answers: no EOS
    for example in examples:
        ends_with_eos = example["response_ids"][-1] == tokenizer.eos_token_id
        assert ends_with_eos is (example["id"] not in marked), example["id"]


def test_heldout_metrics_count_an_empty_answer_as_unsatisfied():
    tasks = [
        Task("a", "No lava.", [Constraint("exclude_word", {"word": "lava"})], "exclude_word"),
        Task("b", "Quiet.", [Constraint("lowercase")], "lowercase"),
    ]
    metrics, rows = heldout_metrics(tasks, ["", "all quiet"])
    assert [row["satisfied"] for row in rows] == [False, True]
    assert rows[0]["violations"] == ["empty"] and "empty" in rows[0]["judgment"]
    assert (metrics["satisfaction_rate"], metrics["n_empty"]) == (0.5, 1)
    assert (
        metrics["by_family"] == metrics["by_constraint"] == {"exclude_word": 0.0, "lowercase": 1.0}
    )


def test_prompt_id_generation_is_batch_invariant_and_matches_answering(tiny, tokenizer):
    instructions = ["Say hi.", "Name three colours of the rainbow, please.", "2 + 2?"]
    answers = generate_responses(tiny, tokenizer, instructions, template="chat", max_new_tokens=5)
    chat = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
        )
        for text in instructions
    ]
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in chat]
    batched = generate_from_ids(
        tiny, tokenizer, ids, batch_size=3, max_new_tokens=5, longest_first=True
    )
    assert batched == generate_from_ids(tiny, tokenizer, ids, batch_size=1, max_new_tokens=5)
    assert batched == answers and all(batched)  # the loop answers with the same prompts
    assert generate_from_ids(tiny, tokenizer, [], max_new_tokens=5) == []


def test_cli_options_and_a_base_evaluation_run(checkpoint, tmp_path, capsys):
    parser = online_parser()

    def parse(options: str) -> OnlineConfig:
        return parser.parse_args_into_dataclasses(options.split(), look_for_args_file=False)[0]

    options = "--instructions-per-round 5 --output x --lr 0.01 --align-p-ratio none"
    options += " --judge openai:http://h/v1,m,KEY --show-progress false"
    args = parse(options)
    assert (args.instructions_per_round, args.output_dir, args.learning_rate) == (5, "x", 0.01)
    assert args.align_p_ratio is None and args.judge.startswith("openai:")
    assert args.show_progress is False and parse("").objective == "cut"
    assert parse("") == OnlineConfig()  # the options' defaults are the config's
    assert parse("--truncated keep").truncated == "keep"
    assert "--truncated" in parser.format_help() and "95%" in parser.format_help()
    out = tmp_path / "cli-run"
    argv = ["--model", str(checkpoint), "--output-dir", str(out), "--rounds", "0"]
    argv += ["--heldout", "3", "--max-new-tokens", "4", "--device", "cpu"]
    run = online_main(argv)
    printed = capsys.readouterr().out
    assert "satisfaction_rate" in printed and str(out) in printed
    assert [m["round"] for m in run.metrics] == [0] and (
        round_dir(out, 0) / "heldout.jsonl"
    ).exists()


def test_span_detector_keeps_judgments_without_spans_out_of_training(checkpoint, tmp_path):
    from cutkit.online.config import NO_SPANS_REASON

    config = small_config(checkpoint, tmp_path / "run", rounds=1, detector="spans")
    run = run_online(config, judge=RejectingJudge())  # critiques without error spans
    train = run.metrics[1]["train"]
    assert not train["trained"] and train["n_excluded"] == 9
    excluded = read_jsonl(round_dir(run.run_dir, 1) / "excluded.jsonl")
    assert {row["reason"] for row in excluded} == {NO_SPANS_REASON}
