"""The chunked output-layer head, an op of its own: (N, H) hidden rows -> (N,) log-probs of their
labels, through the output layer a chunk of rows at a time, never holding more than one chunk's
(n, V) logits (docs/method.md §10.3; ``benchmarks/loss_head/bench_loss_head.py`` measures it,
``tests/train/test_logprobs.py`` checks it against a full softmax).

:func:`chunk_rows` sizes a chunk by memory: as many rows as keep the head's extra peak (forward +
backward) within :data:`CHUNK_MEMORY_MB` = 128 MB at any vocabulary and number of tokens
(``tests/train/test_chunked_head_memory.py`` measures it).
:func:`cutkit.train.logprobs.label_logprobs` runs the model's decoder body and feeds its scored
rows here (:mod:`cutkit.train.head_split` finds the body and the head).
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
"""Default bound of the output-layer head's extra peak memory over one forward + backward, in MB
(10**6 bytes); :func:`chunk_rows` sizes the chunks to it."""
CHUNK_MEMORY_WHY = (
    "the bound of the output-layer head's extra peak memory over forward + backward, in MB "
    "(10**6 bytes); the chunks are sized to it"
)
HEAD_PEAK_CHUNKS = 3.25
"""The head's extra peak in units of one chunk's fp32 logits (n rows x V x 4 bytes), as
:func:`chunk_rows` budgets it. Measured on CPU (peak RSS, ``benchmarks/peak_rss.py``) at
V = 128,256, hidden 64, 2 x 4 x 512 tokens, from 40 to 249 rows per chunk: 2.97 chunks (backward
holds the chunk's log-softmax, its incoming gradient and the logits' gradient) plus about 8 MB
(the scored rows, their gradient, the loss's bookkeeping). 3.25 keeps the measured peak, those
few MB included, within the bound down to 38 rows per chunk (V = 256,000)."""

ChunkSize = int | Literal["auto"] | None
"""Output-layer rows per chunk, one meaning everywhere (``label_logprobs``, the distillation
head, ``CUTConfig.chunk_size``): an int; ``"auto"`` (the default), :func:`chunk_rows` of the
output layer's vocabulary, so that the head's extra peak stays within ``chunk_memory_mb``; or
``None``, no chunking: the plain path through the full batch x length x vocabulary logits."""
CHUNK_SIZE_WHY = (
    "output-layer rows per chunk; 'auto' sizes them to chunk_memory_mb at the model's "
    "vocabulary, None scores through the full logits (no chunking)"
)


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
    """Output-layer rows per chunk that keep the head's extra peak memory within ``memory_mb`` MB.

    A chunk of n rows holds n x vocab_size x 4 bytes of fp32 logits, and forward + backward of the
    chunked, checkpointed head peaks at about :data:`HEAD_PEAK_CHUNKS` = 3.25 such chunks
    (measured 2.97, plus a few MB of bookkeeping; backward holds the chunk's log-softmax, its
    incoming gradient and the logits' gradient), so the default 128 MB bounds the head's extra
    peak at any vocabulary and any number of tokens (``tests/train/test_chunked_head_memory.py``
    measures it at V = 128,256).

    Not in the bound: what grows with the hidden size H rather than with the chunk. The hidden
    states' gradient and their scored rows' gradient, 2 x H x 4 bytes per token, as in any head;
    and, when the head is trained (full fine-tuning, a tied embedding; not with a frozen head,
    the LoRA recipe), the output weight's gradient, V x H x 4 bytes (33 MB at V = 128,256 and
    H = 64, 2.1 GB at H = 4,096), up to three times that for a moment while autograd sums the
    chunks' gradients (measured: 3 x V x H x 4 bytes once that exceeds the chunks, e.g. at
    H = 256).

    Args:
        vocab_size: V, the output layer's rows (``lm_head.weight.shape[0]``).
        memory_mb: the bound of the head's extra peak, in MB (10**6 bytes), finite > 0.

    Returns:
        floor(memory_mb x 10**6 / (3.25 x 4 x V)) rows, at least 1.

    >>> chunk_rows(32_000), chunk_rows(128_256), chunk_rows(256_000), chunk_rows(128_256, 512)
    (307, 76, 38, 307)
    """
    vocab_size = check_number(
        "vocab_size", vocab_size, minimum=1, integer=True, why="the output layer's rows"
    )
    memory_mb = check_number(
        "chunk_memory_mb", memory_mb, minimum=0, min_open=True, why=CHUNK_MEMORY_WHY
    )
    return max(1, int(memory_mb * 1e6 // (HEAD_PEAK_CHUNKS * 4 * vocab_size)))


def check_chunk_size(chunk_size: ChunkSize) -> ChunkSize:
    """``chunk_size`` if it is a :data:`ChunkSize` (an integer >= 1, ``"auto"`` or None), else a
    ValueError naming it (:func:`cutkit._checks.check_number`)."""
    return check_number(
        "chunk_size",
        chunk_size,
        minimum=1,
        integer=True,
        optional=True,
        words=("auto",),
        why=CHUNK_SIZE_WHY,
    )


def resolve_chunk_size(
    chunk_size: ChunkSize, vocab_size: int, memory_mb: float = CHUNK_MEMORY_MB
) -> int | None:
    """``"auto"`` -> :func:`chunk_rows` (vocab_size, memory_mb); an int or None is returned as is
    (anything else: ValueError, :func:`check_chunk_size`)."""
    chunk_size = check_chunk_size(chunk_size)
    if chunk_size == "auto":
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
