"""The answers behind the learning curves' figures, read blind.

Honest satisfaction (the limit met by an answer that passes ``cutkit.eval.content``) judges one
answer at a time by rules on words; it cannot see an answer that is sound in form and nonsense in
meaning ("Tigers are the only lions that can fly."). This benchmark puts a reader beside it where
the figures are reported: a uniform sample of each arm's held-out answers at one budget (48 steps
by default; all seeds, ``benchmarks/curves/answers.csv``) and of the base model's, shuffled and
shown with the instruction only (``sheet.csv``; ``sample_key.csv`` maps items to arms and the
budget), labelled ``sound`` 1/0 with a reason by the protocol of ``benchmarks/content_check/``
(``labels.csv``). The report gives,
per arm, the reader's honest satisfaction (the limit met, by the rule checker, *and* sound to the
reader) beside the content check's on the same answers, with 95% Wilson intervals, and the
agreement of the two.

    python benchmarks/reader_check/reader_check.py sample --results benchmarks/reader_check
    python benchmarks/reader_check/reader_check.py report --results benchmarks/reader_check
    python benchmarks/reader_check/reader_check.py sample --steps 24 \
        --results benchmarks/reader_check/step24
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from cutkit.eval.intervals import newcombe, wilson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "content_check"))
from content_check_agreement import cohen_kappa

ANSWERS = Path(__file__).resolve().parents[1] / "curves" / "answers.csv"
ARMS = ("base", "cut", "cut-ignore-noN", "sft", "kto", "grpo")
"""The base model and the arms of the curves with three seeds at 48 steps."""
REFERENCES = ("cut-ignore-noN", "sft")
"""Arms every other arm's reader honest satisfaction is compared with (Newcombe intervals: the
samples are different answers, so the difference is unpaired)."""
PER_ARM = 40
STEPS = 48
"""The budget sampled by default (optimizer steps)."""
SEED = 20261207


def sample(
    results: Path, answers: Path = ANSWERS, per_arm: int = PER_ARM, steps: int = STEPS
) -> pd.DataFrame:
    """Draw ``per_arm`` answers per arm (the base model's at 0 steps, the others' at ``steps``,
    seeds pooled), shuffle them, and write ``sample_key.csv`` (item -> arm, steps, seed, task)
    and the blind ``sheet.csv`` (item, instruction, response)."""
    runs = pd.read_csv(answers, keep_default_na=False)
    runs = runs[runs["condition"] == "full"]
    drawn = []
    for arm in ARMS:
        pool = runs[(runs["arm"] == arm) & (runs["steps"] == (0 if arm == "base" else steps))]
        if len(pool) < per_arm:
            raise ValueError(
                f"{answers}: {arm} has {len(pool)} answers at {steps} steps, fewer than {per_arm}"
            )
        drawn.append(pool.sample(per_arm, random_state=SEED))
    frame = pd.concat(drawn).sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    frame["item"] = [f"r{i:03d}" for i in range(len(frame))]
    results.mkdir(parents=True, exist_ok=True)
    frame[["item", "arm", "steps", "seed", "task"]].to_csv(results / "sample_key.csv", index=False)
    frame[["item", "instruction", "response"]].to_csv(results / "sheet.csv", index=False)
    return frame


def scored(results: Path, answers: Path = ANSWERS) -> pd.DataFrame:
    """The labelled sample joined with the runs' verdicts (``satisfied``, ``honest``); refuses
    labels that miss an item or a sheet whose answers are not the runs'."""
    key = pd.read_csv(results / "sample_key.csv").merge(
        pd.read_csv(results / "sheet.csv", keep_default_na=False), on="item"
    )
    labels = pd.read_csv(results / "labels.csv", keep_default_na=False)
    runs = pd.read_csv(answers, keep_default_na=False)
    runs = runs[runs["condition"] == "full"]
    frame = key.merge(labels, on="item").merge(
        runs[
            ["arm", "steps", "seed", "task", "response", "satisfied", "honest", "content_problem"]
        ],
        on=["arm", "steps", "seed", "task"],
        suffixes=("", "_run"),
    )
    if len(frame) != len(key) or not (frame["response"] == frame["response_run"]).all():
        raise ValueError(f"{results}/labels.csv does not match the sample and {answers}")
    for column in ("satisfied", "honest"):
        frame[column] = frame[column].astype(str) == "True"
    frame["sound"] = frame["sound"].astype(int) == 1
    frame["reader_honest"] = frame["satisfied"] & frame["sound"]
    return frame.drop(columns=["response_run"])


def relabelled(frame: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """The answers two scored samples (:func:`scored`) share (the base model's are drawn alike at
    every budget), with both labels (``sound``, ``sound_other``): the reader's consistency with
    itself."""
    keys = ["arm", "steps", "seed", "task"]
    both = frame.merge(other, on=keys, suffixes=("", "_other"))
    return both[[*keys, "response", "sound", "sound_other", "reason", "reason_other"]]


def _rate(values: pd.Series) -> str:
    low, high = wilson(int(values.sum()), len(values))
    return f"{values.mean():.3f} [{low:.3f}, {high:.3f}]"


def report(results: Path, answers: Path = ANSWERS, compare: Path | None = None) -> str:
    """The markdown report (module docstring); with ``compare``, another labelled sample, also
    the reader's agreement with itself on the answers both samples hold."""
    frame = scored(results, answers)
    steps = int(frame.loc[frame["arm"] != "base", "steps"].iloc[0])
    per_arm = int(frame["arm"].value_counts().iloc[0])
    lines = [
        f"n = {len(frame)} answers ({per_arm} per arm, uniform over seeds and tasks; arms at "
        f"{steps} steps, the base model untrained). Honest: the limit met and the content check "
        "passed; reader honest: the limit met and sound to the reader.",
        "",
        "| arm | n | met the limit | honest (check) [95% CI] | reader honest [95% CI] | "
        + "".join(f"reader honest vs {ref} | " for ref in REFERENCES)
        + "met the limit, check sound, reader not | agreement on the met ones | top reasons |",
        "|---|---:|---:|---|---|" + "---|" * len(REFERENCES) + "---:|---:|---|",
    ]
    for arm in ARMS:
        rows = frame[frame["arm"] == arm]
        met = rows[rows["satisfied"]]
        fooled = int((met["honest"] & ~met["sound"]).sum())
        agree = float((met["honest"] == met["sound"]).mean()) if len(met) else np.nan
        reasons = rows.loc[~rows["sound"], "reason"].value_counts().head(2)
        top = ", ".join(f"{r} {c}" for r, c in reasons.items())
        versus = ""
        for ref in REFERENCES:
            other = frame.loc[frame["arm"] == ref, "reader_honest"]
            if ref == arm:
                versus += " |"
                continue
            diff, low, high = newcombe(int(rows["reader_honest"].sum()), len(rows),
                                       int(other.sum()), len(other))  # fmt: skip
            tie = " tie" if low <= 0 <= high else ""
            versus += f" {diff:+.3f} [{low:+.3f}, {high:+.3f}]{tie} |"
        lines.append(
            f"| {arm} | {len(rows)} | {len(met)} | {_rate(rows['honest'])} | "
            f"{_rate(rows['reader_honest'])} |{versus} {fooled} | {agree:.2f} | {top} |"
        )
    met = frame[frame["satisfied"]]
    kappa = cohen_kappa(met["honest"], met["sound"])
    lines += [
        "",
        f"On the {len(met)} answers that met the limit, the content check and the reader agree on "
        f"{float((met['honest'] == met['sound']).mean()):.3f} (Cohen's kappa {kappa:.3f}).",
        "",
    ]
    if compare is not None:
        again = relabelled(frame, scored(compare, answers))
        same = int((again["sound"] == again["sound_other"]).sum())
        lines += [
            f"The reader labelled {len(again)} answers in both this sample and {compare.name}'s "
            f"(separately, blind to the arm): the same label on {same} of {len(again)}.",
            "",
        ]
    lines += [
        "Answers that met the limit where the two disagree (item, arm, reader, check, answer):",
        "",
        "| item | arm | reader | check | answer |",
        "|---|---|---|---|---|",
    ]
    for row in met[met["honest"] != met["sound"]].itertuples():
        said = "sound" if row.sound else row.reason
        text = row.response.replace("\n", " / ").replace("|", "\\|")
        lines.append(
            f"| {row.item} | {row.arm} | {said} | {row.content_problem or 'sound'} | {text[:100]} |"
        )
    frame.to_csv(results / "scored.csv", index=False)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=["sample", "report"])
    parser.add_argument("--results", type=Path, default=Path("benchmarks/reader_check"))
    parser.add_argument("--steps", type=int, default=STEPS, help="The budget to sample (sample).")
    parser.add_argument("--compare", type=Path, default=None,
                        help="Another labelled sample (report): the reader's agreement with "
                        "itself on the answers both hold.")  # fmt: skip
    args = parser.parse_args(argv)
    if args.stage == "sample":
        frame = sample(args.results, steps=args.steps)
        print(f"{len(frame)} answers drawn; label {args.results / 'sheet.csv'} into labels.csv")
        return
    text = report(args.results, compare=args.compare)
    (args.results / "reading.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
