"""What the loss functions of :mod:`cutkit.train.losses` accept: shapes, values and counts, each
refused with a ``ValueError`` naming the argument, what it got and what it must be.

- Shapes (free: no reduction, no device sync): ``logp_judged`` and ``logp_plain`` are (B, L)
  per-response-token log-probs, ``mask`` (B, L), ``negative`` (B,), and ``flagged`` / ``distill``
  exactly (B, L) (never broadcast: a (1, 1) ``flagged`` would switch detection off for every
  token).
- Values (:func:`check_logprob_values`, one masked reduction and one device sync): a log-prob is
  finite and <= 0 wherever it reaches the loss (``logp_judged`` at the response tokens,
  ``logp_plain`` at the negative rows' response tokens). Elsewhere (padding, the plain context of a
  positive row) anything may stand, NaN included: the loss reads those cells through
  ``torch.where``, so they reach neither its value nor its gradient.
- Counts: ``num_items``, the denominator of "paper" / "token", is a finite number > 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

LOGPROB_RULE = "finite and <= 0 (a log-probability)"


def _shape(tensor: Tensor) -> tuple[int, ...]:
    return tuple(tensor.shape)


def check_loss_shapes(
    logp_judged: Tensor,
    logp_plain: Tensor,
    mask: Tensor,
    negative: Tensor,
    *,
    flagged: Tensor | None = None,
    distill: Tensor | None = None,
) -> None:
    """Refuse arguments of the wrong type or shape (module docstring), naming the argument, its
    shape and the expected one."""
    for name, value in (
        ("logp_judged", logp_judged),
        ("logp_plain", logp_plain),
        ("mask", mask),
        ("negative", negative),
        ("flagged", flagged),
        ("distill", distill),
    ):
        if value is not None and not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    for name, value in (("logp_judged", logp_judged), ("logp_plain", logp_plain)):
        if value.dim() != 2:
            raise ValueError(
                f"{name} must be a 2-D (B, L) tensor of per-response-token log-probs (B rows, "
                f"L response positions), got {value.dim()}-D shape {_shape(value)}; batch a "
                "single row as x[None]"
            )
    expected = _shape(logp_judged)
    for name, value in (("logp_plain", logp_plain), ("mask", mask)):
        if _shape(value) != expected:
            raise ValueError(
                f"{name} {_shape(value)} must have the same (B, L) shape as logp_judged {expected}"
            )
    if _shape(negative) != expected[:1]:
        raise ValueError(
            f"negative must be (B,) = {expected[:1]}, one flag per row of the (B, L) log-probs "
            f"{expected}, got {_shape(negative)}"
        )
    for name, value in (("flagged", flagged), ("distill", distill)):
        if value is not None and _shape(value) != expected:
            raise ValueError(
                f"{name} {_shape(value)} must have the same (B, L) shape as logp_judged "
                f"{expected} (it is not broadcast)"
            )


@torch.no_grad()
def check_logprob_values(
    logp_judged: Tensor, logp_plain: Tensor, judged_counts: Tensor, plain_counts: Tensor
) -> None:
    """Refuse a log-prob that is not finite and <= 0 where it counts: ``logp_judged`` where
    ``judged_counts``, ``logp_plain`` where ``plain_counts`` (both (B, L) bool). One masked
    reduction and one sync; the first offending cell is looked up only on the way to the error."""
    bad_judged = judged_counts & ~(torch.isfinite(logp_judged) & (logp_judged <= 0))
    bad_plain = plain_counts & ~(torch.isfinite(logp_plain) & (logp_plain <= 0))
    if not bool((bad_judged | bad_plain).any()):
        return
    name, values, bad = (
        ("logp_judged", logp_judged, bad_judged)
        if bool(bad_judged.any())
        else ("logp_plain", logp_plain, bad_plain)
    )
    row, position = (int(i) for i in bad.nonzero()[0])
    value = float(values[row, position])
    kind = "NaN" if math.isnan(value) else ("infinite" if math.isinf(value) else "positive")
    raise ValueError(
        f"{name}[{row}, {position}] = {value} is {kind}, and a log-prob that reaches the loss "
        f"must be {LOGPROB_RULE}; {int(bad.sum())} such cells in {name} in all. Compute "
        "log-probs with log_softmax (cutkit.label_logprobs), or set mask (and negative) False "
        "where a cell is not a response token"
    )


def check_num_items(num_items) -> None:
    """Refuse a ``num_items`` (a number or a one-element tensor) that is not finite and > 0."""
    if num_items is None:
        return
    try:
        value = float(num_items)
    except (TypeError, ValueError, RuntimeError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        shown = num_items if not isinstance(num_items, Tensor) else value
        raise ValueError(
            f"num_items must be a finite number > 0, got {shown!r}: it is the denominator of "
            "'paper' (examples) / 'token' (tokens) normalisation, e.g. the count_items total of "
            "the accumulation step; pass None to count this micro-batch"
        )
