"""How long the base model's greedy answers are: the share that FINISH (end with EOS) within L
tokens, per constraint family, and the smallest L at which >= 95% finish in every family (the
online loop's ``max_new_tokens`` default comes from it).

One greedy generation per task at the largest limit gives every smaller limit too: greedy
decoding is deterministic, so an answer that ended with EOS after n <= L tokens at limit 320 is
exactly the answer generated at limit L (same batches, same padding).

Also reported per family: answers the rule of :mod:`cutkit.eval.degeneration` calls repetitive among
those that finished, and the median answer length in tokens.

    python benchmarks/finish_rate/finish_rate.py                      # ~20 minutes on 1 CPU thread
    python benchmarks/finish_rate/finish_rate.py --per-family 10 --limit 128 --out /tmp/finish
    python benchmarks/finish_rate/finish_rate.py --reuse              # tables again from the saved answers
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from cutkit.eval.degeneration import repetition
from cutkit.eval.generation import generate_answers
from cutkit.models.loading import load_model
from cutkit.models.registry import DEFAULT_MODEL
from cutkit.online.generator import generate_tasks
from cutkit.online.tasks import KINDS

LIMITS = (48, 64, 96, 128, 160, 192, 256, 320)
TARGET = 0.95


def tasks_by_family(per_family: int, seed: int) -> list:
    """``per_family`` tasks of every family, in the generator's (family-mixed) order."""
    tasks, counts = [], dict.fromkeys(KINDS, 0)
    for task in generate_tasks(per_family * len(KINDS) * 3, seed):
        if counts[task.family] < per_family:
            counts[task.family] += 1
            tasks.append(task)
    short = {f: n for f, n in counts.items() if n < per_family}
    if short:
        raise RuntimeError(f"too few tasks for {short}")
    return tasks


def choose(rates: dict[str, dict[int, float]], limits, target: float) -> tuple[int, bool]:
    """The smallest limit where every family's finish rate is >= target (else the largest)."""
    for limit in limits:
        if all(by_limit[limit] >= target for by_limit in rates.values()):
            return limit, True
    return limits[-1], False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--template", default="chat")
    parser.add_argument("--per-family", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16, help="the online loop's default")
    parser.add_argument("--limit", type=int, default=LIMITS[-1])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/finish_rate/finish_rate")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="no generation: recompute the tables from the answers saved in OUT.json (same "
        "settings), e.g. after a change of cutkit.eval.degeneration",
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    limits = tuple(sorted({*(x for x in LIMITS if x < args.limit), args.limit}))
    out = Path(args.out)
    if args.reuse:
        saved = json.loads(out.with_suffix(".json").read_text())
        for name in ("model", "template", "per_family", "seed", "batch_size", "limit"):
            if saved[name] != getattr(args, name):
                raise SystemExit(f"--reuse: {out}.json has {name}={saved[name]!r}")
        rows, seconds, machine = saved["answers"], saved["seconds"], saved["machine"]
    else:
        tasks = tasks_by_family(args.per_family, args.seed)
        model, tokenizer = load_model(args.model, device=args.device)
        start = time.perf_counter()
        answers = generate_answers(
            model,
            tokenizer,
            [t.instruction for t in tasks],
            template=args.template,
            max_new_tokens=args.limit,
            batch_size=args.batch_size,
            progress=True,
        )
        seconds = time.perf_counter() - start
        machine = f"{platform.machine()} {platform.processor() or ''}".strip()
        machine += f", torch {torch.__version__}, {args.threads} thread(s), {args.device}"
        rows = [
            {
                "id": t.id,
                "family": t.family,
                "instruction": t.instruction,
                "finished": a.finished,
                "n_tokens": a.n_tokens,
                "text": a.text,
            }
            for t, a in zip(tasks, answers, strict=True)
        ]
    for row in rows:
        row["repetition"] = repetition(row["text"])
    rates: dict[str, dict[int, float]] = {}
    extra: dict[str, dict] = {}
    for family in [*KINDS, "all"]:
        mine = [r for r in rows if family in ("all", r["family"])]
        rates[family] = {
            limit: sum(r["finished"] and r["n_tokens"] <= limit for r in mine) / len(mine)
            for limit in limits
        }
        done = [r for r in mine if r["finished"]]
        extra[family] = {
            "n": len(mine),
            "median_tokens": statistics.median(r["n_tokens"] for r in mine),
            "repetitive_of_finished": (
                sum(r["repetition"] is not None for r in done) / len(done) if done else None
            ),
        }
    unfinished = [r for r in rows if not r["finished"]]
    looping = sum(r["repetition"] is not None for r in unfinished)
    chosen, reached = choose({f: rates[f] for f in KINDS}, limits, TARGET)
    worst = min(KINDS, key=lambda f: rates[f][chosen])
    result = {
        "model": args.model,
        "template": args.template,
        "per_family": args.per_family,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "limit": args.limit,
        "limits": list(limits),
        "target": TARGET,
        "chosen_max_new_tokens": chosen,
        "target_reached": reached,
        "worst_family_at_chosen": [worst, rates[worst][chosen]],
        "all_at_chosen": rates["all"][chosen],
        "finish_rate": {f: {str(k): v for k, v in by.items()} for f, by in rates.items()},
        "families": extra,
        "n_unfinished": len(unfinished),
        "n_unfinished_repetitive": looping,
        "seconds": round(seconds, 1),
        "machine": machine,
        "answers": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")

    head = "| family | " + " | ".join(f"L={x}" for x in limits) + " | median tokens | repetitive* |"
    lines = [head, "|---|" + "---:|" * (len(limits) + 2)]
    for family in [*KINDS, "all"]:
        cells = [f"{rates[family][x]:.0%}" for x in limits]
        rep = extra[family]["repetitive_of_finished"]
        name = f"**{family}**" if family == "all" else family
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {extra[family]['median_tokens']:g} | {'-' if rep is None else f'{rep:.0%}'} |"
        )
    verdict = (
        f"**Chosen default: `max_new_tokens = {chosen}`**, the smallest limit in the grid at which "
        f">= {TARGET:.0%} of the answers finish in every family: at {chosen} tokens "
        f"{rates['all'][chosen]:.1%} of all answers finish, the lowest family is {worst} "
        f"({rates[worst][chosen]:.0%})."
        if reached
        else f"**No limit in the grid reaches {TARGET:.0%} in every family**; the largest "
        f"({chosen}) is taken: {rates['all'][chosen]:.1%} of all answers finish, the lowest "
        f"family is {worst} ({rates[worst][chosen]:.0%})."
    )
    text = "\n".join(
        [
            "# Finish rate of greedy answers by token limit",
            "",
            f"Share of the base model's greedy answers that end with EOS within L new tokens "
            f"(`{args.model}`, {args.template} template, {args.per_family} tasks per constraint "
            f"family from `generate_tasks(seed={args.seed})`, batches of {args.batch_size}, one "
            f"generation at limit {args.limit}; {result['machine']}; {seconds:.0f} s).",
            "Command: `python benchmarks/finish_rate/finish_rate.py`.",
            "",
            *lines,
            "",
            "\\* share of the finished answers that `cutkit.eval.degeneration` calls repetitive.",
            "",
            f"Of the {len(unfinished)} answers still unfinished at {args.limit} tokens, {looping} "
            "are repetitive by `cutkit.eval.degeneration` (loops that a larger limit would not end). "
            "All families together: "
            + ", ".join(f"{rates['all'][x]:.1%} at {x}" for x in limits)
            + ".",
            "",
            verdict,
            "",
        ]
    )
    out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
