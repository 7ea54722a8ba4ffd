"""The detection rule of CUT, in one place (docs/method.md §3).

A response token is *flagged* when the judgment made it more than lambda times as likely:

    log p(y_t | judged prompt) - log p(y_t | plain prompt) > log(lambda),   strict, lambda >= 1

Training (:func:`cutkit.train.losses.detect_flagged`), the evaluation token frames and reports
(:mod:`cutkit.eval.tokens`, :mod:`cutkit.eval.detection`) and the views (:mod:`cutkit.viz`) all ask
:func:`is_flagged`, and every public entry point that takes lambda checks it with
:func:`check_threshold`.

>>> is_flagged(0.2, 1.1), is_flagged(0.0, 1.0)
(True, False)
"""

from __future__ import annotations

import math

from cutkit._checks import check_number
from cutkit.train.vocabulary import THRESHOLD_WHY


def check_threshold(threshold: float) -> float:
    """lambda as a float; ValueError unless it is a finite number >= 1, the one rule of every
    command, setting and view that takes lambda (through :func:`cutkit._checks.check_number`).

    lambda < 1 would flag tokens the judgment made *less* likely, and inf (or nan) flags nothing
    (:data:`~cutkit.train.vocabulary.THRESHOLD_WHY`).

    >>> check_threshold(0.5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: threshold (lambda) must be a finite number >= 1, got 0.5: a token is flagged ...
    """
    return check_number("threshold (lambda)", threshold, minimum=1, why=THRESHOLD_WHY)


def log_threshold(threshold: float) -> float:
    """log(lambda) in nats, the cut-off of :func:`is_flagged` (after :func:`check_threshold`)."""
    return math.log(check_threshold(threshold))


def is_flagged(log_ratio, threshold: float):
    """``log_ratio > log(threshold)``, strict, elementwise; NaN (no judged context) -> False.

    Args:
        log_ratio: log p_judged - log p_plain in nats: a Python float, a numpy array, a pandas
            Series or a torch tensor (compared in its own dtype).
        threshold: lambda >= 1, finite.

    Returns:
        bool, or a bool array / Series / tensor of ``log_ratio``'s shape.
    """
    return log_ratio > log_threshold(threshold)


def flag_tokens(logp_judged, logp_plain, candidates, threshold: float, *, detect=True, given=None):
    """Which tokens get unlikelihood: the one decision of training (docs/method.md §3), asked by
    :func:`cutkit.train.losses.cut_loss`, :func:`cutkit.train.losses.detect_flagged` and the
    trainer's dropout-free detection.

    Args:
        logp_judged, logp_plain: (B, L) tensors, log p of the same tokens in the two contexts.
        candidates: (B, L) bool, the tokens that may be flagged (negative rows' response tokens).
        threshold: lambda >= 1, finite.
        detect: False flags every candidate (the ``ul_all`` ablation: no detection).
        given: (B, L) bool flags decided elsewhere (gold spans, a dropout-free pass); only the
            candidates among them stay flagged. None: :func:`is_flagged` of the detached log
            ratio.

    Returns:
        (B, L) bool tensor, with no gradient.
    """
    if not detect:
        return candidates.clone()
    if given is not None:
        return given.bool() & candidates
    return candidates & is_flagged(logp_judged.detach() - logp_plain.detach(), threshold)
