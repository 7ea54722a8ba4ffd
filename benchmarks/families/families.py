"""Constraint families beyond word limits: which ones give CUT's mechanism something to act on?

For each family (a constraint kind of ``cutkit.online.kinds``), the default model answers the
family's single-constraint instructions about the *training* topics of the on-policy experiment
(the same topic split: nothing here touches its validation or held-out topics), greedily, with
the chat template. The content-checking rule judge (``RuleJudge(content_check=True)``) judges
each answer, quoting what is at fault and marking it as the record's gold ``error_spans``. The
**gate** is the on-policy experiment's, per family: on the family's negatives, the detection AUC
of the judged/plain log ratio for the gold error tokens (target >= 0.8: the judgment singles out
the tokens it criticises), with the push balance of CUT's plain-prompt term. A family that passes
can join a mixed-family learning curve; one that fails would test nothing about the mechanism.

A second table asks whether the critique's wording is what fails: on the negatives criticised for
their constraint alone, the same gate with the rule judge's quoting critique and with the critique
worded as the correction (:func:`corrective_judgment`: "Write every word in lowercase: ...").

    python benchmarks/families/families.py --out runs/families --results benchmarks/families

``--preset tiny`` runs on the tiny random model (the test does).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

# the on-policy set-up and the learning curves' preset: benchmarks/onpolicy/, benchmarks/curves/
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "onpolicy"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "curves"))
import learning_curves as curves
import onpolicy_experiment as onpolicy

from cutkit.eval.content import CONTENT_PROBLEMS
from cutkit.online.text import quote_list

FAMILIES = ("max_words", "exclude_word", "no_commas", "lowercase", "end_with")
"""Word limits (the reference) and the candidates for a mixed-family learning curve."""

WORDINGS = ("quote", "correction")
"""How a critique states the fault: the rule judge's (it quotes the offending text) or as the
correction (what to write instead, without quoting the fault: :func:`corrective_judgment`)."""


def family_tasks(topics: list[str], family: str, n: int, seed: int = 20260101):
    """``n`` distinct single-constraint ``family`` tasks about ``topics`` (the generator's
    phrasings and parameters), in a seeded order."""
    from cutkit.online.generator import iter_tasks

    wanted, seen, tasks = set(topics), set(), []
    for tries, task in enumerate(iter_tasks(seed, families=[family]), start=1):
        if tries > 200 * n + 1000:
            raise RuntimeError(f"only {len(tasks)} {family} tasks about {len(topics)} topics")
        if task.topic in wanted and len(task.constraints) == 1 and task.instruction not in seen:
            seen.add(task.instruction)
            tasks.append(task)
            if len(tasks) == n:
                return tasks
    return tasks


def train_topics(preset) -> list[str]:
    """The training topics of the on-policy split (:func:`onpolicy_experiment.make_tasks`)."""
    from cutkit.online.generator import TOPICS

    topics = [topic for topic, _ in TOPICS]
    random.Random(20260101).shuffle(topics)
    return topics[: preset.topic_split[0]]


def judged(tasks, rows, family: str):
    """Judged records of the finished, non-empty answers (content-checking rule judge)."""
    from cutkit.data.records import JudgmentRecord
    from cutkit.online.judges.rule import RuleJudge

    judge = RuleJudge(seed=0, content_check=True)
    records = []
    for task, row in zip(tasks, rows, strict=True):
        if not row["response"].strip() or not row["finished"]:
            continue
        verdict = judge.judge_one(task, row["response"])
        records.append(
            JudgmentRecord(
                f"{family}-{task.id}", task.instruction, row["response"], verdict.text,
                is_positive=verdict.is_positive, error_spans=verdict.error_spans,
                meta={"task": task.to_dict(), "kind": family,
                      "violations": verdict.meta.get("violations", [])},
            )
        )  # fmt: skip
    return records


def gate(out: Path, preset, family: str, model, tokenizer) -> dict:
    """One family's answers, records and gate (cached in ``out/<family>.json``)."""
    path = out / f"{family}.json"
    if path.exists():
        return json.loads(path.read_text())
    start = time.perf_counter()
    tasks = family_tasks(train_topics(preset), family, preset.n_train)
    rows = onpolicy.answer_rows(tasks, onpolicy.answer(model, tokenizer, tasks, preset))
    records = judged(tasks, rows, family)
    negatives = [r for r in records if r.is_negative]
    result = {
        "family": family,
        "n_tasks": len(tasks),
        "n_records": len(records),
        "n_negative": len(negatives),
        "n_content_negative": sum(
            any(v in CONTENT_PROBLEMS for v in r.meta["violations"]) for r in negatives
        ),
        "base_satisfied": sum(r["satisfied"] for r in rows) / len(rows),
        "base_honest": sum(r["honest"] for r in rows) / len(rows),
        "rows": rows,
        "records": [r.to_dict() for r in records],
    }
    if negatives:
        result["gate"] = _gate(negatives, preset, model, tokenizer)
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["commit"] = curves.COMMIT
    onpolicy._json(path, result)
    return result


def _gate(negatives, preset, model, tokenizer) -> dict:
    """The on-policy experiment's gate (:func:`cutkit.online.onpolicy.detection_gate`) on
    ``negatives`` at the preset's threshold and Misalign weight."""
    from cutkit.online.onpolicy import detection_gate

    gate, _ = detection_gate(model, tokenizer, negatives, threshold=preset.threshold,
                             ul_weight=preset.ul_weight, template="chat",
                             max_length=preset.max_length)  # fmt: skip
    return gate


def corrective_judgment(record: dict) -> str:
    """The critique of a single-constraint negative worded as the correction: what to write
    instead (the corrected words, the required ending), never the offending text itself."""
    constraint = record["meta"]["task"]["constraints"][0]
    output, spans, kind = record["output"], record["error_spans"], constraint["kind"]
    if kind == "lowercase":
        words = list(dict.fromkeys(output[s:e].lower() for s, e in spans))
        return f"Write every word in lowercase: {quote_list(words)}."
    if kind == "no_commas":  # the words around each comma, joined without it
        joined = [" ".join(output[:s].split()[-1:] + output[s + 1 :].split()[:1]) for s, _ in spans]
        return f"Write it without commas: {quote_list(list(dict.fromkeys(joined)))}."
    if kind == "exclude_word":
        return f'Say it without the word "{constraint["word"]}": use another word there.'
    if kind == "end_with":
        return f'End the answer with the exact phrase "{constraint["phrase"]}".'
    if kind == "max_words":
        return f"Say it in at most {constraint['n']} words: stop sooner."
    raise ValueError(f"no corrective wording for constraint kind {kind!r}")


def wording_gates(gates: list[dict], preset, model, tokenizer) -> list[dict]:
    """Per family and wording (:data:`WORDINGS`): the gate on the negatives criticised for
    their constraint alone (a content critique has no corrective form), the same answers and
    gold spans under both wordings."""
    rows = []
    for result in gates:
        family = result["family"]
        negatives = [r for r in result["records"]
                     if not r["is_positive"] and r["meta"]["violations"] == [family]]  # fmt: skip
        for wording in WORDINGS if negatives else ():
            judged = [r if wording == "quote" else {**r, "judgment": corrective_judgment(r)}
                      for r in negatives]  # fmt: skip
            gate = _gate(onpolicy._records(judged), preset, model, tokenizer)
            figures = ("auc", "precision", "recall", "push_down", "push_up")
            rows.append({"family": family, "wording": wording, "n_negative": len(negatives),
                         **{k: gate[k] for k in figures}, "example": judged[0]["judgment"],
                         "commit": curves.COMMIT})  # fmt: skip
    return rows


def wording_report(rows: list[dict], folder: Path) -> str:
    lines = ["| family | negatives (constraint only) | wording | gate AUC | precision / recall | "
             "push down / up | example critique |", "|---|---:|---|---:|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['family']} | {r['n_negative']} | {r['wording']} | {r['auc']:.3f} | "
            f"{r['precision']:.2f} / {r['recall']:.2f} | {r['push_down']:.0f} / "
            f"{r['push_up']:.0f} | {r['example'].replace('|', '/')} |"
        )
    text = "\n".join(lines)
    (folder / "wording.md").write_text(text + "\n")
    onpolicy._json(folder / "wording.json", rows)
    return text


def report(results: list[dict], folder: Path) -> str:
    lines = [
        "| family | tasks | records | negatives (content) | base raw | base honest | gate AUC | "
        "precision / recall | push down / up | passed |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in results:
        g = r.get("gate")
        auc = f"{g['auc']:.3f}" if g else "n/a"
        pr = f"{g['precision']:.2f} / {g['recall']:.2f}" if g else ""
        push = f"{g['push_down']:.0f} / {g['push_up']:.0f}" if g else ""
        passed = ("yes" if g["passed"] else "no") if g else "no negatives"
        lines.append(
            f"| {r['family']} | {r['n_tasks']} | {r['n_records']} | {r['n_negative']} "
            f"({r['n_content_negative']}) | {r['base_satisfied']:.3f} | {r['base_honest']:.3f} | "
            f"{auc} | {pr} | {push} | {passed} |"
        )
    text = "\n".join(lines)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gates.md").write_text(text + "\n")
    summary = [{k: v for k, v in r.items() if k not in ("rows", "records")} for r in results]
    onpolicy._json(folder / "gates.json", summary)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/families"))
    parser.add_argument("--results", type=Path, default=Path("benchmarks/families"))
    parser.add_argument("--preset", choices=sorted(curves.PRESETS), default="cpu")
    parser.add_argument("--families", default=",".join(FAMILIES))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    preset = curves.PRESETS[args.preset]
    args.out.mkdir(parents=True, exist_ok=True)
    model, tokenizer = onpolicy._load(preset)
    results = [gate(args.out, preset, f, model, tokenizer) for f in args.families.split(",")]
    print(report(results, args.results))
    print(wording_report(wording_gates(results, preset, model, tokenizer), args.results))


if __name__ == "__main__":
    main()
