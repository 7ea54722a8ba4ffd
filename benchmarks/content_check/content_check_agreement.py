"""How well does the content check (``cutkit.eval.content``) agree with a human reader?

A blind sample of 192 held-out answers of the on-policy experiment (16 per arm, 9 that met the
word limit and 7 that did not where an arm had enough; ``sample_key.csv`` maps each item to its
arm, seed and task) was labelled by hand without the arm in view (``labels.csv``: ``sound`` 1/0,
a reason, a note; the word limit ignored). This script scores the same answers with the content
check and writes the agreement, Cohen's kappa, the confusion matrix and every disagreement:

    python benchmarks/content_check/content_check_agreement.py --results benchmarks/content_check
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

ANSWERS = Path(__file__).resolve().parents[1] / "onpolicy" / "answers.csv"  # benchmarks/onpolicy/


def cohen_kappa(a: pd.Series, b: pd.Series) -> float:
    """Cohen's kappa of two binary labellings of the same items."""
    a, b = a.astype(bool), b.astype(bool)
    observed = float((a == b).mean())
    chance = float(a.mean() * b.mean() + (1 - a.mean()) * (1 - b.mean()))
    return (observed - chance) / (1 - chance) if chance < 1 else 1.0


def scored(results: Path, answers: Path = ANSWERS) -> pd.DataFrame:
    """The labelled sample with the content check's verdict (``rule``: the problem or "")."""
    from cutkit.online.checkers import task_content_problem
    from cutkit.online.generator import TOPICS, word_limit_tasks

    key = pd.read_csv(results / "sample_key.csv")
    labels = pd.read_csv(results / "labels.csv", keep_default_na=False)
    runs = pd.read_csv(answers, keep_default_na=False)
    frame = key.merge(labels, on="item").merge(
        runs[["arm", "seed", "task", "finished", "response"]],
        on=["arm", "seed", "task"],
        suffixes=("", "_run"),
    )
    if len(frame) != len(labels) or not (frame["response"] == frame["response_run"]).all():
        raise ValueError(f"{results}/labels.csv does not match {answers}")
    tasks = {t.instruction: t for t in word_limit_tasks([topic for topic, _ in TOPICS])}
    problems = [
        task_content_problem(tasks[row.instruction], row.response, str(row.finished) == "True")
        for row in frame.itertuples()
    ]
    frame["rule"] = [p or "" for p in problems]
    frame["rule_sound"] = frame["rule"] == ""
    return frame.drop(columns=["response_run"])


def report(results: Path) -> str:
    frame = scored(results)
    human, rule = frame["sound"].astype(int) == 1, frame["rule_sound"]
    agreement, kappa = float((human == rule).mean()), cohen_kappa(human, rule)
    cell = {
        (h, r): int(((human == h) & (rule == r)).sum())
        for h in (True, False)
        for r in (True, False)
    }
    confusion = [
        "| | check: sound | check: not sound |",
        "|---|---:|---:|",
        f"| reader: sound | {cell[True, True]} | {cell[True, False]} |",
        f"| reader: not sound | {cell[False, True]} | {cell[False, False]} |",
    ]
    lines = [
        f"n = {len(frame)} answers (16 per arm x 12 arms); human sound {int(human.sum())}, "
        f"content check sound {int(rule.sum())}.",
        "",
        f"**Agreement {agreement:.3f}, Cohen's kappa {kappa:.3f}.** Of the answers the reader "
        f"rejected, the check rejects {int((~human & ~rule).sum())} of {int((~human).sum())}; "
        f"of those it rejects, the reader rejected {int((~human & ~rule).sum())} of "
        f"{int((~rule).sum())}.",
        "",
        *confusion,
        "",
        "Disagreements (item, reader's reason, check's reason, answer):",
        "",
        "| item | reader | check | answer |",
        "|---|---|---|---|",
    ]
    for row in frame[human != rule].itertuples():
        said = "sound" if row.sound == 1 else row.reason
        text = row.response.replace("\n", " / ").replace("|", "\\|")
        lines.append(f"| {row.item} | {said} | {row.rule or 'sound'} | {text[:120]} |")
    frame.to_csv(results / "scored.csv", index=False)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=Path("benchmarks/content_check"))
    args = parser.parse_args(argv)
    text = report(args.results)
    (args.results / "agreement.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
