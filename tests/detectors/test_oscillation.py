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


# -- mode hopping, read from div/mode_shift --------------------------------------------------

EVALS = np.arange(0, 2000, 50)


def _evals(shift, covered, hq, total=8):
    """A run's diversity evaluations every 50 steps (the first shift is NaN, as recorded)."""
    n = EVALS.size
    shift = np.broadcast_to(np.asarray(shift, dtype=float), (n,)).copy()
    shift[0] = np.nan
    return {
        S.LOSS_G: 0.9 + _noise(7, 0.05)[:1000], S.LOSS_D: 1.3 + _noise(8, 0.05)[:1000],
        S.DIV_MODE_SHIFT: pd.Series(shift, index=EVALS),
        S.DIV_MODES_COVERED: pd.Series(np.broadcast_to(covered, (n,)).astype(float), index=EVALS),
        S.DIV_MODES_TOTAL: pd.Series(np.full(n, float(total)), index=EVALS),
        S.DIV_HQ_SHARE: pd.Series(np.broadcast_to(hq, (n,)).astype(float), index=EVALS),
    }


def _hop_shifts(seed=0):
    # G moves 30-60% of its mass between evaluations, as the zoo's 1-D-latent runs do.
    return np.random.default_rng(seed).uniform(0.3, 0.6, EVALS.size)


def test_a_g_hopping_between_few_modes_is_oscillation_with_its_steps(make_run):
    shifts = _hop_shifts()
    covered = np.tile([3, 2, 4, 3], EVALS.size // 4)
    (f,) = _detect(make_run(_evals(shifts, covered, 0.4)))
    tail = slice(EVALS.size // 2, None)
    assert f.kind == "oscillation" and f.evidence["metric"] == S.DIV_MODE_SHIFT
    assert f.evidence["mode_shift_median"] == pytest.approx(np.median(shifts[tail]))
    assert f.evidence["mode_fraction_median"] == pytest.approx(3 / 8)
    assert f.evidence["hops"] == EVALS.size // 2 and f.evidence["modes_total"] == 8
    assert f.start_step == EVALS[EVALS.size // 2] and f.end_step == EVALS[-1]
    # The evidence names every evaluation of the window: step, shift, modes covered.
    first = f.evidence["shifts"].split(",")[0]
    assert first == f"{EVALS[EVALS.size // 2]}:{shifts[EVALS.size // 2]:.2f}/{covered[EVALS.size // 2]}"
    assert "Mode hopping from step 1000" in f.message


def test_a_g_that_keeps_its_modes_does_not_hop(make_run, healthy):
    # Steady full coverage (the healthy fixture) and a steady collapse onto one mode.
    steady = {**healthy(), S.DIV_MODE_SHIFT: pd.Series(0.05, index=np.arange(0, 1000, 50))}
    assert _detect(make_run(steady)) == []
    assert _detect(make_run(_evals(0.03, 1, 0.8))) == []


def test_a_spread_g_that_reshuffles_its_mass_does_not_hop(make_run):
    # The healthy 2-D-latent ring8 runs move ~45% of their mass between evaluations
    # while covering 6-8 modes: no hop, since G covers most modes at every evaluation.
    assert _detect(make_run(_evals(_hop_shifts(1), 6, 0.45))) == []


def test_shifts_of_a_handful_of_samples_are_not_hops(make_run):
    # A G with 3% of its samples near a mode: its histogram is ~30 samples and jumps.
    assert _detect(make_run(_evals(1.0, 1, 0.03))) == []


def test_hopping_that_stopped_in_the_first_half_does_not_fire(make_run):
    shifts = np.where(EVALS < 1000, 0.5, 0.04)
    covered = np.where(EVALS < 1000, 3, 8)
    assert _detect(make_run(_evals(shifts, covered, 0.5))) == []


def test_too_few_evaluations_do_not_fire(make_run):
    run = _evals(_hop_shifts(2), 3, 0.4)
    for name in (S.DIV_MODE_SHIFT, S.DIV_MODES_COVERED, S.DIV_MODES_TOTAL, S.DIV_HQ_SHARE):
        run[name] = run[name].iloc[:10]  # 5 in the second half, 4 of them with a shift
    assert _detect(make_run(run)) == []


def test_hop_thresholds_are_validated():
    from gandiag.detectors.oscillation import OscillationConfig

    with pytest.raises(ValueError, match="hop_min_shift to be a number in"):
        OscillationConfig(hop_min_shift=1.5)
    with pytest.raises(ValueError, match="hop_min_evals to be an int >= 1"):
        OscillationConfig(hop_min_evals=0)
