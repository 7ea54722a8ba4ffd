"""``chunk_memory_mb`` bounds the chunked output-layer head's measured extra peak memory.

One cell of ``benchmarks/loss_head/bench_loss_head.py`` in a fresh process: forward + backward of the CUT
loss through the chunked, checkpointed head (``chunk_size="auto"``) at V = 128,256 with a
trainable output weight, the worst case (a tied or fully fine-tuned head gets a gradient), on the
doubled batch of 2 x 4 records x 512 tokens. The extra peak is the peak RSS over the step minus
the RSS before it (``benchmarks/loss_head/peak_rss.py``: Linux VmHWM reset through /proc/self/clear_refs,
glibc told to return every block >= 1 MiB at free).

The bound covers what grows with the chunk. Left out, as :func:`cutkit.train.chunked_head.chunk_rows`
says, is what grows with the hidden size H and is as large for any head: the output weight's
gradient (V x H x 4 bytes) and the gradients of the hidden states and of their scored rows
(2 x H x 4 bytes per token). H = 64 keeps those small (33 MB and 2 MB) and the test quick; the
(rows x V) logits are what the bound is about. Measured here: about 157 MB in all, 122-125 MB
without those; the sizing before this test (a chunk of 128 MB of logits, 249 rows) gave 420 MB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cutkit.train.chunked_head import CHUNK_MEMORY_MB, chunk_rows

from ..helpers import BENCHMARKS, REPO, load_benchmark

peak_rss = load_benchmark("loss_head/peak_rss")

VOCAB, HIDDEN, RECORDS, SEQ_LEN = 128_256, 64, 4, 512
TOLERANCE = 0.02
"""Allowed excess over the bound, as a fraction of it: allocator noise (2.6 MB at 128 MB)."""


def measure_extra_peak() -> int:
    """bench_loss_head.py's memory cell for the auto head, in a fresh process: bytes."""
    command = [
        sys.executable,
        str(BENCHMARKS / "loss_head" / "bench_loss_head.py"),
        *("--_memory", "auto", "--_vocab", str(VOCAB), "--_records", str(RECORDS)),
        *("--seq-len", str(SEQ_LEN), "--hidden", str(HIDDEN), "--trainable-head"),
        *("--device", "cpu"),
    ]
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, **peak_rss.MALLOC_ENV, OMP_NUM_THREADS="1", PYTHONPATH=path)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_bytes"]


def test_the_heads_extra_peak_stays_within_chunk_memory_mb():
    reason = peak_rss.unavailable()
    if reason:
        pytest.skip(reason)
    tokens = 2 * RECORDS * SEQ_LEN  # the doubled batch; every position but the first is scored
    weight_gradient = VOCAB * HIDDEN * 4
    hidden_gradients = 2 * tokens * HIDDEN * 4
    bound = CHUNK_MEMORY_MB * 1e6
    peak = measure_extra_peak()
    within = peak - weight_gradient - hidden_gradients  # what the bound covers
    shown = (
        f"extra peak {peak / 1e6:.1f} MB at {chunk_rows(VOCAB)} rows per chunk: "
        f"{within / 1e6:.1f} MB besides the weight's gradient ({weight_gradient / 1e6:.1f} MB) "
        f"and the hidden states' ({hidden_gradients / 1e6:.1f} MB), "
        f"against chunk_memory_mb = {CHUNK_MEMORY_MB:g} MB"
    )
    assert within <= bound * (1 + TOLERANCE), shown
    # and the chunks use most of it: the bound is what sizes them, not a loose ceiling
    assert within >= 0.8 * bound, shown
