r"""Self-distillation from the judged context: the soft counterpart of CUT (docs/method.md §8).

CUT scores each token y_t of a bad response in two contexts, the judged prompt (x, j) and the
plain prompt x, and turns the ratio into a hard decision (flag, then unlikelihood). The
``self_distill`` objective uses the whole judged-context distribution instead: under the plain
prompt the model is trained towards what it would predict after reading the judgment,

    L_t = T^2 * KL( q_t || p_t ),   q_t = softmax(z_judged(t) / T) (detached teacher),
                                    p_t = softmax(z_plain(t) / T)   (student),

over the full vocabulary at every response position t of a negative record, both contexts
conditioned on the same prefix y_<t (teacher forcing). Positives keep Align-P. T is the
temperature (T^2 keeps the gradient scale independent of T, Hinton et al. 2015); ``top_k``
restricts the teacher to its k most probable tokens, renormalised.

Why forward KL (teacher -> student): the responses are fixed text, not the student's own samples,
so the divergence is an exact sum over the vocabulary at each position, and forward KL is the
cross-entropy to the teacher's soft labels: its gradient on the student's logits is (p - q) / T,
bounded like the likelihood's, whatever the tokens. Reverse KL, KL(p || q), is mode-seeking and
is the choice when the student samples its own continuations (on-policy distillation); here it
would be infinite wherever a top-k teacher gives zero mass.

Memory: the divergence never materialises batch x length x vocabulary. The hidden rows of both
contexts at the N scored positions go through the output layer ``chunk_size`` pairs at a time,
each chunk under ``torch.utils.checkpoint`` (backward recomputes one chunk's logits), so the extra
peak is about 5 x chunk_size x V floats (two contexts' logits, log-softmaxes and their product),
whatever the number of tokens: measured 0.98 GiB at vocabulary 49,152 and chunk 1024 for 4,096
tokens, against 3.6 GiB for full logits (``benchmarks/distill_head/distill_head_cpu.md``). The default
``chunk_size="auto"`` takes :func:`cutkit.train.logprobs.chunk_rows` (V) pairs, the rows that
keep the label head within ``chunk_memory_mb``, so the divergence's extra peak is about 5 / 3.25
of that bound (about 200 MB at the default 128 MB) at any vocabulary.

>>> import torch
>>> from cutkit.models.tiny import tiny_model
>>> model = tiny_model(vocab_size=64)
>>> ids = torch.tensor([[5, 6, 7, 8], [9, 6, 7, 8]])   # row 0 "judged", row 1 "plain" context
>>> labels = torch.tensor([[-100, -100, 7, 8], [-100, -100, 7, 8]])
>>> logp, mask, kl = logprobs_and_divergence(
...     model, ids, torch.ones_like(ids), labels, teacher_rows=torch.tensor([0]),
...     student_rows=torch.tensor([1]), chunk_size=1)
>>> logp.shape, kl.shape, bool((kl >= 0).all())
(torch.Size([2, 2]), torch.Size([1, 2]), True)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from cutkit._checks import check_number
from cutkit.train.chunked_head import ChunkSize, head_logprobs_in_chunks, upcast_logits
from cutkit.train.logprobs import head_inputs, left_align, rows_per_chunk, scored_token_contexts
from cutkit.train.vocabulary import COUNT_WHY

TEMPERATURE_WHY = "the softmax temperature of both contexts; 1 distils the model's own distribution"
TOP_K_WHY = "the teacher's support, its k most probable tokens; None keeps the full vocabulary"


def check_distill_settings(temperature: float, top_k: int | None) -> None:
    """ValueError naming the setting unless temperature is finite > 0 and top_k None or >= 1."""
    check_number("distill_temperature", temperature, minimum=0, min_open=True, why=TEMPERATURE_WHY)
    check_number("distill_top_k", top_k, minimum=1, integer=True, optional=True, why=TOP_K_WHY)


def _teacher_logprobs(logits: Tensor, top_k: int | None) -> Tensor:
    """(n, V) teacher logits (already / T) -> log q (n, V): full softmax, or the top-k tokens
    renormalised with -inf elsewhere."""
    if top_k is None or top_k >= logits.shape[-1]:
        return torch.log_softmax(logits, dim=-1)
    values, index = logits.topk(top_k, dim=-1)  # (n, k)
    kept = torch.full_like(logits, -torch.inf).scatter(-1, index, values)
    return torch.log_softmax(kept, dim=-1)


def _chunk_divergence(
    project: Callable[[Tensor], Tensor],
    student: Tensor,
    teacher: Tensor,
    temperature: float,
    top_k: int | None,
) -> Tensor:
    """student, teacher (n, H) rows -> T^2 KL(q || p) (n,) in at least fp32 (one chunk)."""
    with torch.no_grad():
        log_q = _teacher_logprobs(upcast_logits(project(teacher)) / temperature, top_k)  # (n, V)
    log_p = torch.log_softmax(upcast_logits(project(student)) / temperature, dim=-1)  # (n, V)
    q = log_q.exp()
    # 0 * log 0 = 0 outside a top-k teacher's support
    per_token = torch.where(q > 0, q * (log_q - log_p), 0.0).sum(-1)
    return temperature**2 * per_token


def chunked_divergence(
    project: Callable[[Tensor], Tensor],
    student: Tensor,
    teacher: Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    chunk_size: int = 1024,
) -> Tensor:
    """Per row, T^2 KL(q || p) with q = the (detached) teacher's and p = the student's softmax.

    Args:
        project: the output layer, (n, H) -> (n, V) logits (the identity for rows that are
            logits already).
        student: (N, H) hidden rows under the plain prompt (gradient flows).
        teacher: (N, H) hidden rows of the same tokens under the judged prompt (detached here).
        temperature: T > 0 for both softmaxes; the divergence is scaled by T^2.
        top_k: restrict q to its k most probable tokens, renormalised; None = full vocabulary.
        chunk_size: pairs of rows per chunk (each chunk checkpointed when grad is enabled).

    Returns:
        (N,) divergences >= 0 in at least fp32, differentiable w.r.t. ``student`` and the head.
    """
    check_distill_settings(temperature, top_k)
    if student.shape != teacher.shape:
        raise ValueError(
            f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)} rows must match"
        )
    check_number("chunk_size", chunk_size, minimum=1, integer=True, why=COUNT_WHY)
    teacher = teacher.detach()
    pieces = []
    for start in range(0, student.shape[0], chunk_size):
        s, t = student[start : start + chunk_size], teacher[start : start + chunk_size]
        args = (project, s, t, temperature, top_k)
        if torch.is_grad_enabled():
            pieces.append(checkpoint(_chunk_divergence, *args, use_reentrant=False))
        else:
            pieces.append(_chunk_divergence(*args))
    if not pieces:
        return student.new_zeros(0, dtype=torch.promote_types(student.dtype, torch.float32))
    return torch.cat(pieces)


def logprobs_and_divergence(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor | None,
    labels: Tensor,
    *,
    teacher_rows: Tensor,
    student_rows: Tensor,
    position_ids: Tensor | None = None,
    chunk_size: ChunkSize = "auto",
    temperature: float = 1.0,
    top_k: int | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One forward pass: every context's response log-probs, and the self-distillation divergence
    between pairs of contexts that score the same response.

    Args:
        model, input_ids, attention_mask, labels, position_ids, chunk_size: as for
            :func:`cutkit.train.logprobs.label_logprobs_left_aligned` (padded or packed batch);
            ``chunk_size`` counts pairs of rows for the divergence (``"auto"``: as many pairs
            as label rows, :func:`cutkit.train.logprobs.chunk_rows` (V)).
        teacher_rows, student_rows: (P,) context indices (rows of the packed output): pair p
            distils context ``teacher_rows[p]`` (the judged prompt) into ``student_rows[p]``
            (the plain prompt); both must score the same number of tokens.
        temperature, top_k: as for :func:`chunked_divergence`.

    Returns:
        ``values`` (R, Lr) and ``mask`` (R, Lr) as ``label_logprobs_left_aligned`` gives them, and
        ``divergence`` (P, Lr): T^2 KL(q || p) at each scored position of pair p (0 where
        ``mask[student_rows[p]]`` is False).
    """
    rows, targets, scored, project = head_inputs(
        model, input_ids, attention_mask, labels, chunk_size, position_ids
    )
    chunk = rows_per_chunk(chunk_size, project, rows)
    row, n_rows = scored_token_contexts(scored, position_ids)
    values, mask = left_align(
        head_logprobs_in_chunks(project, rows, targets, chunk), row, n_rows
    )  # (R, Lr)
    index, _ = left_align(torch.arange(row.numel(), device=row.device), row, n_rows)  # (R, Lr)
    pair_mask = mask[student_rows]  # (P, Lr)
    if not torch.equal(pair_mask, mask[teacher_rows]):
        raise ValueError(
            "each (teacher, student) pair of contexts must score the same number of response "
            "tokens; the two contexts of a negative record hold the same response"
        )
    divergence = chunked_divergence(
        project,
        rows[index[student_rows][pair_mask]],
        rows[index[teacher_rows][pair_mask]],
        temperature=temperature,
        top_k=top_k,
        chunk_size=chunk,
    )  # (M,) for the M scored positions of the pairs, row-major
    out = divergence.new_zeros(pair_mask.shape).masked_scatter(pair_mask, divergence)
    return values, mask, out
