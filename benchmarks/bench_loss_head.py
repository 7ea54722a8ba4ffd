"""Loss head benchmark: cutkit's chunked label log-probs + cut_loss vs the released code's head.

Both variants start from the same random hidden states (2R, T, H) of the doubled batch (rows 0..R-1
the first context, R..2R-1 the plain context, as the released code concatenates them), a random
output weight (V, H), random labels, half of the R records negative, and run forward + backward:

- naive: what the released code does: logits of every position (2R, T, V) -> fp32 ->
  torch.softmax -> torch.log -> NLLLoss on the first half, probabilities gathered for the
  unlikelihood term (ratio > threshold, log(1 - p) with +1e-5 where 1 - p == 0);
- cutkit: ``cutkit.train.logprobs.chunked_label_logprobs`` on the scored rows (the code label_logprobs
  runs after the decoder body), ``response_logprobs`` to align the contexts, ``cut_loss``.

Every token is scored in both (no prompt tokens, no dropped dummy rows), so the comparison is of
the head alone; in real use cutkit also skips prompt positions and the plain context of positives.

Memory: on CUDA, torch.cuda.max_memory_allocated() over one step minus the allocation before it.
On CPU, the peak resident set size over one step minus the RSS before it (Linux VmHWM, reset via
/proc/self/clear_refs), in a fresh process per variant, after one warm-up step, with glibc told to
mmap (and so return to the OS at free) every block >= 1 MiB; this includes the gradients of the
hidden states and weight that both variants produce. Time: median wall time of --reps steps, the
two variants interleaved in one process with the default allocator (so load from other processes
on the machine hits both alike).

    python benchmarks/bench_loss_head.py --seq-len 512 --out benchmarks/results/loss_head_cpu
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from released_step import released_loss

from cutkit.train.logprobs import chunked_label_logprobs, response_logprobs
from cutkit.train.losses import cut_loss


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


def _vm_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        status = f.read()
    return int(re.search(rf"{field}:\s+(\d+)", status).group(1))


def _setup(vocab: int, args):
    """Inputs shared by both variants: hidden (2R, T, H), weight (V, H), labels (2R, T), (R,)."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    R, T, H = args.rows, args.seq_len, args.hidden
    hidden = torch.randn(2 * R, T, H, device=device, requires_grad=True)
    weight = (torch.randn(vocab, H, device=device) * 0.02).requires_grad_(not args.frozen_head)
    labels = torch.randint(0, vocab, (R, T), device=device).repeat(2, 1)  # same response twice
    labels[:, 0] = -100
    negative = torch.arange(R, device=device) % 2 == 0
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    steps = {
        "naive": lambda: naive_step(hidden, weight, labels, negative),
        "cutkit": lambda: cutkit_step(hidden, weight, labels, negative, args.chunk_size),
    }

    def run(impl: str) -> None:  # one forward + backward, gradients freshly allocated
        hidden.grad = weight.grad = None
        steps[impl]().backward()
        sync()

    return run, device


def memory_worker(impl: str, vocab: int, args) -> dict:
    """Peak memory of one step of one variant, in this fresh process (after one warm-up step)."""
    run, device = _setup(vocab, args)
    run(impl)  # warm-up: lazy initialisation is not counted
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run(impl)
        peak = torch.cuda.max_memory_allocated() - base
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        base = _vm_kib("VmRSS") * 1024
        run(impl)
        peak = _vm_kib("VmHWM") * 1024 - base
    return {"impl": impl, "vocab": vocab, "peak_bytes": peak}


def time_worker(vocab: int, args) -> dict:
    """Median step time of both variants, interleaved so load from other processes hits both."""
    run, _ = _setup(vocab, args)
    times: dict[str, list[float]] = {"naive": [], "cutkit": []}
    for impl in times:
        run(impl)  # warm-up
    for _ in range(args.reps):
        for impl, ts in times.items():
            t0 = time.perf_counter()
            run(impl)
            ts.append(time.perf_counter() - t0)
    return {"vocab": vocab, "times_s": times, "loadavg": os.getloadavg()}


def _subprocess(argv: list[str], env: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, *argv]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(vocab: int, argv: list[str]) -> list[dict]:
    """Memory: one fresh process per variant (glibc mmaps blocks >= 1 MiB, so RSS follows the
    live tensors); time: one process with the default allocator running both variants."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="1048576", MALLOC_TRIM_THRESHOLD_="0")
    rows = []
    for impl in ("naive", "cutkit"):
        rows.append(_subprocess([*argv, "--_memory", impl, "--_vocab", str(vocab)], env))
    timed = _subprocess([*argv, "--_time", "--_vocab", str(vocab)])
    for row in rows:
        row["times_s"] = timed["times_s"][row["impl"]]
        row["time_s"] = statistics.median(row["times_s"])
        row["loadavg_after"] = timed["loadavg"]
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    gib = 2**30
    lines = [
        f"# Loss head benchmark ({meta['device_name']})",
        "",
        f"Command: `{meta['command']}`  ",
        f"torch {meta['torch']}, {meta['threads']} threads, {meta['platform']}  ",
        f"Shape: doubled batch 2 x {meta['rows']} rows x {meta['seq_len']} tokens, hidden "
        f"{meta['hidden']}, fp32, chunk_size {meta['chunk_size']}, "
        f"output weight {'frozen' if meta['frozen_head'] else 'trainable'}, "
        f"median of {meta['reps']} interleaved steps (forward + backward); "
        f"load average after timing: {meta['loadavg']}.  ",
        f"Memory: {meta['memory_method']}",
        "",
        "| vocab | naive peak GiB | cutkit peak GiB | memory ratio | naive s | cutkit s | time ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for vocab in sorted({r["vocab"] for r in rows}):
        n = next(r for r in rows if r["vocab"] == vocab and r["impl"] == "naive")
        c = next(r for r in rows if r["vocab"] == vocab and r["impl"] == "cutkit")
        lines.append(
            f"| {vocab:,} | {n['peak_bytes'] / gib:.2f} | {c['peak_bytes'] / gib:.2f} | "
            f"{c['peak_bytes'] / n['peak_bytes']:.3f} | {n['time_s']:.2f} | {c['time_s']:.2f} | "
            f"{c['time_s'] / n['time_s']:.2f} |"
        )
    lines += ["", "Targets: memory ratio <= 0.25, time ratio <= 1.3.", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--vocab", type=int, nargs="+", default=[49_152, 128_256])
    p.add_argument("--hidden", type=int, default=576, help="hidden size (SmolLM2-135M: 576)")
    p.add_argument("--rows", type=int, default=4, help="records per micro-batch (doubled inside)")
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--chunk-size", type=int, default=1024)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--frozen-head", action="store_true", help="no gradient for the output weight")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", help="write OUT.md and OUT.json")
    p.add_argument("--_memory", help=argparse.SUPPRESS)
    p.add_argument("--_time", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_vocab", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._memory:
        print(json.dumps(memory_worker(args._memory, args._vocab, args)))
        return
    if args._time:
        print(json.dumps(time_worker(args._vocab, args)))
        return
    argv = sys.argv[1:]
    rows = [row for v in args.vocab for row in measure(v, argv)]
    cuda = args.device.startswith("cuda")
    meta = {
        "command": "python benchmarks/bench_loss_head.py " + " ".join(argv),
        "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name() if cuda else f"CPU, {os.cpu_count()} cores",
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "memory_method": (
            "torch.cuda.max_memory_allocated() over one step minus memory_allocated() before it"
            if cuda
            else "peak RSS over one step minus RSS before it (VmHWM reset via "
            "/proc/self/clear_refs), fresh process per variant, after a warm-up step, "
            "MALLOC_MMAP_THRESHOLD_=1 MiB; includes the hidden/weight gradients"
        ),
        **{k: getattr(args, k) for k in ("rows", "seq_len", "hidden", "chunk_size", "reps")},
        "frozen_head": args.frozen_head,
        "loadavg": [round(x, 2) for r in rows[-1:] for x in r["loadavg_after"]],
    }
    table = markdown(rows, meta)
    print(table)
    if args.out:
        with open(args.out + ".md", "w") as f:
            f.write(table)
        with open(args.out + ".json", "w") as f:
            json.dump({"meta": meta, "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
