"""The chunked output-layer head, an op of its own: (N, H) hidden rows -> (N,) log-probs of their
labels, through the output layer a chunk of rows at a time, never holding more than one chunk's
(n, V) logits (docs/method.md §10.3; ``benchmarks/loss_head/bench_loss_head.py`` measures it,
``tests/train/test_logprobs.py`` checks it against a full softmax).

:func:`chunk_rows` sizes a chunk by memory: :data:`CHUNK_MEMORY_MB` = 128 MB of fp32 logits, so the
extra peak stays near 3 x 128 MB at any vocabulary. :func:`cutkit.train.logprobs.label_logprobs`
runs the model's decoder body and feeds its scored rows here (:mod:`cutkit.train.head_split` finds
the body and the head).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from cutkit._checks import check_number
from cutkit.train.vocabulary import COUNT_WHY

CHUNK_MEMORY_MB = 128.0
"""Default memory budget of one output-layer chunk, in MB (10**6 bytes): the fp32 logits of the
chunk's rows. The head's extra peak is about 3 chunks (400 MB), see :func:`chunk_rows`."""
CHUNK_MEMORY_WHY = (
    "the output layer's memory per chunk, in MB (10**6 bytes) of fp32 logits; the head's extra "
    "peak is about 3 times this"
)

ChunkSize = int | Literal["auto"] | None
"""Output-layer rows per chunk: an int, ``"auto"`` (:func:`chunk_rows` of the output layer's
vocabulary), or ``None`` (no chunking: the plain full-logits path)."""


def upcast_logits(logits: Tensor) -> Tensor:
    """Logits in at least fp32 (bf16/fp16 -> fp32, fp64 stays fp64)."""
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def head_logprobs(project: Callable[[Tensor], Tensor], hidden: Tensor, labels: Tensor) -> Tensor:
    """hidden (n, H), labels (n,) -> log p(label) (n,) in at least fp32 (one chunk, full vocab)."""
    # the (n, V) logits die once log_softmax has run; log_softmax is a single fused kernel
    # (faster than logsumexp on CPU, and stable) and its output is what backward needs
    logp = torch.log_softmax(upcast_logits(project(hidden)), dim=-1)  # (n, V) fp32+
    return logp.gather(-1, labels[:, None]).squeeze(-1)


def chunk_rows(vocab_size: int, memory_mb: float = CHUNK_MEMORY_MB) -> int:
    """Output-layer rows per chunk whose fp32 logits fit in ``memory_mb`` MB.

    One chunk of n rows holds n x vocab_size x 4 bytes of fp32 logits; the head's extra peak memory
    is about 3 such chunks (backward holds the chunk's log-softmax, its incoming gradient and the
    logits' gradient), so the default 128 MB per chunk keeps it near 400 MB at any vocabulary and
    any number of tokens.

    Args:
        vocab_size: V, the output layer's rows (``lm_head.weight.shape[0]``).
        memory_mb: the budget of one chunk's fp32 logits, in MB (10**6 bytes), finite > 0.

    Returns:
        floor(memory_mb x 10**6 / (4 x V)) rows, at least 1.

    >>> chunk_rows(32_000), chunk_rows(128_256), chunk_rows(256_000), chunk_rows(128_256, 512)
    (1000, 249, 125, 998)
    """
    vocab_size = check_number(
        "vocab_size", vocab_size, minimum=1, integer=True, why="the output layer's rows"
    )
    memory_mb = check_number(
        "chunk_memory_mb", memory_mb, minimum=0, min_open=True, why=CHUNK_MEMORY_WHY
    )
    return max(1, int(memory_mb * 1e6 // (4 * vocab_size)))


def resolve_chunk_size(
    chunk_size: ChunkSize, vocab_size: int, memory_mb: float = CHUNK_MEMORY_MB
) -> int | None:
    """``"auto"`` -> :func:`chunk_rows` (vocab_size, memory_mb); an int or None is returned as is."""
    if isinstance(chunk_size, str):
        if chunk_size != "auto":
            raise ValueError(
                f"chunk_size must be a positive integer, 'auto' or None, got {chunk_size!r}"
            )
        return chunk_rows(vocab_size, memory_mb)
    return chunk_size


def head_logprobs_in_chunks(
    project: Callable[[Tensor], Tensor], hidden: Tensor, labels: Tensor, chunk_size: int
) -> Tensor:
    """(N,) log p(label) of ``hidden`` (N, H) through ``project`` (the output layer), ``chunk_size``
    rows at a time with :func:`head_logprobs`; each chunk under ``torch.utils.checkpoint`` when grad
    is enabled, so backward recomputes one chunk's logits at a time."""
    check_number("chunk_size", chunk_size, minimum=1, integer=True, why=COUNT_WHY)
    pieces = []
    for start in range(0, hidden.shape[0], chunk_size):
        h, y = hidden[start : start + chunk_size], labels[start : start + chunk_size]
        if torch.is_grad_enabled():
            pieces.append(checkpoint(head_logprobs, project, h, y, use_reentrant=False))
        else:
            pieces.append(head_logprobs(project, h, y))
    if not pieces:  # no scored token
        return hidden.new_zeros(0, dtype=torch.promote_types(hidden.dtype, torch.float32))
    return torch.cat(pieces)
