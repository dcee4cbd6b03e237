import numpy as np
import pandas as pd
import pytest

from gandiag import schema as S
from gandiag.detectors.divergence import Divergence

T = np.arange(1000)


def _detect(run):
    return Divergence().detect(run)


def test_nan_loss_fires_at_the_first_nan(make_run, healthy):
    m = healthy(0)
    m[S.LOSS_G][613:] = np.nan
    m[S.GRAD_NORM_G][640:] = np.nan
    (f,) = _detect(make_run(m))
    assert f.kind == "divergence" and f.severity == "critical"
    assert (f.start_step, f.end_step) == (613, 999)
    assert f.evidence["reason"] == "nonfinite" and f.evidence["metric"] == S.LOSS_G


def test_status_diverged_uses_diverged_at(make_run, healthy):
    (f,) = _detect(make_run(healthy(0), {"status": "diverged", "diverged_at": 650}))
    assert f.start_step == 650 and f.evidence["reason"] == "status"


def test_status_diverged_starts_at_the_first_nan(make_run, healthy):
    m = healthy(0)
    m[S.LOSS_D][420:] = np.nan
    (f,) = _detect(make_run(m, {"status": "diverged"}))
    assert f.start_step == 420 and f.evidence["reasons"] == "nonfinite,status"


def test_status_diverged_without_metrics_still_fires(make_run):
    (f,) = _detect(make_run({}, {"status": "diverged", "diverged_at": 12}))
    assert (f.start_step, f.end_step) == (12, 12)


def test_inf_and_monitor_flag_fire(make_run, healthy):
    m = healthy(0)
    m[S.GRAD_NORM_D][700] = np.inf
    m[S.NONFINITE][705] = 1
    (f,) = _detect(make_run(m))
    assert f.start_step == 700 and f.evidence["value"] == "inf"


def test_steps_a_grad_scaler_skipped_are_not_divergence(make_run, healthy):
    m = healthy(0)
    for step in (100, 300, 301):
        m[S.GRAD_NORM_G][step] = np.inf
        m[S.SKIPPED_G][step] = 1
    m[S.GRAD_NORM_D][500] = np.nan
    m[S.SKIPPED_D][500] = 2
    assert _detect(make_run(m)) == []


def test_gaps_in_a_metric_logged_on_a_cadence_are_not_divergence(make_run, healthy):
    m = healthy(0)
    m[S.GRAD_NORM_D] = pd.Series(m[S.GRAD_NORM_D][::10], index=T[::10])
    assert _detect(make_run(m)) == []


def test_an_exploding_gradient_norm_fires(make_run, healthy):
    m = healthy(0)
    m[S.GRAD_NORM_D] = m[S.GRAD_NORM_D] * np.exp(np.clip(T - 500, 0, None) / 40.0)
    (f,) = _detect(make_run(m))
    assert f.evidence["reason"] == "exploding" and f.evidence["metric"] == S.GRAD_NORM_D
    assert 650 <= f.start_step <= 720  # e^(t/40) passes 100x at t ~ 184


def test_a_critic_loss_that_grows_from_zero_is_not_divergence(make_run, healthy):
    m = healthy(0)
    rng = np.random.default_rng(3)
    m[S.LOSS_D] = -12 * (1 - np.exp(-T / 150)) + 0.05 * rng.normal(size=T.size)
    m[S.LOSS_G] = 6 * (1 - np.exp(-T / 150)) + 0.05 * rng.normal(size=T.size)
    assert _detect(make_run(m, {"d_output": "critic"})) == []


def test_an_exploding_loss_fires(make_run, healthy):
    m = healthy(0)
    m[S.LOSS_D] = m[S.LOSS_D] * np.exp(np.clip(T - 600, 0, None) / 30.0)
    (f,) = _detect(make_run(m))
    assert f.evidence["metric"] == S.LOSS_D and 780 <= f.start_step <= 850


@pytest.mark.parametrize("seed", [0, 1])
def test_an_outward_spiral_fires(make_run, seed):
    noise = np.random.default_rng(seed).normal(size=T.size)
    d_fake = 0.5 + 0.01 * np.exp(T / 300) * np.sin(2 * np.pi * T / 40) + 0.005 * noise
    (f,) = _detect(make_run({S.D_FAKE: d_fake}))
    assert f.evidence["reason"] == "spiral" and f.evidence["growth"] >= 1.5
    assert f.evidence["period_steps"] == pytest.approx(40, rel=0.2)
    assert 200 <= f.start_step <= 700


def test_a_healthy_run_does_not_diverge(make_run, healthy):
    assert _detect(make_run(healthy(1))) == []


def test_runaway_logits_fire_even_inside_the_early_window(make_run, healthy):
    m = healthy(0)
    m[S.D_OUT_MAX] = np.where(T >= 20, 3e6, m[S.D_OUT_MAX])  # blown up at step 20, before any baseline forms
    (f,) = _detect(make_run(m))
    assert f.evidence["reason"] == "runaway_logits" and f.start_step == 20
    assert _detect(make_run(m, {"d_output": "critic"})) == []  # a critic's scores have no such bound


def test_a_gradient_that_recovers_from_vanishing_is_not_exploding(make_run, healthy):
    m = healthy(0)
    # Vanishes right after the start (a saturated D), then recovers to 3x its first value.
    m[S.GRAD_NORM_G] = np.where((T > 5) & (T < 500), 1e-4, 3.0) * np.exp(0.1 * np.random.default_rng(2).normal(size=T.size))
    assert _detect(make_run(m)) == []


def _chirp(amplitude, n=600):
    # D's logit on the fakes turning ever more slowly (phase ~ sqrt(t)), as in the Dirac-GAN spiral.
    t = np.arange(n)
    phase = 2 * np.pi * np.sqrt(t / 12.0)
    return 1 / (1 + np.exp(-amplitude(t) * np.sin(phase)))


def test_a_spiral_that_slows_as_it_grows_fires(make_run):
    (f,) = _detect(make_run({S.D_FAKE: _chirp(lambda t: 1 + t / 150)}))
    assert f.evidence["reason"] == "spiral" and f.evidence["metric"] == S.D_FAKE
    assert f.evidence["half_cycles"] >= 8 and f.evidence["growth"] >= 1.5


def test_a_slowing_cycle_of_constant_size_is_not_a_spiral(make_run):
    assert _detect(make_run({S.D_FAKE: _chirp(lambda t: np.full(t.shape, 2.0))})) == []
    assert _detect(make_run({S.D_FAKE: _chirp(lambda t: 1 + t / 150)}, {"d_output": "critic"})) == []
