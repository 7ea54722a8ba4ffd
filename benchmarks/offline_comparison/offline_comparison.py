"""Offline comparison on the bundled judgments: CUT, its research levers and the baselines, one
epoch over the training split, three seeds, 95% intervals over seeds.

Every arm starts from the default model with a fresh LoRA and gets the same budget: one epoch of
the 356 training records at 8 records per optimizer step (45 steps), lr 1e-3 with cosine decay and
10% warm-up, lambda 1.1, alpha 1.0. The learning rate is the earlier comparison's, fixed before this
run (it was not tuned on the held-out split; there is no budget for a validation sweep here).
Held-out figures are :func:`cutkit.evaluate`'s on the 87 held-out records (62 negatives with a
refinement and gold spans).

Two workers split the arms (one CPU thread each; resumable, seed-major so that partial results hold
whole seeds); ``report`` merges them:

    python benchmarks/offline_comparison/offline_comparison.py worker 0 2 &
    python benchmarks/offline_comparison/offline_comparison.py worker 1 2 &
    python benchmarks/offline_comparison/offline_comparison.py report
"""

from __future__ import annotations

import argparse
from pathlib import Path

ARMS = [
    "cut",
    "cut:unflagged=ignore",
    "hindsight",
    "sft",
    "cut:detector=spans",
    "ul_all",
    "self_distill",
    "kto",
]
"""Interleaved so that two workers (arms 0, 2, 4 and 1, 3, 5) get equal work: each has two
two-context objectives and one cheaper one. The required set (CUT, its two levers, SFT, Hindsight,
unlikelihood on all tokens); the on-policy experiment covers the lever combinations.
``self_distill`` and ``kto`` (the last two) were added later and run in their own worker folders
(``--arms self_distill --tag x``), with the same settings and seeds."""
SEEDS = [0, 1, 2]
FIGURES = [
    "pref_accuracy",
    "pref_margin",
    "logp_bad",
    "logp_good",
    "logp_error_tokens",
    "logp_other_tokens",
    "detect_auc",
    "push_ratio",
]


def settings(output: Path):
    from cutkit.eval.comparison import CompareSettings

    return CompareSettings(template="chat", epochs=1.0, batch_size=8, learning_rate=1e-3,
                           generate=False, packing=True, output=str(output))  # fmt: skip


def worker(
    index: int,
    count: int,
    work: Path,
    arms: list[str] | None = None,
    tag: str = "",
    seeds: list[int] | None = None,
):
    import torch

    import cutkit
    from cutkit.data.bundled import load_bundled_or_path

    torch.set_num_threads(1)
    train = load_bundled_or_path("judgments/train.jsonl")
    test = load_bundled_or_path("judgments/test.jsonl")
    arms = arms or ARMS[:6][index::count]
    folder = work / f"worker{tag}{index}"
    cutkit.compare(arms, train, test, seeds=seeds or SEEDS, settings=settings(folder))


def report(work: Path, results: Path) -> str:
    import pandas as pd

    from cutkit.eval.comparison import save_comparison, summary_markdown

    parts = [pd.read_csv(p) for p in sorted(work.glob("worker*/runs.csv"))]
    frame = pd.concat(parts, ignore_index=True)
    base = frame[frame["objective"] == "base"].head(1)
    frame = pd.concat([base, frame[frame["objective"] != "base"]], ignore_index=True)
    order = ["base", *[a for a in ARMS if a in set(frame["objective"])]]
    frame = frame.set_index("objective").loc[order].reset_index()
    save_comparison(frame, results)
    table = summary_markdown(frame, FIGURES)
    (results / "summary.md").write_text(table + "\n")
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=["worker", "report"])
    parser.add_argument("index", nargs="?", type=int, default=0)
    parser.add_argument("count", nargs="?", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("runs/compare-offline"))
    parser.add_argument(
        "--results", type=Path, default=Path("benchmarks/offline_comparison/compare-offline")
    )
    parser.add_argument("--arms", nargs="+", choices=ARMS, help="these arms (default: a share)")
    parser.add_argument("--tag", default="", help="worker folder worker<TAG><INDEX>")
    parser.add_argument("--seeds", nargs="+", type=int, help="these seeds (default: 0 1 2)")
    args = parser.parse_args(argv)
    if args.stage == "worker":
        worker(args.index, args.count, args.work, args.arms, args.tag, args.seeds)
    else:
        print(report(args.work, args.results))


if __name__ == "__main__":
    main()
