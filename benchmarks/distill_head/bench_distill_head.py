"""Self-distillation head benchmark: cutkit's chunked divergence vs the full-logits computation.

Inputs: random hidden rows of N response tokens in two contexts (student = plain prompt with
gradient, teacher = judged prompt, detached), hidden 576 (SmolLM2-135M), a trainable output
weight (V, H). One forward + backward of the per-token divergence T^2 KL(q || p), summed:

- full: (N, V) logits of both contexts at once, log_softmax, KL, what a direct implementation does;
- cutkit: ``cutkit.train.distill.chunked_divergence`` with ``--chunk-size`` rows per chunk;
- cut head (time only): CUT's own head on the same rows (``chunked_label_logprobs`` of both
  contexts + ``cut_loss``), so the table gives self-distillation's head cost relative to CUT's.

Memory: peak RSS over one step minus the RSS before it (VmHWM reset through
/proc/self/clear_refs), a fresh process per variant and N, after a warm-up step, glibc told to
mmap every block >= 1 MiB (so freed tensors leave the RSS), as in
``benchmarks/loss_head/bench_loss_head.py``.

    python benchmarks/distill_head/bench_distill_head.py --out benchmarks/distill_head/distill_head_cpu
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

# the memory probe is shared with the loss head's benchmark (benchmarks/loss_head/peak_rss.py)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "loss_head"))
from peak_rss import MALLOC_ENV, extra_peak_bytes

from cutkit.train.distill import chunked_divergence
from cutkit.train.logprobs import chunked_label_logprobs
from cutkit.train.losses import cut_loss


def full_divergence(student, teacher, weight):
    """(N, V) logits of both contexts -> sum over rows of KL(q || p), written out directly."""
    log_p = torch.log_softmax(F.linear(student, weight), dim=-1)
    with torch.no_grad():
        log_q = torch.log_softmax(F.linear(teacher, weight), dim=-1)
    return (log_q.exp() * (log_q - log_p)).sum()


def _setup(n: int, args):
    torch.manual_seed(0)
    student = torch.randn(n, args.hidden, requires_grad=True)
    teacher = torch.randn(n, args.hidden)
    weight = (torch.randn(args.vocab, args.hidden) * 0.02).requires_grad_()
    labels = torch.randint(0, args.vocab, (n,))
    project = lambda rows: F.linear(rows, weight)  # noqa: E731
    steps = {
        "full": lambda: full_divergence(student, teacher, weight),
        "cutkit": lambda: chunked_divergence(
            project, student, teacher, chunk_size=args.chunk_size
        ).sum(),
        "cut_head": lambda: _cut_head(student, teacher, weight, labels, args.chunk_size),
    }

    def run(impl: str) -> None:
        student.grad = weight.grad = None
        steps[impl]().backward()

    return run


def _cut_head(student, teacher, weight, labels, chunk_size):
    """CUT's head on the same rows: label log-probs of both contexts, then cut_loss (one
    negative response of N tokens)."""
    rows = torch.cat([teacher.requires_grad_(), student])
    logp = chunked_label_logprobs(rows, weight, labels.repeat(2), chunk_size=chunk_size)
    judged, plain = logp.view(2, 1, -1)
    mask = torch.ones_like(judged, dtype=torch.bool)
    return cut_loss(judged, plain, mask, torch.tensor([True])).loss


def memory_worker(impl: str, n: int, args) -> dict:
    run = _setup(n, args)
    run(impl)  # warm-up
    return {"impl": impl, "n": n, "peak_bytes": extra_peak_bytes(lambda: run(impl))}


def time_worker(n: int, args) -> dict:
    run = _setup(n, args)
    times: dict[str, list[float]] = {"full": [], "cutkit": [], "cut_head": []}
    for impl in times:
        run(impl)
    for _ in range(args.reps):
        for impl, ts in times.items():
            t0 = time.perf_counter()
            run(impl)
            ts.append(time.perf_counter() - t0)
    return {"n": n, "time_s": {k: statistics.median(v) for k, v in times.items()}}


def _child(argv: list[str], env=None) -> dict:
    cmd = [sys.executable, __file__, *argv]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokens", type=int, nargs="+", default=[1024, 4096, 8192])
    p.add_argument("--vocab", type=int, default=49_152)
    p.add_argument("--hidden", type=int, default=576)
    p.add_argument("--chunk-size", type=int, default=1024)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--out", help="write OUT.md and OUT.json")
    p.add_argument("--_memory", help=argparse.SUPPRESS)
    p.add_argument("--_time", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_n", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._memory:
        print(json.dumps(memory_worker(args._memory, args._n, args)))
        return
    if args._time:
        print(json.dumps(time_worker(args._n, args)))
        return
    argv = sys.argv[1:]
    env = dict(os.environ, **MALLOC_ENV)
    rows = []
    for n in args.tokens:
        memory = {
            impl: _child([*argv, "--_memory", impl, "--_n", str(n)], env)["peak_bytes"]
            for impl in ("full", "cutkit")
        }
        timed = _child([*argv, "--_time", "--_n", str(n)])["time_s"]
        rows.append({"n": n, "peak_bytes": memory, "time_s": timed})
        print(json.dumps(rows[-1]), flush=True)
    gib, mib = 2**30, 2**20
    bound = 4 * args.chunk_size * args.vocab * 4
    lines = [
        "# Self-distillation head: chunked vs full logits (CPU)",
        "",
        f"Command: `python benchmarks/distill_head/bench_distill_head.py {' '.join(argv)}`  ",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.platform()}  ",
        f"Vocabulary {args.vocab:,}, hidden {args.hidden}, fp32, chunk_size {args.chunk_size}, "
        f"trainable output weight, median of {args.reps} interleaved steps (forward + backward). "
        f"Memory: peak RSS over one step minus RSS before it, fresh process per cell. The chunk "
        f"bound, 4 x chunk_size x V x 4 bytes, is {bound / mib:.0f} MiB.",
        "",
        "| response tokens N | full peak GiB | cutkit peak GiB | full s | cutkit s | "
        "CUT head s | cutkit / CUT head |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        m, t = r["peak_bytes"], r["time_s"]
        lines.append(
            f"| {r['n']:,} | {m['full'] / gib:.2f} | {m['cutkit'] / gib:.2f} | {t['full']:.2f} | "
            f"{t['cutkit']:.2f} | {t['cut_head']:.2f} | {t['cutkit'] / t['cut_head']:.2f} |"
        )
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(f"{args.out}.md", "w") as f:
            f.write(text)
        with open(f"{args.out}.json", "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
