import numpy as np
import pandas as pd
import pytest

from gandiag import schema as S
from gandiag.detectors import analyze
from gandiag.detectors.oscillation import Oscillation

T = np.arange(1000)


def _detect(run):
    return Oscillation().detect(run)


def _noise(seed, scale=0.1):
    return scale * np.random.default_rng(seed).normal(size=T.size)


def test_a_sine_on_a_trend_fires_with_its_period(make_run):
    loss_g = 2.0 - 0.001 * T + 0.3 * np.sin(2 * np.pi * T / 60) + _noise(0)
    (f,) = _detect(make_run({S.LOSS_G: loss_g, S.LOSS_D: 1.2 + _noise(1)}))
    assert f.kind == "oscillation" and f.severity == "warning"
    assert f.evidence["metric"] == S.LOSS_G and f.evidence["signals"] == S.LOSS_G
    assert f.evidence["period_steps"] == pytest.approx(60, rel=0.2)
    assert f.start_step <= 100 and f.end_step == 999
    assert f.evidence["amplitude"] == pytest.approx(0.3, rel=0.3)


def test_the_period_is_reported_in_steps_not_points(make_run):
    steps = T * 10  # logged every 10 steps
    d_fake = pd.Series(0.4 + 0.1 * np.sin(2 * np.pi * T / 40) + _noise(2, 0.03), index=steps)
    (f,) = _detect(make_run({S.D_FAKE: d_fake}))
    assert f.evidence["period_steps"] == pytest.approx(400, rel=0.2)
    assert f.end_step == 9990


@pytest.mark.parametrize("seed", range(5))
def test_noise_on_a_trend_does_not_fire(make_run, seed):
    loss = 1.5 - 0.0008 * T + _noise(seed, 0.2)
    run = make_run({S.LOSS_G: loss, S.LOSS_D: 1.3 + _noise(seed + 10), S.D_FAKE: 0.4 + _noise(seed + 20, 0.02)})
    assert _detect(run) == []


@pytest.mark.parametrize("seed", range(3))
def test_a_slow_random_wander_does_not_fire(make_run, seed):
    wander = np.cumsum(np.random.default_rng(seed).normal(size=T.size)) * 0.02
    assert _detect(make_run({S.LOSS_G: 1.0 + wander + _noise(seed + 5)})) == []


def test_a_damped_sine_does_not_fire(make_run):
    loss = 1.5 + 0.5 * np.exp(-T / 150) * np.sin(2 * np.pi * T / 50) + _noise(3, 0.05)
    assert _detect(make_run({S.LOSS_G: loss})) == []


def test_a_growing_spiral_is_divergence_not_oscillation(make_run):
    loss = 0.7 + 0.02 * np.exp(T / 250) * np.sin(2 * np.pi * T / 60) + _noise(4, 0.01)
    run = make_run({S.LOSS_G: loss})
    assert _detect(run) == []
    findings = analyze(run, kinds=["oscillation", "divergence"])
    assert [(f.kind, f.evidence["reason"]) for f in findings] == [("divergence", "spiral")]


def test_a_cycle_that_starts_mid_run_and_holds_fires_from_its_onset(make_run):
    loss = 1.0 + np.where(T >= 500, 0.3 * np.sin(2 * np.pi * T / 50), 0.0) + _noise(5, 0.05)
    run = make_run({S.LOSS_D: loss})
    (f,) = _detect(run)
    assert 420 <= f.start_step <= 560
    assert [g.kind for g in analyze(run)] == ["oscillation"]


def test_a_short_series_does_not_fire(make_run):
    assert _detect(make_run({S.LOSS_G: np.sin(2 * np.pi * T[:80] / 10)})) == []


def test_a_small_ripple_on_a_large_drift_does_not_fire(make_run):
    loss = 5.0 - 0.004 * T + 0.05 * np.sin(2 * np.pi * T / 40) + _noise(6, 0.005)
    assert _detect(make_run({S.LOSS_G: loss})) == []
