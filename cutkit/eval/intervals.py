"""Intervals of the experiments' proportions: a rate over answers, a paired difference of two
arms on the same tasks, and a difference of two rates on independent samples. (Over seeds, see
:func:`cutkit.eval.comparison_report.seed_interval`.)

>>> low, high = wilson(8, 10)
>>> round(low, 3), round(high, 3)
(0.49, 0.943)
"""

from __future__ import annotations

import math

import numpy as np


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of the proportion ``successes / n`` ((nan, nan) when n is 0)."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, draws: int = 4000, seed: int = 0
) -> tuple[float, float, float]:
    """``(mean difference a - b, 2.5% quantile, 97.5% quantile)`` over ``draws`` bootstrap samples
    of the tasks (with replacement); ``a`` and ``b`` are (seeds, tasks) 0/1 arrays, or (tasks,)
    for a seed-less arm (broadcast), each averaged over its seeds per task first. An interval that
    holds 0 is a tie."""
    a, b = np.atleast_2d(a).astype(float), np.atleast_2d(b).astype(float)
    per_task = a.mean(0) - b.mean(0)  # (tasks,)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(per_task), size=(draws, len(per_task)))
    means = per_task[idx].mean(1)
    return (
        float(per_task.mean()),
        float(np.quantile(means, 0.025)),
        float(np.quantile(means, 0.975)),
    )


def newcombe(
    successes_a: int, n_a: int, successes_b: int, n_b: int, z: float = 1.96
) -> tuple[float, float, float]:
    """``(difference p_a - p_b, low, high)``: Newcombe's 95% interval (method 10, from the two
    Wilson intervals) for two proportions on *independent* samples (different answers; on the
    same tasks use :func:`paired_bootstrap`). An interval that holds 0 is a tie."""
    p_a, p_b = successes_a / n_a, successes_b / n_b
    (low_a, high_a), (low_b, high_b) = wilson(successes_a, n_a, z), wilson(successes_b, n_b, z)
    diff = p_a - p_b
    return (
        diff,
        diff - math.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2),
        diff + math.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2),
    )
