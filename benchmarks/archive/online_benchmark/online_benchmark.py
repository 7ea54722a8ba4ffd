"""Online alignment benchmark: base model -> N rounds of CUT, SFT (rejection sampling) and
Hindsight, each over several seeds, with the rule judge; the metric is the held-out
constraint-satisfaction rate of greedy answers after every round (round 0 = the base model).

Every (objective, seed) is one resumable :func:`cutkit.online.loop.run_online` run directory under
``--runs-dir``, so an interrupted benchmark started again continues where it stopped. Writes
``<out>.csv`` (one row per objective, seed and round), ``<out>.md`` (mean and spread over seeds,
the settings and the machine), ``<out>.json`` and ``<out>.png`` (satisfaction rate per round).

    python benchmarks/archive/online_benchmark/online_benchmark.py      # default model, 3 x 3 runs
    python benchmarks/archive/online_benchmark/online_benchmark.py --model tiny --rounds 1 --seeds 0 \\
        --instructions-per-round 6 --heldout 4 --max-new-tokens 8 --out /tmp/online_smoke
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import pandas as pd
import torch

from cutkit.models.registry import DEFAULT_MODEL
from cutkit.online.config import ONLINE_OBJECTIVES, OnlineConfig, summary_row
from cutkit.online.loop import run_online


def tiny_checkpoint(folder: Path) -> Path:
    """The tiny random model with the real tokenizer, saved once as a checkpoint folder."""
    from cutkit.models.loading import load_tokenizer
    from cutkit.models.tiny import tiny_model

    if not (folder / "config.json").exists():
        tiny_model().save_pretrained(folder)
        load_tokenizer().save_pretrained(folder)
    return folder


def run_all(args: argparse.Namespace) -> pd.DataFrame:
    """Run (or resume) every objective x seed; returns one row per objective, seed and round."""
    runs_dir = Path(args.runs_dir)
    model = args.model
    if model == "tiny":
        model = str(tiny_checkpoint(runs_dir / "tiny-ckpt"))
    rows = []
    for objective in args.objectives:
        for seed in args.seeds:
            start = time.perf_counter()
            config = OnlineConfig(
                model=model,
                output_dir=str(runs_dir / f"{objective}-seed{seed}"),
                rounds=args.rounds,
                instructions_per_round=args.instructions_per_round,
                heldout=args.heldout,
                objective=objective,
                seed=seed,
                max_new_tokens=args.max_new_tokens,
                truncated=args.truncated,
                epochs=args.epochs,
                learning_rate=args.learning_rate,
                batch_size=args.batch_size,
                device=args.device,
                show_progress=not args.quiet,
            )
            print(f"== {objective}, seed {seed}: {config.output_dir}", flush=True)
            run = run_online(config)
            for metrics in run.metrics:
                seconds = metrics.get("seconds", {})
                rows.append(
                    {
                        "objective": objective,
                        "seed": seed,
                        **summary_row(metrics),
                        "round_seconds": round(sum(seconds.values()), 1),
                    }
                )
            print(f"   {time.perf_counter() - start:.0f} s this invocation", flush=True)
    return pd.DataFrame(rows)


def summarise(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Objective x round table of ``mean ± sd (n)`` over seeds for ``column``."""
    grouped = frame.dropna(subset=[column]).groupby(["objective", "round"])[column]
    stats = grouped.agg(["mean", "std", "count"]).reset_index()

    def cell(row) -> str:
        spread = "" if pd.isna(row["std"]) else f" ± {row['std']:.3f}"
        return f"{row['mean']:.3f}{spread} ({int(row['count'])})"

    stats["cell"] = stats.apply(cell, axis=1)
    table = stats.pivot(index="objective", columns="round", values="cell")
    table.columns = [f"round {r}" for r in table.columns]
    return table


def markdown(table: pd.DataFrame) -> str:
    header = "| objective | " + " | ".join(table.columns) + " |"
    lines = [header, "|" + "---|" * (len(table.columns) + 1)]
    for objective, row in table.iterrows():
        lines.append(f"| {objective} | " + " | ".join(str(v) for v in row.fillna("")) + " |")
    return "\n".join(lines)


def plot(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for objective, group in frame.groupby("objective"):
        stats = group.groupby("round")["satisfaction_rate"].agg(["mean", "std"])
        ax.errorbar(
            stats.index,
            stats["mean"],
            yerr=stats["std"].fillna(0),
            marker="o",
            capsize=3,
            label=objective,
        )
    ax.set_xlabel("round (0 = base model)")
    ax.set_ylabel("held-out constraint satisfaction")
    ax.set_xticks(sorted(frame["round"].unique()))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="'tiny' or a model name/path")
    parser.add_argument(
        "--objectives",
        type=lambda s: s.split(","),
        default=list(ONLINE_OBJECTIVES),
        help="comma-separated",
    )
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instructions-per-round", type=int, default=64)
    parser.add_argument("--heldout", type=int, default=60)
    parser.add_argument("--max-new-tokens", type=int, default=OnlineConfig().max_new_tokens)
    parser.add_argument("--truncated", choices=["drop", "keep"], default="drop")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default=None)
    parser.add_argument("--runs-dir", default="runs/online-benchmark")
    parser.add_argument("--out", default="benchmarks/archive/online_benchmark/online_cpu")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (use 1 when another process shares the cores: oversubscribed "
        "threads made generation ~30x slower on a shared 2-core machine)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for objective in args.objectives:
        if objective not in ONLINE_OBJECTIVES:
            parser.error(f"--objectives: {objective!r} is not one of {ONLINE_OBJECTIVES}")

    start = time.perf_counter()
    frame = run_all(args)
    elapsed = time.perf_counter() - start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out.with_suffix(".csv"), index=False)
    plot(frame, out.with_suffix(".png"))
    satisfaction = summarise(frame, "satisfaction_rate")
    accept = summarise(frame[frame["round"] > 0], "accept_rate")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, {device}"
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "runs_dir", "quiet")}
    (out.with_suffix(".json")).write_text(
        json.dumps(
            {
                "settings": settings,
                "machine": machine,
                "torch": torch.__version__,
                "seconds": round(elapsed, 1),
            },
            indent=1,
        )
    )
    command = "python benchmarks/archive/online_benchmark/online_benchmark.py " + " ".join(
        f"--{k.replace('_', '-')} {','.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in settings.items()
        if v is not None
    )
    out.with_suffix(".md").write_text(
        "# Online alignment: held-out constraint satisfaction per round\n\n"
        f"`{command}`\n\n"
        "Rule judge; round 0 is the base model; mean ± sd over seeds (number of seeds). "
        "Each round answers new instructions greedily, judges them, trains a fresh LoRA on the "
        "merged model of the previous round and evaluates greedy answers to the fixed "
        f"held-out tasks.\n\n{markdown(satisfaction)}\n\n"
        f"Share of the round's own responses the judge accepted (before training):\n\n"
        f"{markdown(accept)}\n\n"
        f"![satisfaction per round]({out.with_suffix('.png').name})\n\n"
        f"{machine}, torch {torch.__version__}; {elapsed / 60:.1f} min in this invocation\n"
    )
    print(markdown(satisfaction))
    return frame


if __name__ == "__main__":
    main()
