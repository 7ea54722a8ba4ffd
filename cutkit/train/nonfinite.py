"""The non-finite guard of :class:`~cutkit.train.trainer.CUTTrainer`: a NaN or inf in a loss
term or in the gradient stops training before the optimizer step (so the weights stay finite), and
non-finite trainable weights are never saved.

:class:`NonFiniteGuard` is a mixin of ``transformers.Trainer`` hooks: the trainer's loss calls
:meth:`NonFiniteGuard._track_nonfinite` on every training micro-batch (no device sync), and the
guard checks what it kept once per optimizer step, in ``_get_grad_norm`` (after clipping, before
the step).
"""

from __future__ import annotations

import math

import torch

from cutkit.train.losses import CUTLossOutput

LOSS_TERMS = ("align_p", "align_n", "misalign", "likelihood (align_p + align_n)", "loss")
"""The loss terms the guard watches, in the order of its kept values."""


class NonFiniteError(FloatingPointError):
    """A loss term or the gradient went NaN or inf during training; ``step`` is the optimizer
    step being taken and ``term`` what went non-finite (align_p, align_n, misalign, ..., or
    gradient). Raised before the optimizer step, so the weights stay finite and nothing is saved."""

    def __init__(self, message: str, *, step: int, term: str):
        super().__init__(message)
        self.step, self.term = step, term


class NonFiniteGuard:
    """Mixin (before ``transformers.Trainer`` in the bases) that raises :class:`NonFiniteError`."""

    _nonfinite: torch.Tensor | None = None  # (len(LOSS_TERMS),) first bad values this step

    def _track_nonfinite(self, out: CUTLossOutput, loss: torch.Tensor) -> None:
        """Keep the first non-finite value of each term this step (no device sync; checked
        once per optimizer step in :meth:`_get_grad_norm`)."""
        mle = out.mle.detach().float()
        bad_mle = ~torch.isfinite(mle)
        pos, judged = (out.stats[k].detach().float() for k in ("pos_sum", "judged_sum"))
        values = torch.stack(
            [
                torch.where(bad_mle & ~torch.isfinite(pos), mle, 0.0),  # align_p
                torch.where(bad_mle & ~torch.isfinite(judged), mle, 0.0),  # align_n
                out.ul.detach().float(),  # misalign
                mle,
                loss.detach().float(),
            ]
        )
        if self._nonfinite is None or self._nonfinite.device != values.device:
            self._nonfinite = torch.zeros_like(values)
        first = torch.isfinite(self._nonfinite) & ~torch.isfinite(values)
        self._nonfinite = torch.where(first, values, self._nonfinite)

    def _get_grad_norm(self, model, grad_norm=None):
        """The Trainer's gradient norm (after clipping, before the optimizer step), and the
        guard: a non-finite loss term this step, or a non-finite gradient, raises
        :class:`NonFiniteError` naming the step and the term before the weights change."""
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        step = self.state.global_step + 1
        found, self._nonfinite = self._nonfinite, None
        if found is not None and not bool(torch.isfinite(found).all()):
            values = dict(zip(LOSS_TERMS, found.tolist(), strict=True))
            bad = [t for t in LOSS_TERMS if not math.isfinite(values[t])]
            named = [t for t in bad if t in ("align_p", "align_n", "misalign")] or bad[:1]
            terms = ", ".join(f"{t}={values[t]}" for t in named)
            raise NonFiniteError(
                f"training stopped at step {step}: non-finite loss term {terms} (loss="
                f"{values['loss']}); the weights were not updated by this step and the run was "
                "not saved. Check ul_weight, gamma and threshold, lower the learning rate, or "
                "train in float32",
                step=step,
                term=named[0].split(" ")[0],
            )
        norm = float(grad_norm) if grad_norm is not None else 0.0
        if not math.isfinite(norm):
            names = [
                name
                for name, p in model.named_parameters()
                if p.grad is not None and not bool(torch.isfinite(p.grad).all())
            ]
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            raise NonFiniteError(
                f"training stopped at step {step}: the gradient norm is {norm} (non-finite "
                f"gradient in {shown or 'the parameters'}) although the loss terms are finite; "
                "the weights were not updated by this step and the run was not saved. Lower "
                "the learning rate, set max_grad_norm, or train in float32",
                step=step,
                term="gradient",
            )
        return grad_norm

    def _check_finite_weights(self, what: str) -> None:
        """Refuse to save non-finite trainable weights (``what`` is being saved)."""
        bad = [
            name
            for name, p in self.model.named_parameters()
            if p.requires_grad and not bool(torch.isfinite(p.detach()).all())
        ]
        if bad:
            raise NonFiniteError(
                f"not saving {what}: {len(bad)} trainable tensor(s) hold NaN or inf "
                f"({', '.join(bad[:3])}); nothing was written",
                step=self.state.global_step,
                term="weights",
            )
