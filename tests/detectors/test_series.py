import numpy as np
import pytest

from gandiag.detectors.series import (
    autocorrelation,
    periodicity,
    rolling_median,
    sustained_runs,
    swing,
    true_runs,
)


def test_true_runs():
    assert true_runs(np.array([0, 1, 1, 0, 1, 0, 1, 1, 1], bool)) == [(1, 2), (4, 4), (6, 8)]
    assert true_runs(np.array([], bool)) == []
    assert true_runs(np.ones(3, bool)) == [(0, 2)]


def test_sustained_runs_needs_points_and_fraction():
    mask = np.array([1, 1, 0, 1, 1, 1, 1, 0, 0, 0], bool)
    assert sustained_runs(mask, 2) == [(0, 1), (3, 6)]
    assert sustained_runs(mask, 3) == [(3, 6)]
    assert sustained_runs(mask, 1, min_fraction=0.5) == []


def test_rolling_median_removes_a_spike_and_keeps_length():
    x = np.ones(9)
    x[4] = 100
    out = rolling_median(x, 5)
    assert out.shape == x.shape and np.allclose(out, 1)


def test_swing_of_a_sine_is_its_amplitude():
    t = np.arange(1000)
    assert swing(2 * np.sin(2 * np.pi * t / 50)) == pytest.approx(2, rel=0.02)


def test_autocorrelation_of_a_constant_is_zero():
    assert np.all(autocorrelation(np.ones(10), 5) == 0)


@pytest.mark.parametrize("period", [12, 30, 80])
def test_periodicity_recovers_the_period(period):
    rng = np.random.default_rng(period)
    t = np.arange(1000)
    p = periodicity(np.sin(2 * np.pi * t / period) + 0.3 * rng.normal(size=t.size), 5, 0.2, 0.5, 4)
    assert p.period == pytest.approx(period, rel=0.05)
    assert p.trough < -0.5 and p.peak > 0.5 and p.repeat > 0.4
