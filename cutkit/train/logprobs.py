"""Log-probabilities of label tokens, without materialising batch x length x vocabulary.

CUT needs only log p(y_t | context) of the response tokens (docs/method.md §4), so cutkit never builds the
full (B, T, V) logits of the released code (docs/method.md §10.3). :func:`label_logprobs`

1. runs the decoder body only, giving hidden states (B, T, H);
2. gathers the N scored positions into an (N, H) matrix (prompt and padding rows never reach the
   output layer): the hidden state at t - 1 predicts ``labels[:, t]`` (HF convention);
3. pushes rows through the output layer in chunks of ``chunk_size`` rows: logits (n, V) -> fp32 ->
   log_softmax -> gather, each chunk under ``torch.utils.checkpoint`` (non-reentrant) when grad is
   enabled, so backward recomputes one chunk's logits at a time.

Peak extra memory is O(chunk_size x V) instead of O(B x T x V): about 3 chunks of fp32 logits
(backward holds one chunk's log-softmax, its incoming gradient and the logits' gradient), whatever
the number of tokens. The default ``chunk_size="auto"`` follows the vocabulary: :func:`chunk_rows`
(V) rows, as many as keep the head's extra peak within :data:`CHUNK_MEMORY_MB` = 128 MB (76 rows
at V = 128,256, 307 at 32,000; ``tests/train/test_chunked_head_memory.py`` measures it), besides
the gradients that grow with the hidden size rather than with the chunk (the hidden states', and
the output weight's when it is trained). A fixed row count grows with V instead: 1,024 rows put
about 1.6 GB at 128,256.
``chunk_size=None`` means no chunking: the plain path through the full logits. Output layers that
apply something after the matmul (Gemma2 soft-capping, Cohere ``logit_scale``, Granite
``logits_scaling``, ...) or are not linear fall back to that path with a warning.

>>> import torch
>>> from cutkit.models.tiny import tiny_model
>>> model = tiny_model(vocab_size=64)
>>> ids = torch.tensor([[5, 6, 7, 8]])
>>> labels = torch.tensor([[-100, -100, 7, 8]])  # score tokens 2 and 3 only
>>> out = label_logprobs(model, ids, torch.ones_like(ids), labels, chunk_size=1)
>>> out.shape, out.dtype, bool(out[0, 0] == 0 and out[0, 1] == 0 and (out[0, 2:] < 0).all())
(torch.Size([1, 4]), torch.float32, True)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cutkit.train.attention import packed_attention_kwargs
from cutkit.train.chunked_head import CHUNK_MEMORY_MB as CHUNK_MEMORY_MB
from cutkit.train.chunked_head import CHUNK_MEMORY_WHY as CHUNK_MEMORY_WHY
from cutkit.train.chunked_head import (
    ChunkSize,
    head_logprobs,
    head_logprobs_in_chunks,
    resolve_chunk_size,
)
from cutkit.train.chunked_head import check_chunk_size as check_chunk_size
from cutkit.train.chunked_head import chunk_rows as chunk_rows
from cutkit.train.head_split import head_vocab_size, keeps_logits, split_model, unwrap_ddp
from cutkit.train.head_split import model_chunk_rows as model_chunk_rows

IGNORE_INDEX = -100


def _chunked(
    project: Callable[[Tensor], Tensor], hidden: Tensor, labels: Tensor, chunk_size: int
) -> Tensor:
    """:func:`~cutkit.train.chunked_head.head_logprobs_in_chunks`, called through this module's
    name so that every model-level path here (and :func:`chunked_label_logprobs`) goes through
    one seam a test can watch."""
    return head_logprobs_in_chunks(project, hidden, labels, chunk_size)


def chunked_label_logprobs(
    hidden: Tensor,
    weight: Tensor,
    labels: Tensor,
    *,
    bias: Tensor | None = None,
    chunk_size: int | Literal["auto"] = "auto",
) -> Tensor:
    """log softmax(hidden @ weight.T + bias)[label] row by row, never holding more than a chunk.

    Args:
        hidden: (N, H) hidden states of the scored positions.
        weight: (V, H) output-layer weight (``lm_head.weight``).
        labels: (N,) token ids in [0, V).
        bias: optional (V,) output-layer bias.
        chunk_size: rows per chunk, or ``"auto"``: :func:`chunk_rows` (V), so that the extra
            peak stays within :data:`CHUNK_MEMORY_MB` MB (besides the weight's gradient, when it
            has one); peak extra memory is about 3 x chunk_size x V x 4 bytes.

    Returns:
        (N,) log-probabilities in fp32 (fp64 if the inputs are fp64), differentiable w.r.t. hidden,
        weight and bias (backward recomputes each chunk's logits).
    """
    chunk_size = resolve_chunk_size(chunk_size, weight.shape[0])
    return _chunked(lambda h: F.linear(h, weight, bias), hidden, labels, chunk_size)


def _scored(labels: Tensor) -> Tensor:
    """(B, T) labels -> (B, T - 1) bool: position t + 1 is scored (predicted from hidden t)."""
    return labels[:, 1:] != IGNORE_INDEX


def head_inputs(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor | None,
    labels: Tensor,
    chunk_size: ChunkSize,
    position_ids: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Callable[[Tensor], Tensor]]:
    """Run the model once up to what the output layer needs at the scored positions.

    Returns ``(rows, targets, scored, project)``: rows (N, H) the hidden states that predict the
    N scored tokens (row-major), targets (N,) those tokens, scored the (B, T - 1) mask, and
    ``project`` mapping rows to logits (the output layer). When the head cannot be split off
    (``chunk_size=None``, or :func:`split_model` gives a reason, with a warning) the model runs
    whole: rows are then the (N, V) logits themselves and ``project`` is the identity. A model
    wrapped in ``DistributedDataParallel`` runs through the wrapper (one logit per row kept).
    """
    check_chunk_size(chunk_size)  # before the model runs
    scored = _scored(labels)  # (B, T-1)
    targets = labels[:, 1:][scored]  # (N,)
    inputs = dict(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=False,
    )
    if position_ids is not None and attention_mask is None and input_ids.shape[0] == 1:
        inputs |= packed_attention_kwargs(position_ids)  # once, not once per attention layer
    inner = unwrap_ddp(model)
    body, head, reason = (
        (None, None, "chunk_size=None") if chunk_size is None else split_model(inner)
    )
    if body is not None and inner is not model and not keeps_logits(inner):
        body, head, reason = None, None, "DDP-wrapped model without logits_to_keep"
    if body is None:
        if chunk_size is not None:
            warnings.warn(
                f"label_logprobs: {reason}; falling back to full logits, which materialises "
                "batch x length x vocabulary (more memory)",
                stacklevel=4,
            )
        logits = model(**inputs).logits
        return logits[:, :-1][scored], targets, scored, _identity  # (N, V)
    if inner is not model:
        # DistributedDataParallel: its own forward must run (it arms the gradient all-reduce), so
        # the whole model runs with one logit per row kept; the last hidden state is the final
        # norm's output (transformers ties hidden_states[-1] to last_hidden_state)
        out = model(**inputs, output_hidden_states=True, logits_to_keep=1)
        hidden = out.hidden_states[-1]  # (B, T, H)
    else:
        out = body(**inputs)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]  # (B, T, H)
    return hidden[:, :-1][scored], targets, scored, head  # only scored rows reach the head


def _identity(rows: Tensor) -> Tensor:
    return rows


def _flat_label_logprobs(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor | None,
    labels: Tensor,
    chunk_size: ChunkSize,
    position_ids: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """-> (N,) log-probs of the scored tokens in row-major order, and the (B, T - 1) scored mask."""
    rows, targets, scored, project = head_inputs(
        model, input_ids, attention_mask, labels, chunk_size, position_ids
    )
    if project is _identity:  # full logits already: one piece
        return head_logprobs(project, rows, targets), scored
    return _chunked(project, rows, targets, rows_per_chunk(chunk_size, project, rows)), scored


def rows_per_chunk(chunk_size: ChunkSize, project: Callable[[Tensor], Tensor], rows: Tensor) -> int:
    """The rows per chunk for ``(rows, project)`` of :func:`head_inputs`: ``"auto"`` follows the
    vocabulary (the output layer's rows, or the width of rows that are logits already), None is
    one chunk of all rows, an int is itself."""
    if chunk_size is None:
        return rows.shape[0] or 1
    vocab_size = rows.shape[-1] if project is _identity else head_vocab_size(project)
    return resolve_chunk_size(chunk_size, vocab_size)


def label_logprobs(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor | None,
    labels: Tensor,
    *,
    position_ids: Tensor | None = None,
    chunk_size: ChunkSize = "auto",
) -> Tensor:
    """out[b, t] = log p(labels[b, t] | input_ids[b, :t]) for scored tokens, else 0.

    Args:
        model: a transformers causal LM, optionally PEFT-wrapped (LoRA anywhere, lm_head included).
        input_ids: (B, T) token ids; attention_mask: (B, T) 1 for real tokens (or None).
        labels: (B, T) aligned with input_ids (HF convention), -100 where not scored.
        position_ids: optional (B, T) positions, e.g. restarting per context in a packed row.
        chunk_size: output-layer rows per chunk; ``"auto"`` (default) follows the vocabulary,
            :func:`chunk_rows` (V) rows, so the head's extra peak stays within
            :data:`CHUNK_MEMORY_MB` MB (:func:`model_chunk_rows` gives the rows for another
            bound); ``None``: no chunking, the plain full-logits path.

    Returns:
        (B, T) fp32 (fp64 for an fp64 model): 0 where labels == -100 and at t = 0 (nothing
        predicts the first token). Differentiable w.r.t. the model's parameters.
    """
    flat, scored = _flat_label_logprobs(
        model, input_ids, attention_mask, labels, chunk_size, position_ids
    )
    out = flat.new_zeros(scored.shape).masked_scatter(scored, flat)  # (B, T-1)
    return F.pad(out, (1, 0))  # (B, T): column 0 is never predicted


def context_index(position_ids: Tensor) -> Tensor:
    """(1, S) position ids of a packed row (restarting at 0 per context) -> (S,) context number."""
    if position_ids.dim() != 2 or position_ids.shape[0] != 1:
        raise ValueError(
            f"packed position_ids must have shape (1, S), got {tuple(position_ids.shape)}"
        )
    return (position_ids[0] == 0).cumsum(0) - 1


def scored_token_contexts(scored: Tensor, position_ids: Tensor | None) -> tuple[Tensor, int]:
    """The row (context, in a packed row) of each scored token, row-major, and the number of rows
    (contexts); :func:`head_inputs` gives the hidden states at those tokens."""
    if position_ids is None:
        return scored.nonzero(as_tuple=True)[0], scored.shape[0]
    context = context_index(position_ids)[1:]  # (S-1,): label t + 1's context
    return context[scored[0]], int(context[-1]) + 1 if context.numel() else 1


def left_align(flat: Tensor, row: Tensor, n_rows: int) -> tuple[Tensor, Tensor]:
    """flat (N,) values, row (N,) non-decreasing row numbers -> left-aligned (R, Lr), mask (R, Lr):
    row r's k-th value at column k (what "packed" meant in the old name ``label_logprobs_packed``)."""
    counts = torch.bincount(row, minlength=n_rows)  # (R,)
    width = int(counts.max()) if row.numel() else 0
    starts = counts.cumsum(0) - counts  # (R,) index of each row's first value in flat
    col = torch.arange(row.numel(), device=row.device) - starts[row]  # (N,) k-th value of its row
    values = flat.new_zeros(n_rows, width).index_put((row, col), flat)
    mask = torch.arange(width, device=row.device)[None, :] < counts[:, None]
    return values, mask


def response_logprobs(
    logp: Tensor, labels: Tensor, position_ids: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Pack each row's scored log-probs left-aligned, so contexts align by response position.

    Args:
        logp: (R, T) from :func:`label_logprobs`; labels: (R, T), -100 where not scored.
        position_ids: for a packed batch (one row of contexts laid end to end,
            ``CUTCollator(packing=True)``), its (1, S) position ids: the output then has one row
            per context.

    Returns:
        values (R, Lr) and mask (R, Lr) bool, Lr = most scored tokens in a row: row r's k-th scored
        token (t >= 1, left to right) sits at column k. The judged and plain contexts of one
        response give equal masks, whatever their prompt lengths (docs/method.md §10.1).
    """
    scored = _scored(labels)
    return left_align(logp[:, 1:][scored], *scored_token_contexts(scored, position_ids))


def response_token_mask(labels: Tensor, position_ids: Tensor | None = None) -> Tensor:
    """(R, Lr) bool: which response positions of each context are scored (the mask of
    :func:`response_logprobs`, without running a model)."""
    scored = _scored(labels)
    row, n_rows = scored_token_contexts(scored, position_ids)
    return left_align(torch.ones(row.shape, device=row.device), row, n_rows)[1]


def label_logprobs_left_aligned(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor | None,
    labels: Tensor,
    *,
    position_ids: Tensor | None = None,
    chunk_size: ChunkSize = "auto",
) -> tuple[Tensor, Tensor]:
    """``response_logprobs(label_logprobs(...), labels)`` without the (B, T) scatter in between.

    Takes either a padded batch (input_ids, attention_mask, labels of shape (R, T)) or a packed
    one (shape (1, S), ``attention_mask=None`` and the ``position_ids`` that mark where each
    context starts); both give the same (R, Lr) values and mask for the same contexts.
    "Left-aligned" is the output (each context's scored tokens from column 0), whatever the input
    layout; its old name ``label_logprobs_packed`` said "packed" for that.
    """
    flat, scored = _flat_label_logprobs(
        model, input_ids, attention_mask, labels, chunk_size, position_ids
    )
    return left_align(flat, *scored_token_contexts(scored, position_ids))


label_logprobs_packed = label_logprobs_left_aligned
"""The old name of :func:`label_logprobs_left_aligned` ("packed" meant left-aligned, not
``packing``), kept for existing callers."""
