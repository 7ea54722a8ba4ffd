"""The report of ``benchmarks/curves/learning_curves.py``: tables and plots of honest and raw
satisfaction against optimizer steps, with intervals, the alignment tax and the wall-clock.

Per condition, arm and budget: seeds, n (answers: seeds x held-out tasks), raw and honest
satisfaction with 95% Wilson intervals, paired bootstrap intervals of the honest difference to
the reference arms at the same budget (tasks resampled, seeds averaged per task; a difference
whose interval holds 0 is a tie) and, in the scarce condition, to the same arm with every
accepted answer (``vs_full``), mean words, the share of degenerate answers (empty, cut off,
repetitive) and of answers that meet the limit but fail the content check, the log-prob of the
base model's honestly accepted held-out answers (the tax), and the training seconds to reach
the budget. The plot per condition: honest satisfaction against steps and against training
seconds (equal wall-clock), and the tax against steps. Partial runs are reported with the seeds
they have.

    python benchmarks/curves/curves_report.py --out runs/curves --results benchmarks/curves
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from cutkit.eval.intervals import paired_bootstrap, wilson

# learning_curves.py lies beside this file; onpolicy_experiment.py in benchmarks/onpolicy/
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "onpolicy"))
import learning_curves as curves
import onpolicy_experiment as onpolicy


def collect(out: Path, preset) -> dict[tuple[str, str], dict[int, list[dict]]]:
    """{(condition, arm): {budget: [held-out evaluation per seed]}} of the finished seeds."""
    found: dict[tuple[str, str], dict[int, list[dict]]] = {}
    base = out / "base" / "heldout.json"
    if base.exists():
        found[("full", "base")] = {0: [_read(base) | {"seed": 0}]}
    for condition in ("full", "scarce"):
        for arm in curves.PRIORITY:
            chosen = out / "full" / arm / "chosen.json"
            if not chosen.exists():
                continue
            lr = json.loads(chosen.read_text())["lr"]
            runs: dict[int, list[dict]] = {}
            for seed in preset.seeds:
                folder = out / condition / arm / f"seed{seed}-lr{lr:g}"
                files = [folder / f"heldout-step{b}.json" for b in preset.budgets]
                if all(f.exists() for f in files):
                    for budget, f in zip(preset.budgets, files, strict=True):
                        runs.setdefault(budget, []).append(_read(f) | {"seed": seed})
            if runs:
                found[(condition, arm)] = runs
    return found


def _read(path: Path) -> dict:
    """One evaluation file, its figures under their current names."""
    return onpolicy.current_names(json.loads(path.read_text()))


def diversity(texts: list[str]) -> tuple[float, float]:
    """(distinct-2, top-phrase share) of one run's answers: unique word bigrams over all bigrams,
    and the share of answers that contain the run's most frequent 4-word phrase. A model that
    answers every topic with one template ("X is a beautiful sight in the sky") passes the content
    check answer by answer; these two figures show it across answers."""
    from collections import Counter

    from cutkit.eval.degeneration import words

    tokens = [words(t) for t in texts]
    bigrams = [tuple(w[i : i + 2]) for w in tokens for i in range(len(w) - 1)]
    distinct = len(set(bigrams)) / len(bigrams) if bigrams else float("nan")
    grams = [{tuple(w[i : i + 4]) for i in range(len(w) - 3)} for w in tokens]
    counts = Counter(g for answer in grams for g in answer)
    top = counts.most_common(1)[0][1] / len(texts) if counts else 0.0
    return distinct, top


def _matrix(runs: list[dict], key: str) -> np.ndarray:
    return np.array([[bool(r[key]) for r in run["rows"]] for run in runs])


def summary(found) -> pd.DataFrame:
    rows = []
    for (condition, arm), by_budget in found.items():
        for budget, runs in sorted(by_budget.items()):
            honest, raw = _matrix(runs, "honest"), _matrix(runs, "satisfied")
            answers = [r for run in runs for r in run["rows"]]
            spread = [diversity([r["response"] for r in run["rows"]]) for run in runs]
            row = {"condition": condition, "arm": arm, "steps": budget, "seeds": len(runs),
                   "n": honest.size}  # fmt: skip
            for name, matrix in (("honest", honest), ("raw", raw)):
                lo, hi = wilson(int(matrix.sum()), matrix.size)
                row |= {name: matrix.mean(), f"{name}_low": lo, f"{name}_high": hi}
            row |= {
                "words": np.mean([r["words"] for r in answers]),
                "degenerate": np.mean([r["degenerate"] is not None for r in answers]),
                "met_limit_unsound": np.mean(
                    [r["satisfied"] and r["content_problem"] is not None for r in answers]
                ),
                "distinct2": np.mean([d for d, _ in spread]),
                "top_phrase": np.mean([t for _, t in spread]),
                "logp_good": np.mean([run.get("logp_good", np.nan) for run in runs]),
                "train_seconds": np.mean([run["train_seconds"] for run in runs]),
                "sampling_share": np.mean(  # GRPO: share of its training time spent sampling
                    [
                        run["run_timing"]["generation_s"] / run["run_timing"]["total_s"]
                        for run in runs
                        if run.get("run_timing")
                    ]
                    or [np.nan]
                ),
                "commit": ",".join(sorted({str(run.get("commit", ""))[:10] for run in runs})),
            }
            for ref in curves.REFERENCES:
                other = found.get((condition if ref != "base" else "full", ref), {})
                ref_runs = other.get(0 if ref == "base" else budget)
                if ref == arm or not ref_runs:
                    continue
                diff, lo, hi = paired_bootstrap(honest, _matrix(ref_runs, "honest"))
                row |= {f"vs_{ref}": diff, f"vs_{ref}_low": lo, f"vs_{ref}_high": hi}
            full_runs = found.get(("full", arm), {}).get(budget)
            if condition != "full" and full_runs:  # the same arm with every accepted answer
                diff, lo, hi = paired_bootstrap(honest, _matrix(full_runs, "honest"))
                row |= {"vs_full": diff, "vs_full_low": lo, "vs_full_high": hi}
            rows.append(row)
    return pd.DataFrame(rows)


def _interval(row, name: str) -> str:
    return f"{row[name]:.3f} [{row[f'{name}_low']:.3f}, {row[f'{name}_high']:.3f}]"


def _versus(row, ref: str) -> str:
    if pd.isna(row.get(f"vs_{ref}", np.nan)):
        return ""
    lo, hi = row[f"vs_{ref}_low"], row[f"vs_{ref}_high"]
    tie = " tie" if lo <= 0 <= hi else ""
    return f"{row[f'vs_{ref}']:+.3f} [{lo:+.3f}, {hi:+.3f}]{tie}"


def markdown(table: pd.DataFrame) -> str:
    refs = list(curves.REFERENCES) + (["full"] if "vs_full" in table else [])
    head = ("| condition | arm | steps | seeds | n | honest [95% CI] | raw [95% CI] | "
            + " | ".join(f"honest vs {r}" for r in refs)
            + " | words | degenerate | met limit, unsound | distinct-2 | top phrase | "
            "logp good | train s |")  # fmt: skip
    lines = [head, "|" + "---|" * (14 + len(refs))]
    for _, row in table.iterrows():
        lines.append(
            f"| {row['condition']} | {row['arm']} | {row['steps']} | {row['seeds']} | "
            f"{row['n']} | {_interval(row, 'honest')} | {_interval(row, 'raw')} | "
            + " | ".join(_versus(row, r) for r in refs)
            + f" | {row['words']:.1f} | {row['degenerate']:.3f} | "
            f"{row['met_limit_unsound']:.3f} | {row['distinct2']:.2f} | {row['top_phrase']:.2f} | "
            f"{row['logp_good']:.2f} | "
            f"{row['train_seconds']:.0f} |"
        )
    return "\n".join(lines)


def validation(out: Path, preset) -> str:
    """Per arm: validation honest satisfaction of each rate tried, per budget, and the choice."""
    lines = ["| arm | lr | " + " | ".join(f"step {b}" for b in preset.budgets)
             + " | mean | chosen |", "|---|---:|" + "---:|" * (len(preset.budgets) + 2)]  # fmt: skip
    for arm in curves.PRIORITY:
        chosen_path = out / "full" / arm / "chosen.json"
        chosen = json.loads(chosen_path.read_text())["lr"] if chosen_path.exists() else None
        for lr in preset.learning_rates:
            folder = out / "full" / arm / f"seed0-lr{lr:g}"
            files = [folder / f"val-step{b}.json" for b in preset.budgets]
            if not all(f.exists() for f in files):
                continue
            rates = [
                np.mean([r["honest"] for r in json.loads(f.read_text())["rows"]]) for f in files
            ]
            mark = "yes" if chosen == lr else ""
            lines.append(f"| {arm} | {lr:g} | " + " | ".join(f"{v:.3f}" for v in rates)
                         + f" | {np.mean(rates):.3f} | {mark} |")  # fmt: skip
    return "\n".join(lines)


def plot(table: pd.DataFrame, path: Path, condition: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = table[table["condition"] == condition]
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(17, 5.4))
    base = table[table["arm"] == "base"]  # the untrained model: the same in every condition
    for arm, group in rows[rows["arm"] != "base"].groupby("arm", sort=False):
        marks = [mark for mark, shown in (
            ("gamed", (group["raw"] - group["honest"]).max() >= 0.2),
            ("template", group["top_phrase"].max() >= 0.3),
        ) if shown]  # fmt: skip
        label = f"{arm} ({', '.join(marks)})" if marks else arm
        err = [group["honest"] - group["honest_low"], group["honest_high"] - group["honest"]]
        line = left.errorbar(group["steps"], group["honest"], yerr=err, capsize=3, marker="o",
                             label=label)  # fmt: skip
        left.plot(group["steps"], group["raw"], linestyle=":", color=line[0].get_color())
        middle.errorbar(group["train_seconds"], group["honest"], yerr=err, capsize=3, marker="o",
                        color=line[0].get_color(), label=arm)  # fmt: skip
        right.plot(group["steps"], group["logp_good"], marker="o", label=arm)
    if len(base):
        for axis in (left, middle):
            axis.axhspan(base["honest_low"].iloc[0], base["honest_high"].iloc[0], color="grey",
                         alpha=0.2, label="base (95% CI)")  # fmt: skip
        right.axhline(base["logp_good"].iloc[0], color="grey", label="base")
    for axis in (left, right):
        if np.isfinite(rows["logp_good"]).any() or axis is left:
            axis.set_xscale("log", base=2)
        axis.set_xlabel("optimizer steps (8 records each)")
    middle.set_xscale("log", base=2)
    steps = sorted(rows.loc[rows["steps"] > 0, "steps"].unique())
    for axis in (left, right):
        axis.set_xticks(steps, [str(b) for b in steps])
    middle.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    middle.set_xlabel("training seconds to reach the budget (one CPU thread)")
    left.set_ylabel("held-out honest satisfaction (dotted: raw)")
    middle.set_ylabel("held-out honest satisfaction")
    left.set_ylim(0, 1)
    middle.set_ylim(0, 1)
    right.set_ylabel("log-prob of accepted held-out answers (tax)")
    for axis in (left, middle, right):  # below each panel, clear of the lines
        axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    figure.suptitle(
        f"Word limits, on-policy judgments ({condition} condition, 95% Wilson intervals)"
    )
    figure.text(0.01, 0.01, "gamed: raw satisfaction >= honest + 0.2 at some budget; template: "
                "one 4-word phrase in >= 30% of the answers at some budget", fontsize=8)  # fmt: skip
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def report(out: Path, results: Path, preset) -> str:
    prepared = json.loads((out / "prepared.json").read_text())
    found = collect(out, preset)
    table = summary(found)
    results.mkdir(parents=True, exist_ok=True)
    table.to_csv(results / "summary.csv", index=False)
    answers = [
        {"condition": c, "arm": a, "steps": b, "seed": run["seed"], **r}
        for (c, a), by_budget in found.items()
        for b, runs in by_budget.items()
        for run in runs
        for r in run["rows"]
    ]
    pd.DataFrame(answers).to_csv(results / "answers.csv", index=False)
    gate = prepared["gate"]
    settings = {k: prepared[k] for k in ("preset", "gate", "n_train_cut_off", "content_negatives",
                                         "commit")}  # fmt: skip
    onpolicy._json(results / "settings.json", settings)
    text = (
        f"Gate (base model, {gate['n_records']} training negatives, {prepared['content_negatives']}"
        f" of them criticised for content): detection AUC {gate['auc']:.3f} (target 0.8: "
        f"{'passed' if gate['passed'] else 'NOT passed'}), push balance down "
        f"{gate['push_down']:.0f} vs up {gate['push_up']:.0f}. Experiment commit "
        f"{prepared['commit'][:10]}.\n\n" + markdown(table)
        + "\n\nValidation (seed 0, honest satisfaction; the grid searched from the top down):\n\n"
        + validation(out, preset) + "\n"
    )  # fmt: skip
    (results / "table.md").write_text(text)
    curves.export_state(out, results / "state.tar.gz")
    for condition in table["condition"].unique():
        plot(table, results / f"curves-{condition}.png", condition)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/curves"))
    parser.add_argument("--results", type=Path, default=Path("benchmarks/curves"))
    parser.add_argument("--preset", choices=sorted(curves.PRESETS), default="cpu")
    args = parser.parse_args(argv)
    print(report(args.out, args.results, curves.PRESETS[args.preset]))


if __name__ == "__main__":
    main()
