"""The CUT loss family as pure functions of per-response-token log-probs (docs/method.md §3, §4).

Inputs are aligned by response position (see :func:`cutkit.train.logprobs.response_logprobs`):

- ``logp_judged`` (B, L): log p(y_t) in the row's FIRST context: the judged prompt for a negative
  row (Align-N), the plain prompt for a positive row (Align-P);
- ``logp_plain`` (B, L): log p(y_t) in the plain prompt (Misalign); read for negative rows only;
- ``mask`` (B, L) bool: response tokens; ``negative`` (B,) bool: the row's judgment is negative.

Normalisations (``normalization=``):

- ``"official"`` (default, the released code, per micro-batch): L_like = mean over all response
  tokens of -logp_judged; if the micro-batch has a Misalign token, L_ul = mean over the negative
  rows' tokens of the Misalign per-token loss and loss = (L_like + L_ul) / 2, else loss = L_like.
  Not invariant to gradient accumulation: GA = 2 x bs1 differs from GA = 1 x bs2 when the two
  micro-batches differ (that is what the released code trains; it used micro-batch 1).
- ``"paper"`` (arXiv v4): per example L2 = -mean_t logp_judged, plus for negatives L1 = mean_t of
  the Misalign per-token loss; loss = sum of (L1 + L2) / number of examples.
- ``"token"``: sum of every per-token term / number of response tokens.

Two research levers change what the Misalign term does (docs/method.md, "Levers"):
``unflagged="ignore"`` gives the unflagged tokens of a bad response no plain-prompt loss (the
paper, ``"mle"``, trains them with likelihood); detection from the record's own gold spans instead
of the model's ratio is the caller's choice of ``flagged=`` (:class:`cutkit.train.config.CUTConfig`'s
``detector="spans"``). An ignored token contributes 0 but still counts in the denominators, so the
loss scale never depends on what was flagged.

The statistics report the *push balance* of the Misalign term: ``push_down`` = sum over flagged
tokens of w p/(1 - p) (the weight on log p of the unlikelihood gradient, p = p(y_t | x)) and
``push_up`` = the number of unflagged tokens trained with likelihood (weight 1 each). When
push_down < push_up, the plain-prompt term raises the bad response on balance.

``"paper"`` and ``"token"`` are GA/DDP-invariant when the trainer passes ``num_items`` = the
:func:`count_items` total of the whole accumulation step (all ranks): the micro-batch losses then
sum to the loss of the full batch. Without ``num_items`` each divides by its own micro-batch count.

Switches (the paper's ablations): ``align_p=False`` drops positive rows, ``align_n=False`` drops
the Align-N likelihood, ``misalign=False`` drops L1 (= Hindsight), ``detect=False`` flags every
token of a negative response (ul_all), ``gamma`` > 0 is the v4 dynamic weight. A row all of whose
terms are switched off counts as absent (as if the example were not in the data). An empty mean
contributes 0, never NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from cutkit._checks import check_number
from cutkit.train.detection import check_threshold, flag_tokens
from cutkit.train.loss_inputs import check_logprob_values, check_loss_shapes, check_num_items
from cutkit.train.vocabulary import (
    DEFAULT_THRESHOLD,
    DISTILL_WEIGHT_WHY,
    GAMMA_WHY,
    NORMALIZATIONS,
    UL_WEIGHT_WHY,
    UNFLAGGED,
)

_LN2 = math.log(2.0)


LOG1MEXP_EPS = 1e-6
"""How close to 0 :func:`log1mexp` lets its input come: log p is clamped to <= -1e-6, i.e. p to
<= 1 - 1e-6. Without it the gradient 1 / (1 - p) grows without bound as p -> 1 (1e30 at
log p = -1e-30); with it a flagged token's unlikelihood is at most -log(1e-6) = 13.8 nats and its
gradient at most about 1e6. Inputs below -1e-6 are computed exactly as before."""


def log1mexp(x: Tensor) -> Tensor:
    """log(1 - exp(x)) for x <= 0, elementwise, stable at both ends, finite and bounded gradients.

    x is clamped to <= -:data:`LOG1MEXP_EPS` (so x in [-1e-6, 0], i.e. p >= 1 - 1e-6, gives
    log(1e-6 - ...) ~ -13.8 with zero gradient past the clamp, and the gradient never exceeds about
    1e6); near 0 it uses log(-expm1(x)), below -ln 2 log1p(-exp(x)) (Maechler 2012). Each branch
    gets an input from its own safe range so the unused branch cannot put NaN in the grad.
    """
    x = x.clamp(max=-LOG1MEXP_EPS)
    near_zero = x > -_LN2
    a = torch.where(near_zero, x, -_LN2)  # safe for expm1 branch
    b = torch.where(near_zero, -_LN2, x)  # safe for log1p branch
    return torch.where(near_zero, torch.log(-torch.expm1(a)), torch.log1p(-torch.exp(b)))


@torch.no_grad()
def detect_flagged(
    logp_judged: Tensor,
    logp_plain: Tensor,
    mask: Tensor,
    threshold: float = DEFAULT_THRESHOLD,
) -> Tensor:
    """Inappropriate tokens: :func:`~cutkit.train.detection.flag_tokens` after a shape check.

    Args:
        logp_judged, logp_plain: (B, L) log-probs of the same tokens in the two contexts.
        mask: (B, L) bool, the tokens that may be flagged (negative rows' response tokens).
        threshold: lambda >= 1, finite (1.1 online, 1.2 Shepherd in the paper).

    Returns:
        (B, L) bool, detached (no gradient flows through the decision).
    """
    check_loss_shapes(logp_judged, logp_plain, mask, logp_judged.new_empty(logp_judged.shape[:1]))
    return flag_tokens(logp_judged, logp_plain, mask.bool(), threshold)


def unlikelihood_weight(ul_weight: float, gamma: float, logp_judged: Tensor) -> Tensor | float:
    """The weight w_t = alpha * p_judged^gamma of a flagged token's unlikelihood: ``ul_weight``
    itself when ``gamma`` is 0, else a tensor of ``logp_judged``'s shape (pass it detached)."""
    return ul_weight * torch.exp(gamma * logp_judged) if gamma != 0 else ul_weight


def push_per_token(
    logp_plain: Tensor,
    flagged: Tensor,
    counted: Tensor,
    weight: Tensor | float,
    unflagged: str = "mle",
) -> tuple[Tensor, Tensor]:
    """The push balance of the Misalign term, per token (module doc): the one formula of the
    loss statistics and of :func:`cutkit.eval.detection.push_balance`.

    Args:
        logp_plain: (B, L) log p of the tokens in the plain prompt (pass it detached).
        flagged: (B, L) bool, the tokens given unlikelihood.
        counted: (B, L) bool, the Misalign tokens to count.
        weight: the unlikelihood weight, a float or a (B, L) tensor (:func:`unlikelihood_weight`).
        unflagged: "mle" (unflagged tokens trained with likelihood push up, weight 1) or
            "ignore" (they push nothing).

    Returns:
        ``(down, up)``: (B, L) w p / (1 - p) on the counted flagged tokens (0 elsewhere; p / (1 - p)
        through :func:`log1mexp`, so p = 1 stays finite) and (B, L) bool, the counted unflagged
        tokens that push up.
    """
    odds = torch.exp(logp_plain - log1mexp(logp_plain))  # p / (1 - p)
    down = torch.where(counted & flagged, weight * odds, 0.0)
    up = counted & ~flagged if unflagged == "mle" else torch.zeros_like(counted)
    return down, up


@dataclass
class CUTLossOutput:
    """Result of :func:`cut_loss`. ``loss == mle + ul``; all three are scalars with grad.

    ``stats`` holds detached sums and counts (summable across micro-batches) that
    :meth:`metrics` turns into averages.
    """

    loss: Tensor  # () the objective
    mle: Tensor  # () likelihood part: Align-P and Align-N terms, normalised as in loss
    ul: Tensor  # () Misalign part: unlikelihood on flagged, likelihood on the other tokens
    flagged: Tensor  # (B, L) bool, tokens given unlikelihood
    stats: dict[str, Tensor] = field(default_factory=dict, repr=False)

    def metrics(self) -> dict[str, float]:
        """TRL-style names -> python floats; a ratio with an empty denominator is left out.

        Keys: loss/mle, loss/ul, num_tokens (response tokens), and when the batch has negative
        tokens ul/flagged_frac, ul/logratio_mean, logps/judged, logps/plain (means over negative
        response tokens), ul/push_down and ul/push_up (push masses per negative token, module
        doc) and ul/push_ratio (push_down / push_up, when push_up > 0) or, for self-distillation,
        distill/kl (mean divergence per negative token), and with positive tokens
        logps/positive. "loss" itself is left to the
        trainer, which logs it already.
        """
        s = {k: float(v) for k, v in self.stats.items()}
        out = {
            "loss/mle": self.mle.item(),
            "loss/ul": self.ul.item(),
            "num_tokens": s["num_tokens"],
        }
        if s["neg_tokens"] > 0:
            out["ul/flagged_frac"] = s["flagged"] / s["neg_tokens"]
            out["ul/logratio_mean"] = (s["judged_sum"] - s["plain_sum"]) / s["neg_tokens"]
            out["logps/judged"] = s["judged_sum"] / s["neg_tokens"]
            out["logps/plain"] = s["plain_sum"] / s["neg_tokens"]
            if "distill_sum" in s:
                out["distill/kl"] = s["distill_sum"] / s["neg_tokens"]
            if "push_down" in s:
                out["ul/push_down"] = s["push_down"] / s["neg_tokens"]
                out["ul/push_up"] = s["push_up"] / s["neg_tokens"]
                if s["push_up"] > 0:
                    out["ul/push_ratio"] = s["push_down"] / s["push_up"]
        if s["pos_tokens"] > 0:
            out["logps/positive"] = s["pos_sum"] / s["pos_tokens"]
        return out


def _token_sets(
    mask: Tensor, negative: Tensor, align_p: bool, align_n: bool, misalign: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """-> (B, L) bool: negative-row tokens, first-context likelihood tokens, Misalign tokens."""
    neg = mask & negative[:, None]
    pos = mask & ~negative[:, None]
    none = torch.zeros_like(mask)
    like = (pos if align_p else none) | (neg if align_n else none)
    return neg, like, (neg if misalign else none)


def count_items(
    mask: Tensor,
    negative: Tensor,
    *,
    normalization: str = "token",
    align_p: bool = True,
    align_n: bool = True,
    misalign: bool = True,
) -> Tensor:
    """The default denominator of a micro-batch: active examples ("paper") or tokens ("token").

    Sum it over the micro-batches (and ranks) of one optimizer step and pass the total to
    ``cut_loss(..., num_items=)`` to make the loss independent of how records fall into batches.
    """
    if normalization not in ("paper", "token"):
        raise ValueError(f"count_items is defined for 'paper' and 'token', not {normalization!r}")
    check_loss_shapes(mask, mask, mask, negative)
    _, like, ul = _token_sets(mask.bool(), negative.bool(), align_p, align_n, misalign)
    active = like | ul  # (B, L); rows are all-or-nothing
    return active.any(1).sum() if normalization == "paper" else active.sum()


def _mean(total: Tensor, count: Tensor) -> Tensor:
    """total / count, 0 when count == 0 (an empty mean contributes nothing)."""
    return total / count.clamp(min=1)


def cut_loss(
    logp_judged: Tensor,
    logp_plain: Tensor,
    mask: Tensor,
    negative: Tensor,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    ul_weight: float = 1.0,
    gamma: float = 0.0,
    normalization: str = "official",
    align_p: bool = True,
    align_n: bool = True,
    misalign: bool = True,
    detect: bool = True,
    unflagged: str = "mle",
    num_items: Tensor | float | None = None,
    flagged: Tensor | None = None,
    distill: Tensor | None = None,
    distill_weight: float = 1.0,
    check_inputs: bool = True,
) -> CUTLossOutput:
    """Contrastive Unlikelihood Training loss on aligned per-token log-probs.

    Args:
        logp_judged: (B, L) log p of response tokens in the row's first context (see module doc).
        logp_plain: (B, L) log p in the plain context; only negative rows are read.
        mask: (B, L) bool response tokens; negative: (B,) bool.
        threshold: lambda >= 1 of the detection p_judged > lambda * p_plain (strict).
        ul_weight: alpha >= 0, finite, the weight of a flagged token's -log(1 - p_plain).
        gamma: dynamic weight w_t = alpha * p_judged^gamma (detached), finite >= 0; 0 = constant
            alpha. Out-of-range alpha or gamma raise ValueError saying why.
        normalization: "official" | "paper" | "token" (module doc).
        align_p, align_n, misalign, detect: ablation switches (module doc).
        unflagged: "mle" (the paper: likelihood on unflagged Misalign tokens) or "ignore" (no
            loss on them; they still count in the denominators).
        num_items: denominator override for "paper" (examples) / "token" (tokens), e.g. the
            :func:`count_items` total of a gradient-accumulation step.
        flagged: (B, L) bool detection computed elsewhere (e.g. by a dropout-free forward pass);
            None detects from ``logp_judged`` and ``logp_plain``. Only negative response tokens
            can be flagged; ignored when ``detect=False``.
        distill: (B, L) per-token self-distillation divergence of the negative rows
            (:func:`cutkit.train.distill.logprobs_and_divergence`); when given, the Misalign term
            of every bad-response token is ``distill_weight * distill`` instead of unlikelihood /
            likelihood (the ``self_distill`` objective). Detection is still computed, for the
            statistics only.
        distill_weight: finite >= 0, the weight of ``distill`` against the likelihood terms.
        check_inputs: refuse the values that would make the loss nonsense
            (:mod:`cutkit.train.loss_inputs`): a log-prob that is not finite and <= 0 where it
            counts (``logp_judged`` at the response tokens, ``logp_plain`` at the negative rows'),
            and a ``num_items`` that is not > 0; one masked reduction and one device sync.
            Anything, NaN included, may stand where ``mask`` (or ``negative``) is False: it
            reaches neither the loss nor its gradient. :class:`~cutkit.train.trainer.CUTTrainer`
            passes False: its log-probs come from ``log_softmax`` (<= 0), and its non-finite guard
            names the step and term of a NaN without a sync per micro-batch. Shapes are always
            checked: (B, L) log-probs, mask, ``flagged`` and ``distill``, (B,) ``negative``.

    Returns:
        :class:`CUTLossOutput` with loss = mle + ul.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if unflagged not in UNFLAGGED:
        raise ValueError(f"unflagged must be one of {UNFLAGGED}, got {unflagged!r}")
    check_threshold(threshold)
    check_number("ul_weight", ul_weight, minimum=0, why=UL_WEIGHT_WHY)
    check_number("gamma", gamma, minimum=0, why=GAMMA_WHY)
    check_number("distill_weight", distill_weight, minimum=0, why=DISTILL_WEIGHT_WHY)
    if num_items is not None and normalization == "official":
        raise ValueError("num_items is not used by normalization='official' (per micro-batch)")
    check_loss_shapes(logp_judged, logp_plain, mask, negative, flagged=flagged, distill=distill)
    mask, negative = mask.bool(), negative.bool()
    neg, like, ul_tok = _token_sets(mask, negative, align_p, align_n, misalign)  # (B, L) each
    if check_inputs:
        check_logprob_values(logp_judged, logp_plain, mask, neg)
        check_num_items(num_items)

    # at least fp32; unread cells (padding, positive rows' plain context) -> 0 so they cannot
    # bring NaN/inf into values or gradients
    dtype = torch.promote_types(logp_judged.dtype, torch.float32)
    lj = torch.where(mask, logp_judged.to(dtype), 0.0)  # (B, L)
    lp = torch.where(neg, logp_plain.to(dtype), 0.0)  # (B, L)

    flagged = flag_tokens(lj, lp, neg, threshold, detect=detect, given=flagged)  # (B, L)
    weight = unlikelihood_weight(ul_weight, gamma, lj.detach())
    log1m_p = log1mexp(lp)  # (B, L) log(1 - p_plain)
    kept = -lp if unflagged == "mle" else torch.zeros_like(lp)  # unflagged tokens
    mis_tok = torch.where(flagged, -weight * log1m_p, kept)  # (B, L) Misalign per token
    if distill is not None:  # self-distillation replaces the hard decision
        mis_tok = distill_weight * torch.where(neg, distill.to(dtype), 0.0)
    nll = torch.where(like, -lj, 0.0)  # (B, L) first-context likelihood terms
    mis = torch.where(ul_tok, mis_tok, 0.0)  # (B, L)

    if normalization == "official":
        l_like = _mean(nll.sum(), like.sum())
        l_ul = _mean(mis.sum(), ul_tok.sum())
        half = torch.where(ul_tok.any(), 0.5, 1.0)  # (L_like + L_ul) / 2 iff a Misalign token
        mle, ul = half * l_like, half * l_ul
    elif normalization == "paper":
        n_row = mask.sum(1)  # (B,)
        l2 = _mean(nll.sum(1), n_row)  # (B,) per-example likelihood
        l1 = _mean(mis.sum(1), n_row)  # (B,) per-example Misalign
        denom = (like | ul_tok).any(1).sum() if num_items is None else num_items
        mle, ul = _mean(l2.sum(), torch.as_tensor(denom)), _mean(l1.sum(), torch.as_tensor(denom))
    else:  # token
        denom = (like | ul_tok).sum() if num_items is None else num_items
        mle, ul = _mean(nll.sum(), torch.as_tensor(denom)), _mean(mis.sum(), torch.as_tensor(denom))

    pos = mask & ~negative[:, None]
    stats = {
        "num_tokens": mask.sum(),
        "neg_tokens": neg.sum(),
        "pos_tokens": pos.sum(),
        "flagged": flagged.sum(),
        "judged_sum": torch.where(neg, lj, 0.0).sum().detach(),
        "plain_sum": lp.sum().detach(),
        "pos_sum": torch.where(pos, lj, 0.0).sum().detach(),
    }
    if distill is not None:
        stats["distill_sum"] = torch.where(neg, distill.to(dtype), 0.0).sum().detach()
    elif misalign:
        down, up = push_per_token(lp.detach(), flagged, ul_tok, weight, unflagged)
        stats["push_down"] = down.sum().detach()
        stats["push_up"] = up.sum()
    return CUTLossOutput(loss=mle + ul, mle=mle, ul=ul, flagged=flagged, stats=stats)
