"""Mixed precision: a GradScaler's scale never reaches the recorded numbers, and
the steps it skips are recorded as skipped, not as divergence."""
import math

import pytest
import torch
from torch import nn

from gandiag import schema as S
from gandiag.losses import LOSSES
from gandiag.monitor import Monitor, MonitorConfig, MonitorUsageError
from gandiag.rundir import load_run

# These tests compare every step with hand values: every step is recorded (the
# default records every 2nd; tests/test_monitor.py has the record_every tests).
EVERY_STEP = MonitorConfig(record_every=1)

SCALE = 2.0 ** 10
MINIMAX = LOSSES["minimax"]


def nets(seed=0):
    torch.manual_seed(seed)
    G = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    D = nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1), nn.Flatten(0))
    return G, D


def grad_norm(module):
    return math.sqrt(sum(float(p.grad.double().square().sum()) for p in module.parameters() if p.grad is not None))


def amp_loop(mon, G, D, scaler, steps, *, inf_g=(), inf_d=(), d_steps=1, unscale_d=False):
    """A GAN loop under a GradScaler; returns hand-computed, unscaled references."""
    gen = torch.Generator().manual_seed(1)
    opt_g = torch.optim.SGD(G.parameters(), 1e-2)
    opt_d = torch.optim.SGD(D.parameters(), 1e-2)
    ref = []
    for step in range(steps):
        d_norms = []
        for j in range(d_steps):
            x = torch.randn(16, 2, generator=gen) + 2
            r, f = D(x), D(G(torch.randn(16, 4, generator=gen)).detach())
            loss_d = MINIMAX.d_loss(r, f)
            opt_d.zero_grad()
            scaler.scale(loss_d).backward()
            if (step, j) in inf_d:
                D[0].weight.grad[0, 0] = float("inf")
            if unscale_d:
                scaler.unscale_(opt_d)  # e.g. to clip: the Monitor must not divide again
                d_norms.append(grad_norm(D))
            else:
                d_norms.append(grad_norm(D) / scaler.get_scale())
            mon.discriminator_step(loss=loss_d, real_out=r, fake_out=f)
            scaler.step(opt_d)
            scaler.update()
        fake = G(torch.randn(16, 4, generator=gen))
        out = D(fake)
        loss_g = MINIMAX.g_loss(out, out.detach())
        opt_g.zero_grad()
        scaler.scale(loss_g).backward()
        if step in inf_g:
            G[0].weight.grad[0, 0] = float("inf")
        scale = scaler.get_scale()
        ref.append({"grad_norm_g": grad_norm(G) / scale, "grad_norm_d": d_norms,
                    "sigmoid": torch.sigmoid(out.detach()).mean().item()})
        mon.generator_step(loss=loss_g, fake_out=out, fake=fake)
        scaler.step(opt_g)
        scaler.update()
    return ref


def test_grad_scaler_exists_on_cpu():
    scaler = torch.amp.GradScaler("cpu", init_scale=SCALE)
    assert scaler.is_enabled() and scaler.get_scale() == SCALE


def test_scaled_norms_and_logit_gradient_are_recorded_unscaled(tmp_path):
    G, D = nets()
    scaler = torch.amp.GradScaler("cpu", init_scale=SCALE)
    with Monitor(G, D, tmp_path / "r", grad_scaler=scaler, config=MonitorConfig(record_every=1, flush_every=3)) as mon:
        ref = amp_loop(mon, G, D, scaler, 5)
    run = load_run(tmp_path / "r")
    m = run.metrics
    assert run.status == "completed" and run.meta["grad_scaler"] is True
    for i, r in enumerate(ref):
        assert m.loc[i, S.GRAD_NORM_G] == pytest.approx(r["grad_norm_g"], rel=1e-5)
        assert m.loc[i, S.GRAD_NORM_D] == pytest.approx(r["grad_norm_d"][0], rel=1e-5)
        # minimax: per-sample |d loss / d logit| is sigma(l), whatever the scale
        assert m.loc[i, S.LOGIT_GRAD_G] == pytest.approx(r["sigmoid"], rel=1e-5)
    assert (m[S.SKIPPED_G] == 0).all() and (m[S.SKIPPED_D] == 0).all()


def test_inf_gradient_step_is_skipped_not_diverged(tmp_path):
    G, D = nets()
    scaler = torch.amp.GradScaler("cpu", init_scale=SCALE)
    with Monitor(G, D, tmp_path / "r", grad_scaler=scaler, config=MonitorConfig(record_every=1, flush_every=2)) as mon:
        ref = amp_loop(mon, G, D, scaler, 6, inf_g={2}, inf_d={(4, 1)}, d_steps=2)
    run = load_run(tmp_path / "r")
    m = run.metrics
    assert run.status == "completed" and "diverged_at" not in run.meta
    assert list(m[S.SKIPPED_G]) == [0, 0, 1, 0, 0, 0]
    assert list(m[S.SKIPPED_D]) == [0, 0, 0, 0, 1, 0]
    assert (m[S.NONFINITE] == 0).all() and (m[S.D_STEPS] == 2).all()
    # The scaler halved its scale after each skip; every other step still reads unscaled.
    for i, r in enumerate(ref):
        if i != 2:
            assert m.loc[i, S.GRAD_NORM_G] == pytest.approx(r["grad_norm_g"], rel=1e-5)
    # A skipped step's gradient never reached the weights: not measured (NaN), for G as for D.
    assert m[S.GRAD_NORM_G].isna().tolist() == [False, False, True, False, False, False]
    assert (m.filter(like=S.GRAD_NORM_G_LAYER).loc[2].isna()).all()
    # A skipped D step's gradient never reached the weights: the row averages the applied one.
    assert m.loc[4, S.GRAD_NORM_D] == pytest.approx(ref[4]["grad_norm_d"][0], rel=1e-5)
    assert m.loc[3, S.GRAD_NORM_D] == pytest.approx(sum(ref[3]["grad_norm_d"]) / 2, rel=1e-5)


def test_unscale_before_the_call_is_not_divided_twice(tmp_path):
    G, D = nets()
    scaler = torch.amp.GradScaler("cpu", init_scale=SCALE)
    with Monitor(G, D, tmp_path / "r", grad_scaler=scaler, config=EVERY_STEP) as mon:
        ref = amp_loop(mon, G, D, scaler, 3, unscale_d=True)
    m = load_run(tmp_path / "r").metrics
    for i, r in enumerate(ref):
        assert m.loc[i, S.GRAD_NORM_D] == pytest.approx(r["grad_norm_d"][0], rel=1e-5)
        assert m.loc[i, S.GRAD_NORM_G] == pytest.approx(r["grad_norm_g"], rel=1e-5)


class ScalerWithoutInternals:
    """A scaler with GradScaler's interface but none of its private state."""

    def __init__(self, scale):
        self._inner = torch.amp.GradScaler("cpu", init_scale=scale)

    def scale(self, x):
        return self._inner.scale(x)

    def unscale_(self, opt):
        self._inner.unscale_(opt)

    def step(self, opt):
        return self._inner.step(opt)

    def update(self):
        self._inner.update()

    def get_scale(self):
        return self._inner.get_scale()


def test_a_scaler_without_torch_internals_falls_back_to_get_scale(tmp_path):
    G, D = nets()
    scaler = ScalerWithoutInternals(SCALE)
    with Monitor(G, D, tmp_path / "r", grad_scaler=scaler, config=EVERY_STEP) as mon:
        ref = amp_loop(mon, G, D, scaler, 2)
    m = load_run(tmp_path / "r").metrics
    assert m.loc[1, S.GRAD_NORM_G] == pytest.approx(ref[1]["grad_norm_g"], rel=1e-5)
    assert m.loc[1, S.LOGIT_GRAD_G] == pytest.approx(ref[1]["sigmoid"], rel=1e-5)


def test_a_wrong_grad_scaler_fails_at_the_call(tmp_path):
    G, D = nets()
    with pytest.raises(MonitorUsageError, match="Expected grad_scaler= to be a torch.amp.GradScaler .* but got float"):
        Monitor(G, D, tmp_path / "r", grad_scaler=2.0 ** 16, config=EVERY_STEP)
    assert not (tmp_path / "r").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_autocast_float16_on_cuda(tmp_path):
    G, D = (n.cuda() for n in nets())
    scaler = torch.amp.GradScaler("cuda", init_scale=SCALE)
    opt_g, opt_d = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    with Monitor(G, D, tmp_path / "r", grad_scaler=scaler, config=EVERY_STEP) as mon:
        for _ in range(5):
            x = torch.randn(64, 2, device="cuda")
            with torch.autocast("cuda", dtype=torch.float16):
                r, f = D(x), D(G(torch.randn(64, 4, device="cuda")).detach())
                loss_d = MINIMAX.d_loss(r.float(), f.float())
            opt_d.zero_grad()
            scaler.scale(loss_d).backward()
            mon.discriminator_step(loss=loss_d, real_out=r, fake_out=f)
            scaler.step(opt_d)
            with torch.autocast("cuda", dtype=torch.float16):
                out = D(G(torch.randn(64, 4, device="cuda")))
                loss_g = MINIMAX.g_loss(out.float(), out.detach().float())
            opt_g.zero_grad()
            scaler.scale(loss_g).backward()
            mon.generator_step(loss=loss_g, fake_out=out)
            scaler.step(opt_g)
            scaler.update()
    m = load_run(tmp_path / "r").metrics
    assert len(m) == 5 and (m[S.NONFINITE] == 0).all()
    assert (m[S.LOGIT_GRAD_G] < 1).all()  # unscaled: a per-sample mean of sigmoids


def test_nan_weights_under_a_scaler_are_a_divergence_not_skipped_steps(tmp_path):
    G, D = nets()
    scaler = torch.amp.GradScaler("cpu", init_scale=SCALE)
    mon = Monitor(G, D, tmp_path / "r", grad_scaler=scaler, config=EVERY_STEP)
    amp_loop(mon, G, D, scaler, 3)
    with torch.no_grad():
        G[0].weight.fill_(float("nan"))  # every later step's gradients (and losses) are NaN
    amp_loop(mon, G, D, scaler, 3)
    mon.close()
    run = load_run(tmp_path / "r")
    m = run.metrics
    assert run.status == "diverged" and run.meta["diverged_at"] == 3
    assert m[S.NONFINITE].tolist() == [0, 0, 0, 1, 1, 1] and (m.loc[3:, S.SKIPPED_G] == 1).all()
