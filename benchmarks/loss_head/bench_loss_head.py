"""Loss head benchmark: extra peak memory against tokens for several vocabularies, three heads.

Every variant starts from the same random hidden states (2R, T, H) of the doubled batch (rows
0..R-1 the first context, R..2R-1 the plain context, as the released code concatenates them), a
random output weight (V, H), random labels, half of the R records negative, and runs forward +
backward of the CUT loss:

- released: what the released code does: logits of every position (2R, T, V) -> fp32 ->
  torch.softmax -> torch.log -> NLLLoss on the first half, probabilities gathered for the
  unlikelihood term (``released_code_step.released_loss`` in ``benchmarks/step/``);
- fixed-1024: ``cutkit.train.logprobs.chunked_label_logprobs`` on the scored rows with 1,024 rows
  per chunk (cutkit's default before the chunk size followed the vocabulary), then
  ``response_logprobs`` and ``cut_loss``;
- auto: the same with ``chunk_size="auto"``, today's default: ``chunk_rows(V)`` rows, as many as
  keep the head's extra peak within ``CHUNK_MEMORY_MB`` = 128 MB (``HEAD_PEAK_CHUNKS`` = 3.25
  chunks of fp32 logits).

Every token is scored in both contexts (no prompt tokens, no dummy rows), so the comparison is of
the head alone; scored tokens = 2R x (T - 1). The output weight is frozen by default (the paper's
LoRA recipe: lm_head gets no gradient); ``--trainable-head`` adds its gradient, V x H x 4 bytes,
the same in every variant.

Memory: on CUDA, torch.cuda.max_memory_allocated() over one step minus the allocation before it.
On CPU, the peak resident set size over one step minus the RSS before it (Linux VmHWM, reset via
/proc/self/clear_refs: ``peak_rss.py``), in a fresh process per (variant, vocabulary, tokens),
after a warm-up step on a small batch, with glibc told to mmap (and so return to the OS at free)
every block >= 1 MiB; it includes the gradient of the hidden states (and of the output weight with
``--trainable-head``). ``tests/train/test_chunked_head_memory.py`` runs one such cell. Released-head runs that would need more than
--max-naive-gb are not run (the estimate is 16 bytes per logit, from the measured runs). Time: the
fixed-1024 and auto heads, interleaved in one process with the default allocator (order alternating
each rep, so load from other processes hits both alike), median of --reps steps after a warm-up.

    python benchmarks/loss_head/bench_loss_head.py --out benchmarks/loss_head/loss_head_cpu
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

# the released code's head is benchmarks/step/released_code_step.py (the step benchmark's folder)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "step"))
from peak_rss import MALLOC_ENV, extra_peak_bytes  # beside this script
from released_code_step import released_loss

from cutkit.train.chunked_head import HEAD_PEAK_CHUNKS
from cutkit.train.logprobs import (
    CHUNK_MEMORY_MB,
    chunk_rows,
    chunked_label_logprobs,
    response_logprobs,
)
from cutkit.train.losses import cut_loss

VARIANTS = ("released", "fixed-1024", "auto")
CHUNK = {"fixed-1024": 1024, "auto": "auto"}
NAIVE_BYTES_PER_LOGIT = 16  # measured: 2.99 GiB at 4,096 x 49,152, 7.53 GiB at 4,096 x 128,256


def naive_step(hidden, weight, labels, negative, threshold=1.1, alpha=1.0):
    """The released code's head: (2R, T, V) fp32 probabilities, log(softmax), NLL + unlikelihood."""
    return released_loss(F.linear(hidden, weight), labels, negative, threshold, alpha)


def cutkit_step(hidden, weight, labels, negative, chunk_size):
    """cutkit: chunked head on the scored rows -> align by response position -> cut_loss."""
    R = labels.shape[0] // 2
    scored = labels[:, 1:] != -100  # (2R, T-1): hidden t predicts label t + 1
    flat = chunked_label_logprobs(  # (N,)
        hidden[:, :-1][scored], weight, labels[:, 1:][scored], chunk_size=chunk_size
    )
    logp = F.pad(flat.new_zeros(scored.shape).masked_scatter(scored, flat), (1, 0))  # (2R, T)
    judged, mask = response_logprobs(logp[:R], labels[:R])  # (R, L)
    plain, _ = response_logprobs(logp[R:], labels[R:])
    return cut_loss(judged, plain, mask, negative).loss


def scored_tokens(records: int, seq_len: int) -> int:
    return 2 * records * (seq_len - 1)


def naive_gb(records: int, seq_len: int, vocab: int) -> float:
    """Estimated extra peak of the released head, in GB: 16 bytes per (2R x T x V) logit."""
    return NAIVE_BYTES_PER_LOGIT * 2 * records * seq_len * vocab / 1e9


def _setup(vocab: int, records: int, seq_len: int, args):
    """Inputs shared by every variant; returns run(variant): one forward + backward."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    R, T, H = records, seq_len, args.hidden
    hidden = torch.randn(2 * R, T, H, device=device, requires_grad=True)
    weight = (torch.randn(vocab, H, device=device) * 0.02).requires_grad_(args.trainable_head)
    labels = torch.randint(0, vocab, (R, T), device=device).repeat(2, 1)  # same response twice
    labels[:, 0] = -100
    negative = torch.arange(R, device=device) % 2 == 0
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def run(variant: str) -> None:  # gradients freshly allocated each step
        hidden.grad = weight.grad = None
        if variant == "released":
            loss = naive_step(hidden, weight, labels, negative)
        else:
            loss = cutkit_step(hidden, weight, labels, negative, CHUNK[variant])
        loss.backward()
        sync()

    return run, device


def memory_worker(variant: str, vocab: int, records: int, args) -> dict:
    """Peak extra memory of one step of one variant, in this fresh process."""
    warm, _ = _setup(vocab, 1, 64, args)
    warm(variant)  # lazy initialisation (threads, kernels) is not counted
    del warm
    run, device = _setup(vocab, records, args.seq_len, args)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run(variant)
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = extra_peak_bytes(lambda: run(variant))  # peak RSS over the step (peak_rss.py)
    return {"variant": variant, "vocab": vocab, "records": records, "peak_bytes": peak}


def time_worker(vocab: int, records: int, args) -> dict:
    """Median step time of fixed-1024 and auto, interleaved (order alternating each rep)."""
    warm, _ = _setup(vocab, 1, 64, args)
    for variant in CHUNK:
        warm(variant)
    del warm
    run, _ = _setup(vocab, records, args.seq_len, args)
    times: dict[str, list[float]] = {variant: [] for variant in CHUNK}
    for rep in range(args.reps):
        for variant in list(CHUNK)[:: 1 if rep % 2 == 0 else -1]:
            t0 = time.perf_counter()
            run(variant)
            times[variant].append(time.perf_counter() - t0)
    return {"vocab": vocab, "records": records, "times_s": times, "loadavg": os.getloadavg()}


def _subprocess(argv: list[str], env: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, *argv]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def plan(args) -> list[tuple[str, int, int]]:
    """The memory runs: auto at every (vocabulary, records); fixed-1024 at --fixed-records only (its
    peak does not depend on tokens beyond one chunk); released wherever it fits --max-naive-gb."""
    runs = []
    for vocab in args.vocab:
        for records in args.records:
            runs.append(("auto", vocab, records))
            if records == args.fixed_records:
                runs.append(("fixed-1024", vocab, records))
            if naive_gb(records, args.seq_len, vocab) <= args.max_naive_gb:
                runs.append(("released", vocab, records))
    return runs


def measure(args, argv: list[str]) -> dict:
    env = dict(os.environ, **MALLOC_ENV)
    memory = []
    for variant, vocab, records in plan(args):
        flags = ["--_memory", variant, "--_vocab", str(vocab), "--_records", str(records)]
        memory.append(_subprocess([*argv, *flags], env))
        print(f"memory {variant} V={vocab} R={records}: {memory[-1]['peak_bytes'] / 1e6:.0f} MB")
    timing = []
    if args.reps > 0:
        for vocab in args.vocab:
            flags = ["--_time", "--_vocab", str(vocab), "--_records", str(args.time_records)]
            timing.append(_subprocess([*argv, *flags]))
            t = {k: statistics.median(v) for k, v in timing[-1]["times_s"].items()}
            print(f"time V={vocab}: {t}")
    return {"memory": memory, "timing": timing}


def _cell(memory: list[dict], variant: str, vocab: int, records: int, args) -> str:
    hit = [
        m for m in memory if (m["variant"], m["vocab"], m["records"]) == (variant, vocab, records)
    ]
    if hit:
        return f"{hit[0]['peak_bytes'] / 1e6:,.0f}"
    if variant == "released":
        return f"not run (would need ~{naive_gb(records, args.seq_len, vocab):.0f} GB)"
    return "not run"


def markdown(results: dict, meta: dict, args) -> str:
    memory, timing = results["memory"], results["timing"]
    head = "trainable (its gradient is counted)" if args.trainable_head else "frozen"
    lines = [
        f"# Loss head benchmark ({meta['device_name']})",
        "",
        f"Command: `{meta['command']}`  ",
        f"torch {meta['torch']}, {meta['threads']} threads, {meta['platform']}  ",
        f"Shape: doubled batch 2 x R records x {args.seq_len} tokens (scored tokens "
        f"2R x {args.seq_len - 1}), hidden {args.hidden}, fp32, output weight {head}; "
        f"auto = chunk_rows(V) rows, sized to keep the head's extra peak within "
        f"CHUNK_MEMORY_MB = {CHUNK_MEMORY_MB:g} MB ({HEAD_PEAK_CHUNKS:g} chunks of fp32 logits).  ",
        f"Memory: {meta['memory_method']}",
        "",
        "## Extra peak memory (MB = 10^6 bytes) against scored tokens",
        "",
        "| vocab | auto rows | scored tokens | released | cutkit fixed 1,024 rows | cutkit auto |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for vocab in args.vocab:
        for records in args.records:
            cells = [_cell(memory, v, vocab, records, args) for v in VARIANTS]
            if cells[1] == "not run":
                cells[1] = f"(R = {args.fixed_records} only)"
            lines.append(
                f"| {vocab:,} | {chunk_rows(vocab)} | {scored_tokens(records, args.seq_len):,} | "
                + " | ".join(cells)
                + " |"
            )
    auto = [m for m in memory if m["variant"] == "auto"]
    if auto:
        worst = max(auto, key=lambda m: m["peak_bytes"])
        lines += [
            "",
            f"Largest auto peak: {worst['peak_bytes'] / 1e6:,.0f} MB (V = {worst['vocab']:,}, "
            f"{scored_tokens(worst['records'], args.seq_len):,} tokens); target: at most "
            f"CHUNK_MEMORY_MB = {CHUNK_MEMORY_MB:g} MB at any vocabulary and number of tokens, "
            "besides the gradients that grow with the hidden size (the output weight's when it "
            "is trained, the hidden states').",
        ]
    if timing:
        lines += [
            "",
            f"## Time: auto against fixed 1,024 rows ({scored_tokens(args.time_records, args.seq_len):,}"
            f" scored tokens, median of {args.reps} interleaved steps, forward + backward)",
            "",
            "| vocab | auto rows | fixed 1,024 s | auto s | time ratio auto / fixed | load average after |",
            "|---:|---:|---:|---:|---:|---|",
        ]
        for t in timing:
            fixed, auto_s = (statistics.median(t["times_s"][k]) for k in CHUNK)
            load = ", ".join(f"{x:.1f}" for x in t["loadavg"])
            lines.append(
                f"| {t['vocab']:,} | {chunk_rows(t['vocab'])} | {fixed:.2f} | {auto_s:.2f} | "
                f"{auto_s / fixed:.2f} | {load} |"
            )
        lines += ["", "Target: time ratio <= 1.1."]
    lines.append("")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--vocab", type=int, nargs="+", default=[32_000, 49_152, 128_256, 256_000])
    p.add_argument(
        "--records", type=int, nargs="+", default=[1, 2, 8], help="R per micro-batch (doubled)"
    )
    p.add_argument("--fixed-records", type=int, default=2, help="R of the fixed-1024 memory run")
    p.add_argument("--seq-len", type=int, default=512, help="tokens per context")
    p.add_argument("--hidden", type=int, default=576, help="hidden size (SmolLM2-135M: 576)")
    p.add_argument("--reps", type=int, default=3, help="timed steps per head (0: no timing)")
    p.add_argument("--time-records", type=int, default=1, help="R of the timed batch")
    p.add_argument("--max-naive-gb", type=float, default=10.0)
    p.add_argument(
        "--trainable-head", action="store_true", help="the output weight gets a gradient"
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", help="write OUT.md and OUT.json")
    p.add_argument("--_memory", help=argparse.SUPPRESS)
    p.add_argument("--_time", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_vocab", type=int, help=argparse.SUPPRESS)
    p.add_argument("--_records", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args._memory:
        print(json.dumps(memory_worker(args._memory, args._vocab, args._records, args)))
        return {}
    if args._time:
        print(json.dumps(time_worker(args._vocab, args._records, args)))
        return {}
    started = time.perf_counter()
    results = measure(args, argv)
    cuda = args.device.startswith("cuda")
    meta = {
        "command": "python benchmarks/loss_head/bench_loss_head.py " + " ".join(argv),
        "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name() if cuda else f"CPU, {os.cpu_count()} cores",
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "memory_method": (
            "torch.cuda.max_memory_allocated() over one step minus memory_allocated() before it"
            if cuda
            else "peak RSS over one step minus RSS before it (VmHWM reset via "
            "/proc/self/clear_refs), fresh process per cell, after a warm-up step on a small "
            "batch, MALLOC_MMAP_THRESHOLD_=1 MiB; includes the hidden states' gradient"
        ),
        "args": {k: v for k, v in vars(args).items() if not k.startswith("_")},
        "chunk_memory_mb": CHUNK_MEMORY_MB,
        "chunk_rows": {v: chunk_rows(v) for v in args.vocab},
        "wall_s": round(time.perf_counter() - started, 1),
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    table = markdown(results, meta, args)
    print(table)
    if args.out:
        with open(args.out + ".md", "w") as f:
            f.write(table)
        with open(args.out + ".json", "w") as f:
            json.dump({"meta": meta, **results}, f, indent=2)
    return {"meta": meta, **results}


if __name__ == "__main__":
    main()
