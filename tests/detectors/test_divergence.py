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
    del m[S.NONFINITE]  # a run written without the Monitor's flag: NaN is read from the cadence
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
    del m[S.NONFINITE]
    m[S.LOSS_D][420:] = np.nan
    (f,) = _detect(make_run(m, {"status": "diverged"}))
    assert f.start_step == 420 and f.evidence["reasons"] == "nonfinite,status"


def test_status_diverged_without_metrics_still_fires(make_run):
    (f,) = _detect(make_run({}, {"status": "diverged", "diverged_at": 12}))
    assert (f.start_step, f.end_step) == (12, 12)


def test_with_the_monitor_flag_a_nan_cell_is_a_value_not_recorded(make_run, healthy):
    # Rows without a D step (D trained every other iteration) or a last row with
    # no G step have NaN cells; the Monitor's nonfinite flag says they are not blow-ups.
    m = healthy(0)
    m[S.LOSS_D][1::4] = np.nan
    m[S.GRAD_NORM_D][1::4] = np.nan
    m[S.LOSS_G][999] = np.nan
    assert _detect(make_run(m)) == []
    m[S.NONFINITE][613:] = 1
    (f,) = _detect(make_run(m))
    assert f.start_step == 613 and f.evidence["reason"] == "nonfinite"


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


@pytest.mark.parametrize("pattern", ["d_every_4th_skipped", "g_step_first", "ends_on_a_d_step"])
def test_monitor_runs_with_rows_missing_a_step_do_not_diverge(tmp_path, pattern):
    import torch
    import torch.nn.functional as F
    from torch import nn

    from gandiag.monitor import Monitor, MonitorConfig
    from gandiag.rundir import load_run

    torch.manual_seed(0)
    G, D = nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1), nn.Flatten(0))
    opt_g, opt_d = torch.optim.SGD(G.parameters(), 1e-2), torch.optim.SGD(D.parameters(), 1e-2)

    def d_step(mon):
        x, fake = torch.randn(16, 2) + 2, G(torch.randn(16, 2)).detach()
        real_out, fake_out = D(x), D(fake)
        loss = F.softplus(-real_out).mean() + F.softplus(fake_out).mean()
        opt_d.zero_grad()
        loss.backward()
        mon.discriminator_step(loss=loss, real_out=real_out, fake_out=fake_out)
        opt_d.step()

    def g_step(mon):
        out = D(G(torch.randn(16, 2)))
        loss = F.softplus(-out).mean()
        opt_g.zero_grad()
        loss.backward()
        mon.generator_step(loss=loss, fake_out=out)
        opt_g.step()

    with Monitor(G, D, tmp_path / "r", config=MonitorConfig(record_every=1, flush_every=7)) as mon:
        for i in range(120):
            if pattern == "g_step_first":
                g_step(mon)
                d_step(mon)
                continue
            if not (pattern == "d_every_4th_skipped" and i % 4 == 3):
                d_step(mon)
            g_step(mon)
        if pattern == "ends_on_a_d_step":
            d_step(mon)
    run = load_run(tmp_path / "r")
    assert run.metrics[[S.LOSS_D, S.LOSS_G]].isna().any().any()  # the gaps this is about are there
    assert _detect(run) == []
