import json
import math
import os

import pytest
import torch
from torch import nn

from gandiag import schema as S
from gandiag.detectors import analyze
from gandiag.losses import LOSSES
from gandiag.monitor import Monitor, MonitorConfig, MonitorUsageError
from gandiag.rundir import RunDirError, load_run

# These tests compare every step with hand values: every step is recorded
# (the default records every 2nd; see the record_every tests).
EVERY_STEP = MonitorConfig(record_every=1)


def nets(seed=0):
    torch.manual_seed(seed)
    G = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    D = nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1), nn.Flatten(0))
    return G, D


def loop(mon, G, D, steps, *, loss="minimax", d_steps=1, probs=False, seed=0, detach_fake=False):
    """A plain user loop; returns per-step reference numbers computed by hand."""
    gen = torch.Generator().manual_seed(seed)
    opt_g = torch.optim.Adam(G.parameters(), 1e-3)
    opt_d = torch.optim.Adam(D.parameters(), 1e-3)
    v = LOSSES[loss]
    ref = []
    for _ in range(steps):
        d_losses, d_norms = [], []
        for _ in range(d_steps):
            x = torch.randn(32, 2, generator=gen) + 2
            fake = G(torch.randn(32, 4, generator=gen)).detach()
            r, f = D(x), D(fake)
            if probs:  # D ends in a sigmoid: its outputs are probabilities
                loss_d = nn.functional.binary_cross_entropy(r, torch.ones_like(r)) + nn.functional.binary_cross_entropy(f, torch.zeros_like(f))
            else:
                loss_d = v.d_loss(r, f)
            opt_d.zero_grad()
            loss_d.backward()
            d_norms.append(torch.cat([p.grad.flatten() for p in D.parameters()]).norm().item())
            d_losses.append(loss_d.item())
            mon.discriminator_step(loss=loss_d, real_out=r, fake_out=f, real=None)
            opt_d.step()
        fake = G(torch.randn(32, 4, generator=gen))
        out = D(fake.detach() if detach_fake else fake)
        if probs:
            loss_g = torch.log1p(-out).mean()  # minimax written on probabilities
            logit = torch.logit(out.detach())
        else:
            loss_g = v.g_loss(out, out.detach())
            logit = out.detach()
        opt_g.zero_grad()
        opt_d.zero_grad()
        loss_g.backward()
        g_norm = math.sqrt(sum(float(p.grad.square().sum()) for p in G.parameters() if p.grad is not None))
        mon.generator_step(loss=loss_g, fake_out=out, fake=fake)
        opt_g.step()
        ref.append({"loss_d": sum(d_losses) / d_steps, "grad_norm_d": sum(d_norms) / d_steps, "grad_norm_g": g_norm,
                    "sigmoid": torch.sigmoid(logit).mean().item(), "loss_g": loss_g.item()})
    return ref


def test_records_closed_form_logit_gradient_and_norms(tmp_path):
    G, D = nets()
    with Monitor(G, D, tmp_path / "r", d_output="logits", config=MonitorConfig(record_every=1, flush_every=3)) as mon:
        ref = loop(mon, G, D, 7)
    run = load_run(tmp_path / "r")
    m = run.metrics
    assert list(m.index) == list(range(7)) and run.status == "completed"
    for i, r in enumerate(ref):
        # minimax: |d loss / d logit| per sample is sigma(l)
        assert m.loc[i, S.LOGIT_GRAD_G] == pytest.approx(r["sigmoid"], rel=1e-5)
        assert m.loc[i, S.GRAD_NORM_G] == pytest.approx(r["grad_norm_g"], rel=1e-5)
        assert m.loc[i, S.GRAD_NORM_D] == pytest.approx(r["grad_norm_d"], rel=1e-5)
        assert m.loc[i, S.LOSS_D] == pytest.approx(r["loss_d"], rel=1e-5)
        assert m.loc[i, S.LOSS_G] == pytest.approx(r["loss_g"], rel=1e-5)
    layers = [c for c in m.columns if c.startswith(S.GRAD_NORM_G_LAYER)]
    assert layers == ["grad_norm_g/0", "grad_norm_g/2"]
    assert (m[layers].pow(2).sum(axis=1).pow(0.5) - m[S.GRAD_NORM_G]).abs().max() < 1e-5


def test_nonsaturating_logit_gradient_is_one_minus_sigmoid(tmp_path):
    G, D = nets()
    with Monitor(G, D, tmp_path / "r", config=EVERY_STEP) as mon:
        ref = loop(mon, G, D, 3, loss="nonsaturating")
    m = load_run(tmp_path / "r").metrics
    for i, r in enumerate(ref):
        assert m.loc[i, S.LOGIT_GRAD_G] == pytest.approx(1 - r["sigmoid"], rel=1e-5)


def test_probs_output_converts_gradient_to_the_logit(tmp_path):
    # D ending in a sigmoid with BCELoss must record the same logit signal as logits.
    G, D = nets()
    D = nn.Sequential(D, nn.Sigmoid())
    with Monitor(G, D, tmp_path / "p", d_output="probs", config=EVERY_STEP) as mon:
        ref = loop(mon, G, D, 3, probs=True)
    m = load_run(tmp_path / "p").metrics
    for i, r in enumerate(ref):
        assert m.loc[i, S.LOGIT_GRAD_G] == pytest.approx(r["sigmoid"], rel=1e-4)
        assert 0 <= m.loc[i, S.D_FAKE] <= 1


def test_several_d_steps_are_averaged_into_one_iteration(tmp_path):
    G, D = nets()
    with Monitor(G, D, tmp_path / "r", config=EVERY_STEP) as mon:
        ref = loop(mon, G, D, 4, d_steps=3)
    m = load_run(tmp_path / "r").metrics
    assert (m[S.D_STEPS] == 3).all()
    for i, r in enumerate(ref):
        assert m.loc[i, S.LOSS_D] == pytest.approx(r["loss_d"], rel=1e-5)
        assert m.loc[i, S.GRAD_NORM_D] == pytest.approx(r["grad_norm_d"], rel=1e-5)


def test_g_step_gradient_into_d_never_counts_as_d(tmp_path):
    # The G step leaves gradients on D; the D norm must come from the D step alone.
    G, D = nets()
    with Monitor(G, D, tmp_path / "r", config=EVERY_STEP) as mon:
        ref = loop(mon, G, D, 3)
    m = load_run(tmp_path / "r").metrics
    assert [m.loc[i, S.GRAD_NORM_D] for i in range(3)] == pytest.approx([r["grad_norm_d"] for r in ref], rel=1e-5)


def test_partial_run_is_readable_up_to_last_flush(tmp_path):
    G, D = nets()
    mon = Monitor(G, D, tmp_path / "r", config=MonitorConfig(record_every=1, flush_every=4))
    loop(mon, G, D, 10)  # never closed: as if killed
    with open(tmp_path / "r" / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 10, "loss')  # a torn last line
    run = load_run(tmp_path / "r")
    assert run.status == "running"
    assert list(run.metrics.index) == list(range(8))


def test_nan_marks_run_diverged_and_keeps_data(tmp_path):
    G, D = nets()
    mon = Monitor(G, D, tmp_path / "r", config=MonitorConfig(record_every=1, flush_every=2))
    loop(mon, G, D, 3)
    with torch.no_grad():
        G[2].weight.fill_(float("nan"))
    loop(mon, G, D, 2)
    mon.close()
    run = load_run(tmp_path / "r")
    assert run.status == "diverged" and run.meta["diverged_at"] == 3
    assert run.metrics.loc[2, S.NONFINITE] == 0 and run.metrics.loc[3, S.NONFINITE] == 1
    assert math.isnan(run.metrics.loc[3, S.LOSS_G]) and len(run.metrics) == 5


def test_detached_fakes_record_no_generator_gradient(tmp_path):
    G, D = nets()
    with Monitor(G, D, tmp_path / "r", config=EVERY_STEP) as mon:
        loop(mon, G, D, 3, detach_fake=True)
    assert (load_run(tmp_path / "r").metrics[S.G_HAS_GRAD] == 0).all()


def test_step_without_any_gradient_is_a_usage_error(tmp_path):
    G, D = nets()
    mon = Monitor(G, D, tmp_path / "r", config=EVERY_STEP)
    out = D(torch.randn(4, 2))
    with pytest.raises(MonitorUsageError, match="neither network has any"):
        mon.generator_step(loss=out.mean(), fake_out=out)
    with pytest.raises(MonitorUsageError, match="neither network has any"):
        mon.discriminator_step(loss=out.mean(), real_out=out, fake_out=out)
    mon.close()


def test_wrong_argument_types_fail_at_the_call(tmp_path):
    G, D = nets()
    with pytest.raises(MonitorUsageError, match="Expected generator= to be a torch.nn.Module but got str"):
        Monitor("G", D, tmp_path / "a", config=EVERY_STEP)
    with pytest.raises(MonitorUsageError, match="Expected d_output in"):
        Monitor(G, D, tmp_path / "b", d_output="sigmoid", config=EVERY_STEP)
    mon = Monitor(G, D, tmp_path / "c", config=EVERY_STEP)
    D(torch.randn(4, 2)).mean().backward()
    with pytest.raises(MonitorUsageError, match="Expected loss= to be a torch.Tensor but got float"):
        mon.discriminator_step(loss=0.5, real_out=torch.zeros(4), fake_out=torch.zeros(4))
    mon.close()
    with pytest.raises(MonitorUsageError, match="closed"):
        mon.generator_step(loss=torch.tensor(0.0), fake_out=torch.zeros(4))


def test_run_dir_held_by_a_live_monitor_is_refused(tmp_path):
    G, D = nets()
    mon = Monitor(G, D, tmp_path / "r", config=EVERY_STEP)
    with pytest.raises(MonitorUsageError, match="held by process"):
        Monitor(G, D, tmp_path / "r", overwrite=True, config=EVERY_STEP)
    mon.close()
    with pytest.raises(RunDirError, match="already holds a run"):
        Monitor(G, D, tmp_path / "r", config=EVERY_STEP)
    Monitor(G, D, tmp_path / "r", overwrite=True, config=EVERY_STEP).close()


def test_meta_records_format_and_layers(tmp_path):
    G, D = nets()
    Monitor(G, D, tmp_path / "r", d_output="critic", run_config={"loss": "wgan"}).close()
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    assert meta["format"] == "gandiag-run" and meta["version"] == 1
    assert meta["d_output"] == "critic" and meta["config"] == {"loss": "wgan"}
    assert meta["layers_d"] == ["0", "2"]


# -- gradient accumulation ------------------------------------------------------
def test_gradient_accumulation_records_the_full_batch(tmp_path):
    # Three micro-batches, each loss divided by 3, one Monitor call per step: the
    # logit gradient is the per-sample mean over all 48 samples (minimax: mean sigmoid).
    G, D = nets()
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    gen, v, k = torch.Generator().manual_seed(3), LOSSES["minimax"], 3
    ref = []
    with Monitor(G, D, tmp_path / "r", config=EVERY_STEP) as mon:
        for _ in range(4):
            opt_d.zero_grad()
            loss_d, reals, fakes = 0.0, [], []
            for _ in range(k):
                r = D(torch.randn(16, 2, generator=gen) + 2)
                f = D(G(torch.randn(16, 4, generator=gen)).detach())
                micro = v.d_loss(r, f) / k
                micro.backward()
                loss_d, reals, fakes = loss_d + micro.detach(), reals + [r.detach()], fakes + [f.detach()]
            d_norm = torch.cat([p.grad.flatten() for p in D.parameters()]).norm().item()
            mon.discriminator_step(loss=loss_d, real_out=torch.cat(reals), fake_out=torch.cat(fakes))
            opt_d.step()
            opt_g.zero_grad()
            opt_d.zero_grad()
            loss_g, outs = 0.0, []
            for _ in range(k):
                out = D(G(torch.randn(16, 4, generator=gen)))
                micro = v.g_loss(out, out.detach()) / k
                micro.backward()
                loss_g, outs = loss_g + micro.detach(), outs + [out.detach()]
            g_norm = torch.cat([p.grad.flatten() for p in G.parameters()]).norm().item()
            mon.generator_step(loss=loss_g, fake_out=torch.cat(outs))
            opt_g.step()
            ref.append((d_norm, g_norm, torch.sigmoid(torch.cat(outs)).mean().item(), loss_g.item()))
    m = load_run(tmp_path / "r").metrics
    assert len(m) == 4
    for i, (d_norm, g_norm, sig, loss_g) in enumerate(ref):
        assert m.loc[i, S.LOGIT_GRAD_G] == pytest.approx(sig, rel=1e-5)
        assert m.loc[i, S.D_FAKE_G] == pytest.approx(sig, rel=1e-5)
        assert m.loc[i, S.GRAD_NORM_G] == pytest.approx(g_norm, rel=1e-5)
        assert m.loc[i, S.GRAD_NORM_D] == pytest.approx(d_norm, rel=1e-5)
        assert m.loc[i, S.LOSS_G] == pytest.approx(loss_g, rel=1e-5)


def test_batches_of_different_sizes_are_reduced_per_step(tmp_path):
    # Outputs of unequal size take the segment path; it must agree with the closed form.
    G, D = nets()
    opt_d = torch.optim.SGD(D.parameters(), 1e-3)
    gen = torch.Generator().manual_seed(5)
    with Monitor(G, D, tmp_path / "r", d_output="critic", config=EVERY_STEP) as mon:
        expect = []
        for n_real, n_fake in ((8, 24), (16, 16), (30, 2)):
            r, f = D(torch.randn(n_real, 2, generator=gen)), D(torch.randn(n_fake, 2, generator=gen))
            opt_d.zero_grad()
            (f.mean() - r.mean()).backward()
            mon.discriminator_step(loss=f.mean() - r.mean(), real_out=r, fake_out=f)
            t = (r.mean() + f.mean()) / 2
            acc = ((r > t).sum() + (f < t).sum()).item() / (n_real + n_fake)
            expect.append((r.mean().item(), f.mean().item(), acc, torch.cat([r, f]).min().item()))
            out = D(G(torch.randn(n_fake, 4, generator=gen)))
            G.zero_grad()
            (-out.mean()).backward()
            mon.generator_step(loss=-out.mean(), fake_out=out)
    m = load_run(tmp_path / "r").metrics
    for i, (d_real, d_fake, acc, omin) in enumerate(expect):
        assert m.loc[i, S.D_REAL] == pytest.approx(d_real, rel=1e-5)
        assert m.loc[i, S.D_FAKE] == pytest.approx(d_fake, rel=1e-5)
        assert m.loc[i, S.D_ACC] == pytest.approx(acc)
        assert m.loc[i, S.D_OUT_MIN] == pytest.approx(omin, rel=1e-5)
    assert S.D_PROB_SATURATED not in m.columns  # a critic has no probabilities
    # critic: |d(-mean score)/d score| summed over the batch is 1
    assert m[S.LOGIT_GRAD_G].tolist() == pytest.approx([1.0] * 3, rel=1e-5)


# -- implementation mistakes the recorded signals must show -----------------------
def test_double_sigmoid_declared_as_logits_stays_inside_half_to_sigmoid_one(tmp_path):
    G, D = nets()
    D2 = nn.Sequential(D, nn.Sigmoid(), nn.Sigmoid())  # "logits" that went through a sigmoid twice
    with Monitor(G, D2, tmp_path / "bad", d_output="logits", config=EVERY_STEP) as mon:
        loop(mon, G, D2, 4)
    bad = load_run(tmp_path / "bad").metrics
    assert (bad[S.D_OUT_MIN] > 0.5).all() and (bad[S.D_OUT_MAX] < 1 / (1 + math.exp(-1))).all()
    G, D = nets()
    with Monitor(G, D, tmp_path / "ok", d_output="logits", config=EVERY_STEP) as mon:
        loop(mon, G, D, 4)
    ok = load_run(tmp_path / "ok").metrics
    assert (ok[S.D_OUT_MIN] < 0.5).all()


def bce_probs_loop(mon, G, D, steps):
    """D ends in a sigmoid; both losses are BCE on its probabilities."""
    bce = nn.functional.binary_cross_entropy
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        r, f = D(torch.randn(32, 2, generator=gen) + 2), D(G(torch.randn(32, 4, generator=gen)).detach())
        loss_d = bce(r, torch.ones_like(r)) + bce(f, torch.zeros_like(f))
        D.zero_grad()
        loss_d.backward()
        mon.discriminator_step(loss=loss_d, real_out=r, fake_out=f)
        out = D(G(torch.randn(32, 4, generator=gen)))
        loss_g = bce(out, torch.ones_like(out))
        G.zero_grad()
        loss_g.backward()
        mon.generator_step(loss=loss_g, fake_out=out)


def test_probabilities_of_exactly_zero_or_one_are_recorded_saturated(tmp_path):
    G, D = nets()
    with torch.no_grad():
        D[2].weight.mul_(1e4)  # logits in the thousands: sigmoid gives exactly 0 or 1 in float32
    saturated = nn.Sequential(D, nn.Sigmoid())
    with Monitor(G, saturated, tmp_path / "bad", d_output="probs", config=EVERY_STEP) as mon:
        bce_probs_loop(mon, G, saturated, 3)
    assert (load_run(tmp_path / "bad").metrics[S.D_PROB_SATURATED] > 0.5).all()
    G, D = nets()
    healthy = nn.Sequential(D, nn.Sigmoid())
    with Monitor(G, healthy, tmp_path / "ok", d_output="probs", config=EVERY_STEP) as mon:
        bce_probs_loop(mon, G, healthy, 3)
    assert (load_run(tmp_path / "ok").metrics[S.D_PROB_SATURATED] == 0).all()


def shared_optimizer_loop(mon, G, D, steps, d_steps=1):
    """The mistake: G's optimizer also holds D's parameters and steps them in G's step."""
    gen = torch.Generator().manual_seed(0)
    opt_g = torch.optim.Adam(list(G.parameters()) + list(D.parameters()), 1e-3)
    opt_d = torch.optim.Adam(D.parameters(), 1e-3)
    v = LOSSES["nonsaturating"]
    for _ in range(steps):
        for _ in range(d_steps):
            r, f = D(torch.randn(32, 2, generator=gen) + 2), D(G(torch.randn(32, 4, generator=gen)).detach())
            loss_d = v.d_loss(r, f)
            opt_d.zero_grad()
            loss_d.backward()
            mon.discriminator_step(loss=loss_d, real_out=r, fake_out=f)
            opt_d.step()
        out = D(G(torch.randn(32, 4, generator=gen)))
        loss_g = v.g_loss(out, out.detach())
        opt_g.zero_grad()
        loss_g.backward()
        mon.generator_step(loss=loss_g, fake_out=out)
        opt_g.step()


def test_d_moved_in_g_step_fires_for_a_shared_optimizer_only(tmp_path):
    cfg = MonitorConfig(record_every=1, fingerprint_every=2)
    G, D = nets()
    with Monitor(G, D, tmp_path / "bad", config=cfg) as mon:
        shared_optimizer_loop(mon, G, D, 9)
    moved = load_run(tmp_path / "bad").series(S.D_MOVED_IN_G_STEP)
    # compared across G steps 0, 2, 4, 6: recorded on the next iteration's row
    assert list(moved.index) == [1, 3, 5, 7] and (moved == 1).all()
    for d_steps in (1, 3):
        G, D = nets()
        with Monitor(G, D, tmp_path / f"ok{d_steps}", config=cfg) as mon:
            loop(mon, G, D, 9, d_steps=d_steps)
        moved = load_run(tmp_path / f"ok{d_steps}").series(S.D_MOVED_IN_G_STEP)
        assert list(moved.index) == [1, 3, 5, 7] and (moved == 0).all()


def test_d_moved_is_compared_on_the_default_cadence(tmp_path):
    G, D = nets()
    with Monitor(G, D, tmp_path / "bad", config=EVERY_STEP) as mon:
        shared_optimizer_loop(mon, G, D, 12)
    moved = load_run(tmp_path / "bad").series(S.D_MOVED_IN_G_STEP)
    every = MonitorConfig(record_every=1).fingerprint_every
    assert list(moved.index) == list(range(1, 12, every)) and (moved == 1).all()


def several_g_steps_per_d_step(mon, G, D, d_steps, g_per_d):
    """A loop with g_per_d G steps after each of d_steps D steps (minimax);
    returns the mean sigmoid of each G step's D output, its logit gradient."""
    opt_g = torch.optim.Adam(G.parameters(), 1e-3)
    v = LOSSES["minimax"]
    sig = []
    for _ in range(d_steps):
        out = D(torch.randn(8, 2))
        out.mean().backward()
        mon.discriminator_step(loss=out.mean(), real_out=out, fake_out=out)
        for _ in range(g_per_d):
            out = D(G(torch.randn(8, 4)))
            opt_g.zero_grad()
            v.g_loss(out, out).backward()
            mon.generator_step(loss=v.g_loss(out, out), fake_out=out)
            opt_g.step()
            sig.append(torch.sigmoid(out).mean().item())
    return sig


def test_two_g_steps_per_d_step_keep_the_logit_gradient(tmp_path):
    G, D = nets()
    with Monitor(G, D, tmp_path / "r", config=EVERY_STEP) as mon:
        sig = several_g_steps_per_d_step(mon, G, D, 1, 4)
    lg = load_run(tmp_path / "r").series(S.LOGIT_GRAD_G)
    # Step 1 follows a G step with no D step between; from then on the hook stays on.
    assert lg.loc[0] == pytest.approx(sig[0], rel=1e-5)
    assert [lg.loc[i] for i in (2, 3)] == pytest.approx(sig[2:], rel=1e-5)


# -- bad use -------------------------------------------------------------------------
def test_non_scalar_loss_fails_at_the_call(tmp_path):
    G, D = nets()
    with Monitor(G, D, tmp_path / "r", config=EVERY_STEP) as mon:
        out = D(torch.randn(4, 2))
        out.mean().backward()
        with pytest.raises(MonitorUsageError, match=r"Expected loss= to be a scalar tensor but got shape \(4,\)"):
            mon.discriminator_step(loss=out, real_out=out, fake_out=out)


HOLDER = """
import sys
from torch import nn
from gandiag.monitor import Monitor
mon = Monitor(nn.Linear(2, 2), nn.Linear(2, 1), sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
"""


def test_run_dir_held_by_another_process_is_refused(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    run_dir = tmp_path / "r"
    G, D = nets()
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(MonitorUsageError, match=f"is held by process {child.pid}"):
            Monitor(G, D, run_dir, overwrite=True, config=EVERY_STEP)
        # Killed outright, the holder leaves its lock file behind, but not its hold.
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
        child.stdout.close()
        child.stdin.close()
    assert (run_dir / ".lock").exists()
    Monitor(G, D, run_dir, overwrite=True, config=EVERY_STEP).close()
    assert not (run_dir / ".lock").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_step_calls_never_synchronise_the_device(tmp_path):
    G, D = (n.cuda() for n in nets())
    opt_g, opt_d = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    scaler = torch.amp.GradScaler("cuda")
    v = LOSSES["nonsaturating"]
    with Monitor(G, D, tmp_path / "r", grad_scaler=scaler, config=MonitorConfig(record_every=1, flush_every=1000)) as mon:
        for step in range(20):
            x = torch.randn(64, 2, device="cuda")
            r, f = D(x), D(G(torch.randn(64, 4, device="cuda")).detach())
            loss_d = v.d_loss(r, f)
            opt_d.zero_grad()
            scaler.scale(loss_d).backward()
            torch.cuda.set_sync_debug_mode("error")
            try:
                mon.discriminator_step(loss=loss_d, real_out=r, fake_out=f)
            finally:
                torch.cuda.set_sync_debug_mode("default")
            scaler.step(opt_d)
            scaler.update()
            out = D(G(torch.randn(64, 4, device="cuda")))
            loss_g = v.g_loss(out, out.detach())
            opt_g.zero_grad()
            scaler.scale(loss_g).backward()
            torch.cuda.set_sync_debug_mode("error")
            try:
                mon.generator_step(loss=loss_g, fake_out=out)
            finally:
                torch.cuda.set_sync_debug_mode("default")
            scaler.step(opt_g)
            scaler.update()
    m = load_run(tmp_path / "r").metrics
    assert len(m) == 20 and (m[S.NONFINITE] == 0).all()


def test_import_gandiag_and_monitor_leaves_plotting_unloaded():
    # A training script pays only for what recording needs; the report's
    # plotting stack loads when something of the report is used.
    import subprocess
    import sys

    code = ("import sys, gandiag; gandiag.Monitor, gandiag.MonitorConfig, gandiag.load_run; "
            "print(sorted(m for m in ('matplotlib', 'seaborn', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_public_name_resolves():
    import gandiag
    from gandiag.train import train

    for name in gandiag.__all__:
        assert getattr(gandiag, name) is not None, name
    assert gandiag.train is train  # the function, not the gandiag.train module
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        gandiag.nope


def test_sampler_feeds_the_diversity_metrics(tmp_path):
    # With sampler=, diversity is measured on its samples (one G), not on the fake= batches.
    G, D = nets()
    seen = []

    def evaluator(fake):
        seen.append(fake.shape[0])
        return {S.DIV_RATIO: float(fake[:, 0].mean())}

    fixed = torch.full((7, 2), 3.0)
    cfg = MonitorConfig(record_every=1, diversity_every=2)
    with Monitor(G, D, tmp_path / "s", config=cfg, evaluator=evaluator, sampler=lambda: fixed) as mon:
        loop(mon, G, D, 4)
    assert seen == [7, 7]
    div = load_run(tmp_path / "s").series(S.DIV_RATIO)
    assert list(div.index) == [0, 2] and (div == 3.0).all()
    with pytest.raises(MonitorUsageError, match="Expected sampler= to be callable but got int"):
        Monitor(G, D, tmp_path / "t", sampler=3, config=EVERY_STEP)


def test_bad_run_dirs_are_one_line_errors_naming_run_dir(tmp_path):
    G, D = nets()
    (tmp_path / "afile").write_text("x")
    for bad in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        with pytest.raises(RunDirError, match=r"Expected a directory gandiag can write at run_dir=.*afile.* but got "
                                              r"(FileExistsError|NotADirectoryError)"):
            Monitor(G, D, bad, config=EVERY_STEP)


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs Linux sysfs, which even root cannot write into")
def test_an_unwritable_run_dir_is_a_one_line_error():
    G, D = nets()
    with pytest.raises(RunDirError, match=r"run_dir='/sys/gandiag-test/run' but got PermissionError"):
        Monitor(G, D, "/sys/gandiag-test/run", config=EVERY_STEP)


def test_run_dir_expands_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    G, D = nets()
    with Monitor(G, D, "~/runs/r", config=EVERY_STEP) as mon:
        loop(mon, G, D, 2)
    assert load_run(tmp_path / "runs" / "r").status == "completed"


def test_sample_batches_must_be_float_and_agree_in_shape(tmp_path):
    G, D = nets()
    with Monitor(G, D, tmp_path / "r", config=EVERY_STEP) as mon:
        out = D(torch.randn(8, 2))
        out.mean().backward()
        with pytest.raises(MonitorUsageError, match="Expected real= to be a floating-point batch.*torch.uint8"):
            mon.discriminator_step(loss=out.mean(), real_out=out, fake_out=out, real=torch.zeros(8, 2, dtype=torch.uint8))
        mon.discriminator_step(loss=out.mean(), real_out=out, fake_out=out, real=torch.zeros(8, 1, 2))
        fake = G(torch.randn(8, 4))
        gen = D(fake)
        gen.mean().backward()
        with pytest.raises(MonitorUsageError, match=r"Expected fake= samples of shape \[n, 1, 2\] like the real= "
                                                     r"batches but got \[8, 2\]"):
            mon.generator_step(loss=gen.mean(), fake_out=gen, fake=fake)
        with pytest.raises(MonitorUsageError, match="Expected D's outputs on a non-empty batch"):
            mon.generator_step(loss=gen.mean(), fake_out=gen[:0])
        with pytest.raises(MonitorUsageError, match="non-empty batch but got real_out of shape"):
            mon.discriminator_step(loss=out.mean(), real_out=out[:0], fake_out=out)
        with pytest.raises(MonitorUsageError, match=r"the same shape per sample but got \(8, 3\) and \(8,\)"):
            mon.discriminator_step(loss=out.mean(), real_out=torch.zeros(8, 3), fake_out=out)


def test_run_config_that_json_cannot_hold_names_its_key(tmp_path):
    G, D = nets()
    with pytest.raises(MonitorUsageError, match=r"run_config\['opt'\] is of type type"):
        Monitor(G, D, tmp_path / "r", run_config={"lr": 1e-3, "opt": torch.optim.Adam})
    with pytest.raises(MonitorUsageError, match=r"run_config\['a'\]\['b'\]\[1\] is of type object"):
        Monitor(G, D, tmp_path / "r", run_config={"a": {"b": [1, object()]}})
    assert not (tmp_path / "r").exists()


def test_close_with_an_unknown_status_fails_and_leaves_the_monitor_open(tmp_path):
    G, D = nets()
    mon = Monitor(G, D, tmp_path / "r", config=EVERY_STEP)
    loop(mon, G, D, 2)
    with pytest.raises(MonitorUsageError, match="Expected status in"):
        mon.close("bogus")
    mon.close()
    assert load_run(tmp_path / "r").status == "completed"


def test_a_sampler_returning_the_wrong_thing_is_a_one_line_error(tmp_path):
    for bad, got in ((lambda: torch.zeros(7, 2).numpy(), "got ndarray"),
                     (lambda: torch.zeros(7, 3), r"\[n > 0, 2\] like the fake= batches but got a torch.float32 tensor "
                                                 r"of shape \[7, 3\]"),
                     (lambda: torch.zeros(7, 2, dtype=torch.int64), "torch.int64")):
        G, D = nets()
        mon = Monitor(G, D, tmp_path / f"r{len(list(tmp_path.iterdir()))}", config=MonitorConfig(record_every=1, diversity_every=2),
                      evaluator=lambda fake: {S.DIV_RATIO: 1.0}, sampler=bad)
        with pytest.raises(MonitorUsageError, match="Expected sampler= to return a floating-point batch.*" + got):
            loop(mon, G, D, 3)
        mon.close()


def test_a_run_shorter_than_the_cadence_is_measured_at_close(tmp_path):
    # Only step 0 (an untrained G) on the cadence: the G the run ends with is measured too.
    # A run with two evaluations or more keeps its evenly spaced series.
    for steps, every, want in ((30, 1000, [0, 29]), (30, 20, [0, 20])):
        G, D = nets()
        cfg = MonitorConfig(record_every=1, diversity_every=every)
        run_dir = tmp_path / f"r{steps}-{every}"
        with Monitor(G, D, run_dir, config=cfg, evaluator=lambda fake: {S.DIV_RATIO: float(len(fake))}) as mon:
            loop(mon, G, D, steps)
        assert list(load_run(run_dir).series(S.DIV_RATIO).index) == want


def test_empty_run_dir_and_a_running_close_status_are_refused(tmp_path):
    G, D = nets()
    with pytest.raises(MonitorUsageError, match="Expected run_dir= to name a directory but got an empty path"):
        Monitor(G, D, "", config=EVERY_STEP)
    mon = Monitor(G, D, tmp_path / "r", config=EVERY_STEP)
    with pytest.raises(MonitorUsageError, match="Expected status in"):
        mon.close("running")
    mon.close()


# -- the hook on D's output ----------------------------------------------------------
def _g_forward_keeps_grad(D, G):
    """Whether a G-step-like forward through D has its output's gradient retained."""
    out = D(G(torch.randn(8, 4)))
    out.mean().backward()
    return out.retains_grad


def test_the_d_hook_is_on_only_from_a_d_step_to_the_next_g_step(tmp_path):
    G, D = nets()
    with Monitor(G, D, tmp_path / "r", config=EVERY_STEP) as mon:
        for _ in range(2):
            out = D(torch.randn(8, 2))
            out.mean().backward()
            mon.discriminator_step(loss=out.mean(), real_out=out, fake_out=out)
            assert len(D._forward_hooks) == 1
            gen = D(G(torch.randn(8, 4)))
            gen.mean().backward()
            assert gen.grad is not None  # retained for the logit gradient
            mon.generator_step(loss=gen.mean(), fake_out=gen)
            # Off until the next D step: D's forwards run without any hook.
            assert len(D._forward_hooks) == 0 and not _g_forward_keeps_grad(D, G)
    assert len(D._forward_hooks) == 0 and len(D._forward_hooks_with_kwargs) == 0


def test_a_refused_d_step_the_loop_goes_past_leaves_the_next_g_steps_signal_recorded(tmp_path):
    # minimax on logits: dL_G/dlogit is -sigmoid(logit)/B, so logit_grad_g is the mean sigmoid.
    G, D = nets()
    v = LOSSES["minimax"]
    want = []
    with Monitor(G, D, tmp_path / "r", config=EVERY_STEP) as mon:
        for step in range(3):
            r, f = D(torch.randn(8, 2)), D(G(torch.randn(8, 4)).detach())
            loss_d = v.d_loss(r, f)
            loss_d.backward()
            if step == 1:
                with pytest.raises(MonitorUsageError):
                    mon.discriminator_step(loss=loss_d, real_out=r, fake_out=f.long())  # caught, loop goes on
            else:
                mon.discriminator_step(loss=loss_d, real_out=r, fake_out=f)
            D.zero_grad()
            out = D(G(torch.randn(8, 4)))
            v.g_loss(out, out.detach()).backward()
            mon.generator_step(loss=v.g_loss(out, out.detach()), fake_out=out)
            G.zero_grad()
            D.zero_grad()
            want.append(torch.sigmoid(out).mean().item())
            assert len(D._forward_hooks) == 0  # off after each G step, not on for good
    lg = load_run(tmp_path / "r").series(S.LOGIT_GRAD_G)
    assert list(lg.index) == [0, 1, 2] and lg.tolist() == pytest.approx(want, rel=1e-5)


def test_a_hook_that_cannot_be_switched_stays_on_and_records_the_same(tmp_path, monkeypatch):
    import gandiag.output_capture as capture

    G, D = nets()
    with Monitor(G, D, tmp_path / "switched", config=EVERY_STEP) as mon:
        ref = loop(mon, G, D, 6, loss="nonsaturating")
    # A torch that keeps hooks elsewhere: the entry is not found, the hook stays on.
    monkeypatch.setattr(capture, "HOOK_DICTS", ("_forward_hooks", "_no_such_dict"))
    G, D = nets()
    with Monitor(G, D, tmp_path / "always", config=EVERY_STEP) as mon:
        again = loop(mon, G, D, 6, loss="nonsaturating")
        assert len(D._forward_hooks) == 1 and _g_forward_keeps_grad(D, G)
    assert again == ref
    a, b = (load_run(tmp_path / name).series(S.LOGIT_GRAD_G) for name in ("switched", "always"))
    assert list(a.index) == list(range(6)) and a.tolist() == pytest.approx(b.tolist(), rel=1e-12)
    assert a.tolist() == pytest.approx([1 - r["sigmoid"] for r in ref], rel=1e-5)
    assert len(D._forward_hooks) == 0


def test_several_outputs_per_sample_count_as_one_output_each(tmp_path):
    # A PatchGAN-like D scores 4 patches per sample: D's statistics and the
    # logit gradient are means over every patch of every sample.
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    D = nn.Sequential(nn.Linear(2, 4), nn.Unflatten(1, (1, 2, 2)))
    v = LOSSES["minimax"]
    want = []
    with Monitor(G, D, tmp_path / "r", config=EVERY_STEP) as mon:
        for _ in range(3):
            x = torch.randn(16, 2)
            r, f = D(x), D(G(torch.randn(16, 4)).detach())
            loss_d = v.d_loss(r, f)
            loss_d.backward()
            mon.discriminator_step(loss=loss_d, real_out=r, fake_out=f)
            D.zero_grad()
            out = D(G(torch.randn(16, 4)))
            loss_g = v.g_loss(out, out.detach())
            loss_g.backward()
            mon.generator_step(loss=loss_g, fake_out=out)
            G.zero_grad()
            D.zero_grad()
            want.append((torch.sigmoid(r).mean().item(), ((r > 0).sum() + (f < 0).sum()).item() / 128,
                         torch.sigmoid(out).mean().item()))
    run = load_run(tmp_path / "r")
    d_real, d_acc, lg = (run.series(c).tolist() for c in (S.D_REAL, S.D_ACC, S.LOGIT_GRAD_G))
    assert d_real == pytest.approx([w[0] for w in want], rel=1e-5)
    assert d_acc == pytest.approx([w[1] for w in want])
    assert lg == pytest.approx([w[2] for w in want], rel=1e-5)  # minimax: mean sigmoid over the patches


class _TwoHeads(nn.Module):
    """A D with an auxiliary classifier: returns (score, class logits), or a dict of them."""

    def __init__(self, as_dict=False):
        super().__init__()
        self.body, self.score, self.cls = nn.Linear(2, 8), nn.Linear(8, 1), nn.Linear(8, 3)
        self.as_dict = as_dict

    def forward(self, x):
        if isinstance(x, list):
            x = x[0]
        h = torch.relu(self.body(x))
        s, c = self.score(h).squeeze(1), self.cls(h)
        return {"score": s, "cls": c} if self.as_dict else (s, c)


@pytest.mark.parametrize("as_dict, as_list", [(False, False), (True, False), (False, True)])
def test_a_d_returning_several_tensors_records_the_score_passed_as_fake_out(tmp_path, as_dict, as_list):
    torch.manual_seed(0)
    G, D = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), _TwoHeads(as_dict)
    pick = (lambda o: o["score"]) if as_dict else (lambda o: o[0])
    v = LOSSES["minimax"]
    want = []
    with Monitor(G, D, tmp_path / "r", config=EVERY_STEP) as mon:
        for _ in range(3):
            r, f = pick(D(torch.randn(16, 2))), pick(D(G(torch.randn(16, 4)).detach()))
            loss_d = v.d_loss(r, f)
            loss_d.backward()
            mon.discriminator_step(loss=loss_d, real_out=r, fake_out=f)
            D.zero_grad()
            fake = G(torch.randn(16, 4))
            out = D([fake] if as_list else fake)
            score = pick(out)
            # The class head is trained too: its gradient must not count as the score's.
            loss_g = v.g_loss(score, score.detach()) + 0.5 * out[1 if not as_dict else "cls"].square().mean()
            loss_g.backward()
            mon.generator_step(loss=loss_g, fake_out=score)
            G.zero_grad()
            D.zero_grad()
            want.append(torch.sigmoid(score).mean().item())
    assert load_run(tmp_path / "r").series(S.LOGIT_GRAD_G).tolist() == pytest.approx(want, rel=1e-5)


def test_a_users_hook_that_changes_ds_output_is_seen_from_the_first_step(tmp_path):
    G, D = nets()
    with Monitor(G, D, tmp_path / "r", config=EVERY_STEP) as mon:
        D.register_forward_hook(lambda m, a, o: 2 * o)  # after the Monitor's
        ref = loop(mon, G, D, 4)
    # minimax: the recorded gradient is mean sigmoid of the output G's loss saw (doubled)
    assert load_run(tmp_path / "r").series(S.LOGIT_GRAD_G).tolist() == pytest.approx(
        [r["sigmoid"] for r in ref], rel=1e-5)


def test_copies_of_d_get_an_inert_hook_and_do_not_feed_the_monitor(tmp_path):
    import copy
    import io

    G, D = nets()
    with Monitor(G, D, tmp_path / "r", config=EVERY_STEP) as mon:
        ema = copy.deepcopy(D)  # the hook is on here (before the first D step)
        buf = io.BytesIO()
        torch.save(D, buf)
        loaded = torch.load(io.BytesIO(buf.getvalue()), weights_only=False)
        x = torch.randn(8, 2)
        assert torch.equal(ema(x), D(x)) and torch.equal(loaded(x), D(x))
        ref = loop(mon, G, D, 3)
        ema(G(torch.randn(8, 4))).mean().backward()  # a copy's forward between steps
        assert not mon._tap.single and not mon._tap.parts
    assert load_run(tmp_path / "r").series(S.LOGIT_GRAD_G).tolist() == pytest.approx(
        [r["sigmoid"] for r in ref], rel=1e-5)


@pytest.mark.filterwarnings("ignore:Using backward.. with create_graph")
def test_a_create_graph_backward_in_the_g_step_keeps_no_graph(tmp_path):
    G, D = nets()
    with Monitor(G, D, tmp_path / "r", config=EVERY_STEP) as mon:
        out = D(torch.randn(8, 2))
        out.mean().backward()
        mon.discriminator_step(loss=out.mean(), real_out=out, fake_out=out)
        gen = D(G(torch.randn(8, 4)))
        loss = torch.log1p(-torch.sigmoid(gen)).mean()
        loss.backward(create_graph=True)
        mon.generator_step(loss=loss, fake_out=gen)
        kept = [g for st in mon._g_steps for g, _ in st.out_grads]
        # The kept gradient is cut from the graph that create_graph built.
        assert len(kept) == 1 and kept[0].grad_fn is None and not kept[0].requires_grad
        want = torch.sigmoid(gen).mean().item()
    assert load_run(tmp_path / "r").series(S.LOGIT_GRAD_G).tolist() == pytest.approx([want], rel=1e-5)


def test_a_loop_that_runs_every_forward_first_is_warned_once(tmp_path):
    G, D = nets()
    v = LOSSES["nonsaturating"]
    with Monitor(G, D, tmp_path / "r", config=EVERY_STEP) as mon, pytest.warns(UserWarning, match="logit_grad_g") as caught:
        for _ in range(3):
            fake = G(torch.randn(8, 4))
            r, f, gen = D(torch.randn(8, 2)), D(fake.detach()), D(fake)  # every forward first
            loss_d, loss_g = v.d_loss(r, f), v.g_loss(gen, r.detach())
            torch.autograd.backward([loss_d, loss_g])
            mon.discriminator_step(loss=loss_d, real_out=r, fake_out=f)
            mon.generator_step(loss=loss_g, fake_out=gen)
            G.zero_grad()
            D.zero_grad()
    assert len([w for w in caught if "logit_grad_g" in str(w.message)]) == 1
    assert str(tmp_path / "r") in str(caught[0].message)  # one per Monitor: Python's filter keys on the text
    assert load_run(tmp_path / "r").series(S.LOGIT_GRAD_G).empty


def test_one_dimensional_samples_and_integer_losses_or_outputs_fail_at_the_call(tmp_path):
    G, D = nets()
    with Monitor(G, D, tmp_path / "r", config=EVERY_STEP) as mon:
        out = D(torch.randn(8, 2))
        out.mean().backward()
        for bad in (torch.zeros(8), torch.tensor(1.0)):
            with pytest.raises(MonitorUsageError, match=r"Expected real= to be a batch \[n, \.\.\.\]"):
                mon.discriminator_step(loss=out.mean(), real_out=out, fake_out=out, real=bad)
        with pytest.raises(MonitorUsageError, match="Expected loss= to be a floating-point scalar.*torch.int64"):
            mon.discriminator_step(loss=torch.tensor(3), real_out=out, fake_out=out)
        with pytest.raises(MonitorUsageError, match="Expected real_out= to be D's raw output.*torch.bool"):
            mon.discriminator_step(loss=out.mean(), real_out=out > 0, fake_out=out)
        with pytest.raises(MonitorUsageError, match="Expected fake_out= to be D's raw output.*torch.int64"):
            mon.generator_step(loss=out.mean(), fake_out=out.long())
        # Nothing was kept from the refused calls: a right call goes through.
        mon.discriminator_step(loss=out.mean(), real_out=out, fake_out=out, real=torch.zeros(8, 2))
        assert mon._sample_shape == (2,) and len(mon._d_steps) == 1


def test_a_slow_loop_is_flushed_by_time_as_well_as_by_steps(tmp_path):
    def rows_after(config, steps):
        G, D = nets()
        mon = Monitor(G, D, tmp_path / f"r{len(list(tmp_path.iterdir()))}", config=config)
        loop(mon, G, D, steps)
        written = (mon.run_dir / "metrics.jsonl").read_text().splitlines()
        mon.close()
        return written, load_run(mon.run_dir).series(S.LOSS_G).tolist()

    timed, timed_loss = rows_after(MonitorConfig(record_every=1, flush_seconds=1e-9), 3)  # every timed step is overdue
    stepped, stepped_loss = rows_after(MonitorConfig(record_every=1), 3)
    assert len(timed) == 3 and stepped == []  # the default waits for 50 steps (or 1 s)
    assert timed_loss == stepped_loss  # when a flush comes changes nothing recorded
    for bad in (0, -1.0, True, "1"):
        with pytest.raises(ValueError, match="flush_seconds"):
            MonitorConfig(record_every=1, flush_seconds=bad)


def test_time_spent_outside_the_steps_does_not_make_a_flush_due(tmp_path):
    import time

    G, D = nets()
    with Monitor(G, D, tmp_path / "r", config=MonitorConfig(record_every=1, flush_seconds=0.5)) as mon:
        for block in range(3):
            loop(mon, G, D, 5, seed=block)
            time.sleep(0.3)  # an evaluation, or other loops taking turns
        # 15 fast steps: well under 0.5 s of their own, though 0.9 s went by
        assert (mon.run_dir / "metrics.jsonl").read_text() == ""


# -- the default: every record_every-th iteration ---------------------------------------
def test_by_default_every_second_iteration_is_recorded_with_its_hand_values(tmp_path):
    G, D = nets()
    with Monitor(G, D, tmp_path / "r") as mon:
        assert mon.config.record_every == 2
        ref = loop(mon, G, D, 9, loss="nonsaturating")
    run = load_run(tmp_path / "r")
    steps = [0, 2, 4, 6, 8]
    for col, rel in ((S.LOSS_D, 1e-6), (S.GRAD_NORM_D, 1e-5), (S.GRAD_NORM_G, 1e-5), (S.LOSS_G, 1e-6)):
        s = run.series(col)
        assert list(s.index) == steps
        assert s.tolist() == pytest.approx([ref[i][col] for i in steps], rel=rel)
    # nonsaturating on logits: dL_G/dlogit = -(1 - sigmoid(logit))/B
    lg = run.series(S.LOGIT_GRAD_G)
    assert list(lg.index) == steps and lg.tolist() == pytest.approx([1 - ref[i]["sigmoid"] for i in steps], rel=1e-5)
    assert run.meta["steps_seen"] == 9 and run.meta["steps_recorded"] == 5


def test_iterations_that_are_not_recorded_are_still_checked_at_the_call(tmp_path):
    G, D = nets()
    with Monitor(G, D, tmp_path / "r") as mon:
        loop(mon, G, D, 1)  # step 0 is recorded, step 1 is not
        assert not mon._recording and len(D._forward_hooks) == 0
        kept = len(mon._d_steps)
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
        out = D(torch.randn(8, 2))
        with pytest.raises(MonitorUsageError, match="neither network has any"):
            mon.discriminator_step(loss=out.mean(), real_out=out, fake_out=out)
        out.mean().backward()
        with pytest.raises(MonitorUsageError, match="Expected fake_out="):
            mon.discriminator_step(loss=out.mean(), real_out=out, fake_out=out.long())
        with pytest.raises(MonitorUsageError, match="Expected loss="):
            mon.generator_step(loss=torch.tensor(3), fake_out=out)
        mon.discriminator_step(loss=out.mean(), real_out=out, fake_out=out)
        assert len(D._forward_hooks) == 0  # no hook through an iteration that is not recorded
        assert len(mon._d_steps) == kept  # and nothing kept


def test_a_nan_between_recorded_steps_shows_at_the_next_one(tmp_path):
    G, D = nets()
    mon = Monitor(G, D, tmp_path / "r", config=MonitorConfig(flush_every=2))
    loop(mon, G, D, 3)  # steps 0-2
    with torch.no_grad():
        G[2].weight.fill_(float("nan"))
    loop(mon, G, D, 2)  # steps 3 (not recorded) and 4
    mon.close()
    run = load_run(tmp_path / "r")
    assert list(run.metrics.index) == [0, 2, 4]
    assert run.status == "diverged" and run.meta["diverged_at"] == 4
    assert math.isnan(run.metrics.loc[4, S.LOSS_G]) and run.metrics.loc[2, S.NONFINITE] == 0


def test_a_shared_optimizer_is_caught_on_recorded_steps(tmp_path):
    G, D = nets()
    with Monitor(G, D, tmp_path / "bad") as mon:
        shared_optimizer_loop(mon, G, D, 25)
    moved = load_run(tmp_path / "bad").series(S.D_MOVED_IN_G_STEP)
    # D's weights are read after G steps 1, 11, 21 and compared at the D steps of 2, 12, 22.
    assert list(moved.index) == [2, 12, 22] and (moved == 1).all()
    G, D = nets()
    with Monitor(G, D, tmp_path / "ok") as mon:
        loop(mon, G, D, 25)
    ok = load_run(tmp_path / "ok").series(S.D_MOVED_IN_G_STEP)
    assert list(ok.index) == [2, 12, 22] and (ok == 0).all()


def test_diversity_and_flushes_keep_their_step_cadence(tmp_path):
    G, D = nets()
    cfg = MonitorConfig(diversity_every=3, flush_every=4)
    with Monitor(G, D, tmp_path / "r", config=cfg, evaluator=lambda fake: {S.DIV_RATIO: float(len(fake))}) as mon:
        loop(mon, G, D, 4)
        # Four iterations, two recorded: the flush at step 4 wrote them and the evaluations at 0 and 3.
        lines = [json.loads(x) for x in (mon.run_dir / "metrics.jsonl").read_text().splitlines()]
        loop(mon, G, D, 3)
    assert [r["step"] for r in lines if S.LOSS_G in r] == [0, 2]
    assert [r["step"] for r in lines if S.DIV_RATIO in r] == [0, 3]
    run = load_run(tmp_path / "r")
    assert list(run.series(S.DIV_RATIO).index) == [0, 3, 6] and list(run.series(S.LOSS_G).index) == [0, 2, 4, 6]


def test_three_g_steps_per_d_step_keep_the_logit_gradient_on_recorded_steps(tmp_path):
    G, D = nets()
    with Monitor(G, D, tmp_path / "r") as mon:
        sig = several_g_steps_per_d_step(mon, G, D, 3, 3)
    lg = load_run(tmp_path / "r").series(S.LOGIT_GRAD_G)
    # Recorded: 0, 2, 4, 6, 8, and 3 for its D step (none recorded since 0). Step 2 is
    # the first recorded G step with no D step before it (the D steps are in 0, 3,
    # 6): its signal is lost, and the hook stays on from there.
    assert list(lg.index) == [0, 3, 4, 6, 8]
    assert lg.tolist() == pytest.approx([sig[i] for i in (0, 3, 4, 6, 8)], rel=1e-5)


def test_d_steps_that_fall_on_unrecorded_iterations_are_recorded_all_the_same(tmp_path):
    # D is stepped in every 2nd iteration only, always an odd one: with every 2nd
    # iteration recorded, none of them would hold a D step.
    def alternate(mon, G, D, steps, shared):
        opt_g = torch.optim.Adam(list(G.parameters()) + (list(D.parameters()) if shared else []), 1e-3)
        opt_d = torch.optim.Adam(D.parameters(), 1e-3)
        v = LOSSES["nonsaturating"]
        losses = {}
        for i in range(steps):
            if i % 2:
                r, f = D(torch.randn(8, 2) + 2), D(G(torch.randn(8, 4)).detach())
                loss_d = v.d_loss(r, f)
                opt_d.zero_grad()
                loss_d.backward()
                mon.discriminator_step(loss=loss_d, real_out=r, fake_out=f)
                opt_d.step()
                losses[i] = loss_d.item()
            out = D(G(torch.randn(8, 4)))
            loss_g = v.g_loss(out, out.detach())
            opt_g.zero_grad()
            loss_g.backward()
            mon.generator_step(loss=loss_g, fake_out=out)
            opt_g.step()
        return losses

    for shared in (True, False):
        G, D = nets()
        with Monitor(G, D, tmp_path / f"r{shared}") as mon:
            losses = alternate(mon, G, D, 40, shared)
        run = load_run(tmp_path / f"r{shared}")
        loss_d = run.series(S.LOSS_D)
        assert len(loss_d) >= 10 and set(loss_d.index) <= set(losses)
        assert loss_d.tolist() == pytest.approx([losses[i] for i in loss_d.index], rel=1e-6)
        moved = run.series(S.D_MOVED_IN_G_STEP)
        assert len(moved) >= 3 and (moved == (1 if shared else 0)).all()


def test_a_loop_that_stops_on_a_nan_between_recorded_steps_is_diverged(tmp_path):
    G, D = nets()
    mon = Monitor(G, D, tmp_path / "r")
    loop(mon, G, D, 5)  # steps 0-4; 4 is recorded
    with torch.no_grad():
        G[2].weight.fill_(float("nan"))
    loop(mon, G, D, 1)  # step 5, not recorded: its G loss is NaN, and the loop stops
    mon.close()
    run = load_run(tmp_path / "r")
    assert run.status == "diverged" and run.meta["diverged_at"] == 5
    assert run.metrics.loc[5, S.NONFINITE] == 1 and math.isnan(run.metrics.loc[5, S.LOSS_G])
    G, D = nets()
    with Monitor(G, D, tmp_path / "ok") as mon:
        loop(mon, G, D, 6)
    assert load_run(tmp_path / "ok").status == "completed"


def test_a_flush_between_a_d_step_and_its_g_step_keeps_the_d_step_for_its_row(tmp_path):
    G, D = nets()
    with Monitor(G, D, tmp_path / "r", config=EVERY_STEP) as mon:
        ref = loop(mon, G, D, 2)
        out = D(torch.randn(8, 2))
        out.mean().backward()
        mon.discriminator_step(loss=out.mean(), real_out=out, fake_out=out)
        mon.flush()  # by hand, with the D step of iteration 2 waiting for its G step
        gen = D(G(torch.randn(8, 4)))
        gen.mean().backward()
        mon.generator_step(loss=gen.mean(), fake_out=gen)
    m = load_run(tmp_path / "r").metrics
    assert list(m.index) == [0, 1, 2] and m.loc[2, S.LOSS_D] == pytest.approx(out.mean().item(), rel=1e-6)
    assert m.loc[1, S.LOSS_D] == pytest.approx(ref[1]["loss_d"], rel=1e-6) and m.loc[2, S.D_STEPS] == 1


@pytest.mark.parametrize("config", [EVERY_STEP, MonitorConfig()], ids=["every", "default"])
def test_simultaneous_updates_do_not_look_like_d_moved_in_the_g_step(tmp_path, config):
    # Both Monitor calls come before both optimizer steps, as the docs allow: opt_d
    # then moves D between the G step and the next D step, which is no mistake.
    def simultaneous(mon, G, D, steps, shared):
        opt_g = torch.optim.Adam(list(G.parameters()) + (list(D.parameters()) if shared else []), 1e-3)
        opt_d = torch.optim.Adam(D.parameters(), 1e-3)
        v = LOSSES["nonsaturating"]
        for _ in range(steps):
            fake = G(torch.randn(8, 4))
            r, f = D(torch.randn(8, 2) + 2), D(fake.detach())
            loss_d = v.d_loss(r, f)
            opt_d.zero_grad()
            loss_d.backward()
            mon.discriminator_step(loss=loss_d, real_out=r, fake_out=f)
            out = D(fake)
            loss_g = v.g_loss(out, out.detach())
            opt_g.zero_grad()
            loss_g.backward()
            mon.generator_step(loss=loss_g, fake_out=out)
            opt_d.step()
            opt_g.step()

    G, D = nets()
    with Monitor(G, D, tmp_path / "r", config=config) as mon:
        simultaneous(mon, G, D, 35, shared=False)
    moved = load_run(tmp_path / "r").series(S.D_MOVED_IN_G_STEP)
    assert len(moved) == 4 and (moved == 0).all()
    # An alternating loop with the mistake is still caught (see the shared-optimizer tests).
    G, D = nets()
    with Monitor(G, D, tmp_path / "bad", config=config) as mon:
        shared_optimizer_loop(mon, G, D, 35)
    bad = load_run(tmp_path / "bad").series(S.D_MOVED_IN_G_STEP)
    assert len(bad) == 4 and (bad == 1).all()


def test_weight_clipping_before_the_critic_step_is_not_a_shared_optimizer(tmp_path):
    # The original WGAN loop clamps the critic's weights at the start of each critic
    # step: D changes between the G step and the next D step, but only shrinks.
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    D = nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1), nn.Flatten(0))
    opt_g, opt_d = torch.optim.RMSprop(G.parameters(), 5e-5), torch.optim.RMSprop(D.parameters(), 5e-5)
    with Monitor(G, D, tmp_path / "r", d_output="critic") as mon:
        for _ in range(40):
            for _ in range(5):
                with torch.no_grad():
                    for p in D.parameters():
                        p.clamp_(-0.01, 0.01)
                r, f = D(torch.randn(16, 2) + 2), D(G(torch.randn(16, 4)).detach())
                loss_d = f.mean() - r.mean()
                opt_d.zero_grad()
                loss_d.backward()
                mon.discriminator_step(loss=loss_d, real_out=r, fake_out=f)
                opt_d.step()
            out = D(G(torch.randn(16, 4)))
            loss_g = -out.mean()
            opt_g.zero_grad()
            loss_g.backward()
            mon.generator_step(loss=loss_g, fake_out=out)
            opt_g.step()
    run = load_run(tmp_path / "r")
    moved = run.series(S.D_MOVED_IN_G_STEP)
    assert len(moved) == 4 and (moved == 0).all()
    assert "discriminator_changed_in_generator_step" not in {f.kind for f in analyze(run)}


def test_the_divergence_row_of_close_keeps_its_losses_next_to_a_last_evaluation(tmp_path):
    G, D = nets()
    cfg = MonitorConfig(diversity_every=1000)  # a run too short for a second evaluation: close() makes one
    mon = Monitor(G, D, tmp_path / "r", config=cfg, evaluator=lambda fake: {S.DIV_RATIO: float(len(fake))})
    loop(mon, G, D, 5)
    with torch.no_grad():
        D[2].weight.fill_(float("nan"))  # NaN losses, finite fakes: close() still evaluates them
    loop(mon, G, D, 1)  # step 5, not recorded, and the last
    mon.close()
    run = load_run(tmp_path / "r")
    assert run.meta["diverged_at"] == 5 and run.meta["steps_seen"] == 6
    assert run.metrics.loc[5, S.NONFINITE] == 1 and math.isnan(run.metrics.loc[5, S.LOSS_G])
    assert run.metrics.loc[5, S.DIV_RATIO] == 6 * 32  # close()'s evaluation (of all 6 fake batches) in the same row


def test_a_loop_that_stops_on_a_nan_d_step_counts_that_iteration(tmp_path):
    G, D = nets()
    mon = Monitor(G, D, tmp_path / "r")
    loop(mon, G, D, 5)  # steps 0-4; iteration 5 is not recorded
    out = D(torch.randn(8, 2)) * float("nan")
    out.mean().backward()
    mon.discriminator_step(loss=out.mean(), real_out=out, fake_out=out)  # and the loop stops
    mon.close()
    run = load_run(tmp_path / "r")
    assert run.status == "diverged" and run.meta["diverged_at"] == 5 and run.meta["steps_seen"] == 6
    assert run.metrics.loc[5, S.NONFINITE] == 1 and math.isnan(run.metrics.loc[5, S.LOSS_D])
