"""The step benchmark compares like with like: the released-code re-implementation computes cutkit's
"official" loss, every variant scores the same tokens, and the script runs end to end."""

from __future__ import annotations

import pytest
import torch

from cutkit.models.tiny import tiny_model
from cutkit.train.batching import CUTCollator, build_examples
from cutkit.train.logprobs import label_logprobs_left_aligned
from cutkit.train.losses import cut_loss

from .helpers import BENCHMARKS, load_benchmark, mixed_records

bench_step = load_benchmark("step/bench_step")
released_code_step = load_benchmark("step/released_code_step")
released_collate, released_loss = (
    released_code_step.released_collate,
    released_code_step.released_loss,
)


def test_released_layout_doubles_the_batch_with_all_pad_dummy_rows(tokenizer):
    examples, _ = build_examples(mixed_records(), tokenizer, "chat")  # n, p, n, p
    batch = released_collate(examples, tokenizer.pad_token_id)
    R = len(examples)
    assert batch["input_ids"].shape[0] == 2 * R
    dummy = [R + i for i, ex in enumerate(examples) if not ex["negative"]]
    assert dummy and all(batch["attention_mask"][row].sum() == 0 for row in dummy)
    assert all((batch["labels"][row] == -100).all() for row in dummy)
    lengths = batch["attention_mask"].sum(1)
    assert batch["input_ids"].shape[1] == int(lengths.max())  # one padded length for all rows


@pytest.mark.parametrize("threshold", [1.1, 1e9])
def test_released_loss_is_cutkits_official_loss(tokenizer, threshold):
    """Same model, same records: the released head on its doubled batch and cutkit's chunked
    head + cut_loss(normalization='official') on its dummy-free batch give the same loss and
    the same gradients (threshold 1e9: nothing flagged, every negative token likelihood)."""
    examples, _ = build_examples(mixed_records(), tokenizer, "chat")
    model = tiny_model(seed=0).double()
    released = released_collate(examples, tokenizer.pad_token_id)
    logits = model(
        input_ids=released["input_ids"], attention_mask=released["attention_mask"]
    ).logits
    loss_released = released_loss(logits, released["labels"], released["negative"], threshold)
    loss_released.backward()
    grads_released = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()

    batch = CUTCollator(tokenizer.pad_token_id)(examples)
    logp, mask = label_logprobs_left_aligned(
        model, batch["input_ids"], batch["attention_mask"], batch["labels"]
    )
    n = len(examples)
    out = cut_loss(
        logp[:n], logp[batch["plain_row"]], mask[:n], batch["negative"], threshold=threshold
    )
    out.loss.backward()
    # the released code adds 1e-5 to 1 - p only where it is exactly 0: never here
    torch.testing.assert_close(out.loss, loss_released, rtol=1e-10, atol=1e-10)
    for key, param in model.named_parameters():
        torch.testing.assert_close(param.grad, grads_released[key], rtol=1e-7, atol=1e-10)


def test_step_benchmark_runs_every_variant_on_the_same_tokens(tmp_path):
    import resource

    limits = resource.getrlimit(resource.RLIMIT_AS)
    results = bench_step.main(
        ["--model", "tiny", "--micro-batch", "2", "--steps", "1", "--warmup", "0",
         "--out", str(tmp_path / "step")]
    )  # fmt: skip
    # called as a function it leaves the caller's limits alone (every later child inherits them:
    # a browser under an address-space cap dies at start-up)
    assert resource.getrlimit(resource.RLIMIT_AS) == limits
    assert [r["variant"] for r in results] == list(bench_step.VARIANTS)
    assert all("error" not in r for r in results), results
    assert len({(r["tokens"], r["scored_tokens"]) for r in results}) == 1  # identical work
    packed = results[-1]
    assert packed["max_logp_diff_vs_padded"] < 1e-3  # fp32 on CPU
    assert all(r["tokens_per_s"] > 0 and r["peak_gib"] > 0 for r in results)
    ratios = bench_step.ratios(results)
    assert {r["variant"] for r in ratios} == {"cutkit", "cutkit-packed"}
    assert all(r["speed_vs_released"] and r["time_per_scored_vs_trl"] for r in ratios)
    report = (tmp_path / "step.md").read_text()
    assert "| tiny | lora | 2 | released |" in report and "time/scored vs TRL" in report


def test_lengths_follow_the_official_sample_profile():
    examples = bench_step.draw_examples(400, vocab=49152, eos=2, seed=0)
    profile = bench_step.json.loads(bench_step.PROFILE.read_text())
    share = profile["negative"] / profile["examples"]
    negatives = sum(ex["negative"] for ex in examples) / len(examples)
    assert abs(negatives - share) < 0.08
    known = {tuple(row) for row in profile["lengths"]}
    for ex in examples:
        judged = len(ex["judged_prompt_ids"] or ())
        assert (len(ex["plain_prompt_ids"]), judged, len(ex["response_ids"])) in known
        assert ex["response_ids"][-1] == 2


def test_onpolicy_experiment_runs_every_stage_on_the_tiny_model(tmp_path):
    """prepare -> every arm (validation choice, seeds, held-out) -> report, then a second run
    resumes without training anything again."""
    import json

    exp = load_benchmark("onpolicy/onpolicy_experiment")

    out, results = tmp_path / "run", tmp_path / "results"
    exp.main(["all", "--preset", "tiny", "--out", str(out), "--results", str(results)])
    prepared = json.loads((out / "prepared.json").read_text())
    negatives = [r for r in prepared["train_records"] if not r["is_positive"]]
    assert negatives and all(r["error_spans"] and r["refinement"] for r in negatives)
    assert {"auc", "push_ratio", "passed"} <= prepared["gate"].keys()
    table = (results / "table.md").read_text()
    assert table.startswith("Gate (before training")
    for arm in ["base", *exp.ARMS]:
        assert f"| {arm} |" in table
    summary = __import__("pandas").read_csv(results / "summary.csv")
    seeds = len(exp.PRESETS["tiny"].seeds)
    assert (summary.set_index("arm").drop("base")["seeds"] == seeds).all()
    assert (results / "satisfaction.png").stat().st_size > 0
    stamps = {p: p.stat().st_mtime for p in out.glob("arms/*/*.json")}
    exp.main(["worker", "0", "1", "--preset", "tiny", "--out", str(out)])  # nothing left to do
    assert {p: p.stat().st_mtime for p in out.glob("arms/*/*.json")} == stamps
    # the committed results alone rebuild the runs: a later report pairs them the same way
    fresh, again = tmp_path / "fresh", tmp_path / "again"
    assert exp.restore(fresh, results, exp.PRESETS["tiny"]) == sorted(["base", *exp.ARMS])
    exp.main(["report", "--preset", "tiny", "--out", str(fresh), "--results", str(again)])
    restored = __import__("pandas").read_csv(again / "summary.csv")
    columns = ["arm", "seeds", "n", "satisfaction", "vs_base", "vs_cut", "lr", "logp_good"]
    __import__("pandas").testing.assert_frame_equal(restored[columns], summary[columns])


def test_offline_comparison_report_merges_the_workers(tmp_path):
    import pandas as pd

    off = load_benchmark("offline_comparison/offline_comparison")

    work = tmp_path / "work"
    for index, arms in enumerate([off.ARMS[0::2], off.ARMS[1::2]]):
        rows = [{"objective": "base", "seed": -1, "train_seconds": 0.0, "pref_accuracy": 0.5,
                 "n_pairs": 62}]  # fmt: skip
        rows += [
            {
                "objective": arm,
                "seed": seed,
                "train_seconds": 1.0,
                "pref_accuracy": 0.5 + 0.01 * seed,
                "n_pairs": 62,
            }
            for seed in off.SEEDS
            for arm in arms
        ]
        (work / f"worker{index}").mkdir(parents=True)
        pd.DataFrame(rows).to_csv(work / f"worker{index}" / "runs.csv", index=False)
    table = off.report(work, tmp_path / "results")
    merged = pd.read_csv(tmp_path / "results" / "runs.csv")
    assert merged["objective"].tolist().count("base") == 1
    assert list(dict.fromkeys(merged["objective"])) == ["base", *off.ARMS]
    assert "n = 62 held-out pairs" in table and "seeds [0, 1, 2]" in table
    assert "| cut:unflagged=ignore | 3 |" in table


def test_loss_head_benchmark_plans_its_cells_and_marks_what_it_does_not_run():
    bench = load_benchmark("loss_head/bench_loss_head")
    args = bench.parse_args(["--vocab", "32000", "128256", "--records", "2", "8"])
    runs = bench.plan(args)
    assert {r for r in runs if r[0] == "auto"} == {
        ("auto", v, r) for v in (32000, 128256) for r in (2, 8)
    }  # the chunk following the vocabulary: every vocabulary at every token count
    assert [r for r in runs if r[0] == "fixed-1024"] == [
        ("fixed-1024", 32000, 2),
        ("fixed-1024", 128256, 2),
    ]
    # the released head where it fits 10 GB: 16 bytes x 2 x 8 x 512 x 128,256 = 16.8 GB does not
    assert ("released", 128256, 2) in runs and ("released", 128256, 8) not in runs
    memory = [{"variant": v, "vocab": V, "records": r, "peak_bytes": 4e8} for v, V, r in runs]
    times = {"fixed-1024": [1.0, 1.2, 1.1], "auto": [1.21, 1.3, 1.2]}
    timing = [{"vocab": 128256, "records": 2, "times_s": times, "loadavg": (2.0, 2.0, 2.0)}]
    meta = dict.fromkeys(["device_name", "command", "torch", "threads", "platform"], "x")
    table = bench.markdown({"memory": memory, "timing": timing}, meta | {"memory_method": ""}, args)
    assert "| 128,256 | 76 | 8,176 | not run (would need ~17 GB) | (R = 2 only) | 400 |" in table
    assert "| 32,000 | 307 | 2,044 | 400 | 400 | 400 |" in table
    assert "| 128,256 | 76 | 1.10 | 1.21 | 1.10 |" in table  # medians and their ratio


def test_learning_curves_run_resume_and_restore_on_the_tiny_model(tmp_path):
    """prepare (content judge) -> worker (grid, seeds, scarce) -> report; a second worker trains
    nothing; the packed state alone restores every result on a new machine."""
    import json

    import pandas as pd

    curves = load_benchmark("curves/learning_curves")
    report = load_benchmark("curves/curves_report")
    preset = curves.PRESETS["tiny"]
    out, results = tmp_path / "run", tmp_path / "results"
    prepared = curves.prepare(out, preset)
    # the tiny model's answers are junk: the content judge makes every one a negative
    assert prepared["content_negatives"] > 0
    assert all(not r["is_positive"] for r in prepared["train_records"])
    curves.main(["worker", "--preset", "tiny", "--out", str(out), "--arms", "cut"])
    chosen = json.loads((out / "full" / "cut" / "chosen.json").read_text())
    assert set(chosen["validation"]) <= {"0.003", "0.001"} and chosen["lr"] in (3e-3, 1e-3)
    run = json.loads(
        (out / "full" / "cut" / f"seed1-lr{chosen['lr']:g}" / "heldout-step2.json").read_text()
    )
    assert (
        run["steps"] == 2
        and run["commit"]
        and {"honest", "content_problem"} <= run["rows"][0].keys()
    )
    text = report.report(out, results, preset)
    table = pd.read_csv(results / "summary.csv")
    cut = table[(table["arm"] == "cut") & (table["condition"] == "full")]
    assert list(cut["steps"]) == list(preset.budgets) and (cut["seeds"] == len(preset.seeds)).all()
    assert set(table["condition"]) == {"full", "scarce"}  # scarce trains at the full rate
    # scarce rows are paired with the same arm's full rows; full rows have no such column value
    scarce = table["condition"] == "scarce"
    assert table.loc[scarce, "vs_full"].notna().all() and table.loc[~scarce, "vs_full"].isna().all()
    assert "honest vs full" in text
    assert "| full | cut | 1 |" in text and (results / "curves-full.png").stat().st_size > 0
    stamps = {p: p.stat().st_mtime for p in out.glob("*/*/seed*/*.json")}
    curves.main(["worker", "--preset", "tiny", "--out", str(out), "--arms", "cut"])
    assert {p: p.stat().st_mtime for p in out.glob("*/*/seed*/*.json")} == stamps
    fresh = tmp_path / "fresh"
    assert curves.restore(fresh, results / "state.tar.gz") == len(
        {p for pattern in curves.STATE for p in out.glob(pattern)}
    )
    again = report.summary(report.collect(fresh, preset))
    pd.testing.assert_frame_equal(again, report.summary(report.collect(out, preset)))
    # the same code retrains the first budget bitwise; another seed's adapter differs
    reproduce = load_benchmark("curves/reproduce")
    same = reproduce.reproduce(out, preset, "cut", seed=1, steps=1)
    assert same["bitwise_equal"] and same["max_abs_diff"] == 0 and same["tensors"] > 0
    lr = f"{chosen['lr']:g}"
    other = reproduce.compare_adapters(out / "full" / "cut" / f"seed0-lr{lr}" / "step-1",
                                       out / "full" / "cut" / f"seed1-lr{lr}" / "step-1")  # fmt: skip
    assert not other["bitwise_equal"] and other["max_abs_diff"] > 0
    again = reproduce.reevaluate(out, preset, "cut", seed=1, steps=2)
    assert again["rows"] == again["same_answers"] == again["same_verdicts"] > 0
    assert again["figures_max_abs_diff"] is not None and again["figures_max_abs_diff"] < 1e-5
    stored = json.loads((out / "full" / "cut" / f"seed1-lr{lr}" / "heldout-step2.json").read_text())
    first = {**stored["rows"][0], "honest": not stored["rows"][0]["honest"]}
    changed = {**stored, "rows": [first, *stored["rows"][1:]]}
    assert reproduce.compare_evaluations(stored, changed)["same_verdicts"] == again["rows"] - 1


def test_scarce_condition_keeps_at_most_the_first_accepted_answers():
    curves = load_benchmark("curves/learning_curves")
    records = [r.to_dict() for r in mixed_records()]
    kept = curves.training_records({"train_records": records}, curves.PRESETS["cpu"], "scarce")
    positives = [r for r in kept if r.is_positive]
    assert len(positives) == min(2, sum(r["is_positive"] for r in records))
    assert [r.id for r in kept if r.is_negative] == [
        r["id"] for r in records if not r["is_positive"]
    ]


def test_committed_content_check_agreement_is_what_the_code_gives(tmp_path):
    """The committed agreement (labels vs the content check) is recomputed from the committed
    labels: a change of the content rules fails here until the results are made again."""
    import shutil

    agreement = load_benchmark("content_check/content_check_agreement")
    committed = BENCHMARKS / "content_check"
    for name in ("sample_key.csv", "labels.csv"):
        shutil.copy(committed / name, tmp_path / name)
    text = agreement.report(tmp_path)
    assert text + "\n" == (committed / "agreement.md").read_text()
    import pandas as pd

    assert agreement.cohen_kappa(pd.Series([1, 1, 0, 0]), pd.Series([1, 1, 0, 0])) == 1.0
    assert agreement.cohen_kappa(pd.Series([1, 0, 1, 0]), pd.Series([1, 1, 0, 0])) == 0.0


def test_families_gate_runs_on_the_tiny_model(tmp_path):
    """Each family's tasks stay on the training topics, single-constraint, and get a gate row."""
    families = load_benchmark("families/families")
    preset = load_benchmark("curves/learning_curves").PRESETS["cpu"]
    topics = families.train_topics(preset)
    tasks = families.family_tasks(topics, "no_commas", 12)
    assert len(tasks) == 12 and len({t.instruction for t in tasks}) == 12
    assert all(t.topic in topics and len(t.constraints) == 1 for t in tasks)
    out, results = tmp_path / "run", tmp_path / "results"
    families.main(["--preset", "tiny", "--out", str(out), "--results", str(results),
                   "--families", "max_words,no_commas"])  # fmt: skip
    table = (results / "gates.md").read_text()
    assert "| max_words |" in table and "| no_commas |" in table
    assert (out / "no_commas.json").exists() and (results / "gates.json").exists()
    assert (results / "wording.md").exists()  # the tiny model's junk answers: content negatives


def test_wording_gates_score_the_same_negatives_under_both_wordings(tokenizer):
    families = load_benchmark("families/families")
    preset = load_benchmark("curves/learning_curves").PRESETS["tiny"]
    task = {"id": "t", "instruction": "Describe the Sahara in lowercase.",
            "constraints": [{"kind": "lowercase"}], "topic": "the Sahara"}  # fmt: skip
    constraint_only = {
        "id": "lower-1", "instruction": task["instruction"], "output": "The Sahara is hot.",
        "judgment": 'Capital letters appear in "The" and "Sahara".', "is_positive": False,
        "error_spans": [[0, 3], [4, 10]], "meta": {"task": task, "violations": ["lowercase"]},
    }  # fmt: skip
    with_content = {**constraint_only, "id": "lower-2",
                    "meta": {"task": task, "violations": ["lowercase", "too_short"]}}  # fmt: skip
    gates = [{"family": "lowercase", "records": [constraint_only, with_content]}]
    rows = families.wording_gates(gates, preset, tiny_model(seed=0), tokenizer)
    assert [r["wording"] for r in rows] == ["quote", "correction"]
    assert [r["n_negative"] for r in rows] == [1, 1]  # the content-criticised one is left out
    assert rows[0]["example"] == constraint_only["judgment"]
    assert rows[1]["example"] == 'Write every word in lowercase: "the" and "sahara".'
    assert all(0.0 <= r["auc"] <= 1.0 for r in rows)


def test_corrective_judgment_names_the_correction_not_the_fault():
    families = load_benchmark("families/families")
    output = "The Sahara is hot, dry and vast."

    def record(kind, spans, **params):
        task = {"constraints": [{"kind": kind, **params}]}
        return {"output": output, "error_spans": spans, "meta": {"task": task}}

    lower = families.corrective_judgment(record("lowercase", [(0, 3), (4, 10)]))
    assert lower == 'Write every word in lowercase: "the" and "sahara".'
    commas = families.corrective_judgment(record("no_commas", [(17, 18)]))
    assert commas == 'Write it without commas: "hot dry".' and "," not in commas
    ending = families.corrective_judgment(record("end_with", [(0, 32)], phrase="The end."))
    assert ending == 'End the answer with the exact phrase "The end.".'


def test_reader_check_samples_blind_and_scores_the_reader_beside_the_check(tmp_path):
    """The sheet hides the arm; the report joins the labels back and counts the answers the
    check passes but the reader rejects; labels that do not match the sample are refused."""
    import pandas as pd

    reader = load_benchmark("reader_check/reader_check")
    rows = []
    for arm in reader.ARMS:
        for steps in (0,) if arm == "base" else (24, reader.STEPS):
            for seed in (0, 1):
                for k in range(3):
                    met = k != 2  # per arm and seed: honest, met but nonsense (labelled), long
                    rows.append({"condition": "full", "arm": arm, "steps": steps, "seed": seed,
                                 "task": f"heldout-{k}", "instruction": f"Describe topic {k}.",
                                 "response": f"{arm} {steps} {seed} answer {k}", "finished": True,
                                 "satisfied": met, "words": 4, "degenerate": "",
                                 "content_problem": "", "honest": met})  # fmt: skip
    answers = tmp_path / "answers.csv"
    pd.DataFrame(rows).to_csv(answers, index=False)
    results = tmp_path / "results"
    drawn = reader.sample(results, answers, per_arm=6)
    sheet = pd.read_csv(results / "sheet.csv")
    assert list(sheet.columns) == ["item", "instruction", "response"] and len(sheet) == 36
    assert sorted(drawn["arm"].value_counts()) == [6] * len(reader.ARMS)
    labels = sheet[["item"]].assign(
        sound=[int(not r.endswith("answer 1")) for r in sheet["response"]], reason="", note=""
    )
    labels.loc[labels["sound"] == 0, "reason"] = "nonsense"
    labels.to_csv(results / "labels.csv", index=False)
    text = reader.report(results, answers)
    frame = pd.read_csv(results / "scored.csv")
    assert (frame["reader_honest"] == (frame["response"].str.endswith("answer 0"))).all()
    # per arm: 2 of 6 honest by the reader, 4 of 6 by the check, 2 fooled
    assert "| kto | 6 | 4 | 0.667 [" in text and "| 0.333 [" in text and "| 2 | 0.50 |" in text
    assert "| +0.000 [" in text and "] tie |" in text  # every arm equal here: ties
    assert "arms at 48 steps" in text and set(frame["steps"]) == {0, reader.STEPS}
    # another budget: its answers only, the budget kept in the key and named by the report
    earlier = tmp_path / "step24"
    reader.sample(earlier, answers, per_arm=6, steps=24)
    key = pd.read_csv(earlier / "sample_key.csv")
    assert set(key.loc[key["arm"] != "base", "steps"]) == {24}
    sheet24 = pd.read_csv(earlier / "sheet.csv")
    assert not sheet24["response"].str.contains(" 48 ").any()
    sheet24[["item"]].assign(sound=1, reason="", note="").to_csv(
        earlier / "labels.csv", index=False
    )
    again = reader.report(earlier, answers, compare=results)
    assert "arms at 24 steps" in again
    # the base model's 6 answers are in both samples; labelled unsound once ("answer 1"), sound here
    assert f"in both this sample and {results.name}'s" in again and "on 4 of 6." in again
    with pytest.raises(ValueError, match="at 96 steps, fewer than 6"):
        reader.sample(tmp_path / "none", answers, per_arm=6, steps=96)
    labels.iloc[:1].to_csv(results / "labels.csv", index=False)
    with pytest.raises(ValueError, match="does not match"):
        reader.report(results, answers)


def test_first_token_probe_reads_the_header_mass_of_each_context(tokenizer):
    """A model that puts its first response token on "#" only after a judgment: the probe finds
    all of the mass in the judged context, none in the plain one, and a header argmax for every
    negative; every header id's text starts with "#", and "#" itself is one."""
    from types import SimpleNamespace

    from cutkit import get_template

    probe = load_benchmark("curves/first_token")
    header_ids = probe.header_token_ids(tokenizer)
    assert tokenizer.convert_tokens_to_ids("#") in header_ids
    assert all(tokenizer.decode([i]).lstrip().startswith("#") for i in header_ids)
    assert tokenizer.convert_tokens_to_ids("The") not in header_ids
    template = get_template("alpaca", tokenizer)

    def model(ids):  # (1, L) -> logits (1, L, V): "#" first whenever the prompt holds a judgment
        logits = torch.zeros(1, ids.shape[1], len(tokenizer))
        judged = "### Judgment:" in tokenizer.decode(ids[0])
        logits[0, -1, tokenizer.convert_tokens_to_ids("#" if judged else "The")] = 30.0
        return SimpleNamespace(logits=logits)

    negatives = [r for r in mixed_records() if not r.is_positive]
    row = probe.first_token_header_mass(model, tokenizer, template, negatives, header_ids)
    assert row["n"] == len(negatives) == row["judged_argmax_header"] > 0
    assert row["judged_mean"] > 0.99 and row["plain_max"] < 0.01
