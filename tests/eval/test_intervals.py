"""The experiments' intervals: Wilson for a rate, a paired bootstrap for a difference on the same
tasks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cutkit.eval.intervals import newcombe, paired_bootstrap, wilson


def test_wilson_interval_of_a_rate():
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.490, abs=1e-3) and high == pytest.approx(0.943, abs=1e-3)
    assert wilson(0, 20)[0] == pytest.approx(0.0, abs=1e-12) and wilson(0, 20)[1] > 0
    assert all(math.isnan(v) for v in wilson(0, 0))


def test_paired_bootstrap_of_a_difference_on_the_same_tasks():
    a = np.array([[1, 1, 0, 1], [1, 0, 0, 1]])  # two seeds x four tasks
    b = np.array([[0, 1, 0, 0]])  # one seed, broadcast
    diff, low, high = paired_bootstrap(a, b)
    assert diff == pytest.approx(a.mean() - b.mean()) and low <= diff <= high
    assert paired_bootstrap(b, b) == (0.0, 0.0, 0.0)  # no difference: a tie with a zero interval
    assert paired_bootstrap(a, b, seed=1) == paired_bootstrap(a, b, seed=1)  # reproducible
    always_better = np.ones((3, 40)), np.zeros((1, 40))
    assert paired_bootstrap(*always_better) == (1.0, 1.0, 1.0)  # clear of 0: not a tie


def test_newcombe_interval_of_two_independent_rates():
    # Newcombe (1998), Table II, example (a): 56/70 - 48/80, interval 0.0524 to 0.3339
    diff, low, high = newcombe(56, 70, 48, 80)
    assert diff == pytest.approx(0.2) and low == pytest.approx(0.0524, abs=5e-4)
    assert high == pytest.approx(0.3339, abs=5e-4)
    # symmetric in the arms, and a tie when the rates are equal
    assert newcombe(48, 80, 56, 70) == pytest.approx((-0.2, -high, -low))
    diff, low, high = newcombe(10, 40, 10, 40)
    assert diff == 0 and low < 0 < high
