import json
import math

import pytest
import torch
from torch import nn

from gandiag import schema as S
from gandiag.losses import LOSSES
from gandiag.monitor import Monitor, MonitorConfig, MonitorUsageError
from gandiag.rundir import RunDirError, load_run


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
    with Monitor(G, D, tmp_path / "r", d_output="logits", config=MonitorConfig(flush_every=3)) as mon:
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
    with Monitor(G, D, tmp_path / "r") as mon:
        ref = loop(mon, G, D, 3, loss="nonsaturating")
    m = load_run(tmp_path / "r").metrics
    for i, r in enumerate(ref):
        assert m.loc[i, S.LOGIT_GRAD_G] == pytest.approx(1 - r["sigmoid"], rel=1e-5)


def test_probs_output_converts_gradient_to_the_logit(tmp_path):
    # D ending in a sigmoid with BCELoss must record the same logit signal as logits.
    G, D = nets()
    D = nn.Sequential(D, nn.Sigmoid())
    with Monitor(G, D, tmp_path / "p", d_output="probs") as mon:
        ref = loop(mon, G, D, 3, probs=True)
    m = load_run(tmp_path / "p").metrics
    for i, r in enumerate(ref):
        assert m.loc[i, S.LOGIT_GRAD_G] == pytest.approx(r["sigmoid"], rel=1e-4)
        assert 0 <= m.loc[i, S.D_FAKE] <= 1


def test_several_d_steps_are_averaged_into_one_iteration(tmp_path):
    G, D = nets()
    with Monitor(G, D, tmp_path / "r") as mon:
        ref = loop(mon, G, D, 4, d_steps=3)
    m = load_run(tmp_path / "r").metrics
    assert (m[S.D_STEPS] == 3).all()
    for i, r in enumerate(ref):
        assert m.loc[i, S.LOSS_D] == pytest.approx(r["loss_d"], rel=1e-5)
        assert m.loc[i, S.GRAD_NORM_D] == pytest.approx(r["grad_norm_d"], rel=1e-5)


def test_g_step_gradient_into_d_never_counts_as_d(tmp_path):
    # The G step leaves gradients on D; the D norm must come from the D step alone.
    G, D = nets()
    with Monitor(G, D, tmp_path / "r") as mon:
        ref = loop(mon, G, D, 3)
    m = load_run(tmp_path / "r").metrics
    assert [m.loc[i, S.GRAD_NORM_D] for i in range(3)] == pytest.approx([r["grad_norm_d"] for r in ref], rel=1e-5)


def test_partial_run_is_readable_up_to_last_flush(tmp_path):
    G, D = nets()
    mon = Monitor(G, D, tmp_path / "r", config=MonitorConfig(flush_every=4))
    loop(mon, G, D, 10)  # never closed: as if killed
    with open(tmp_path / "r" / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 10, "loss')  # a torn last line
    run = load_run(tmp_path / "r")
    assert run.status == "running"
    assert list(run.metrics.index) == list(range(8))


def test_nan_marks_run_diverged_and_keeps_data(tmp_path):
    G, D = nets()
    mon = Monitor(G, D, tmp_path / "r", config=MonitorConfig(flush_every=2))
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
    with Monitor(G, D, tmp_path / "r") as mon:
        loop(mon, G, D, 3, detach_fake=True)
    assert (load_run(tmp_path / "r").metrics[S.G_HAS_GRAD] == 0).all()


def test_step_without_any_gradient_is_a_usage_error(tmp_path):
    G, D = nets()
    mon = Monitor(G, D, tmp_path / "r")
    out = D(torch.randn(4, 2))
    with pytest.raises(MonitorUsageError, match="neither network has any"):
        mon.generator_step(loss=out.mean(), fake_out=out)
    with pytest.raises(MonitorUsageError, match="neither network has any"):
        mon.discriminator_step(loss=out.mean(), real_out=out, fake_out=out)
    mon.close()


def test_wrong_argument_types_fail_at_the_call(tmp_path):
    G, D = nets()
    with pytest.raises(MonitorUsageError, match="Expected generator= to be a torch.nn.Module but got str"):
        Monitor("G", D, tmp_path / "a")
    with pytest.raises(MonitorUsageError, match="Expected d_output in"):
        Monitor(G, D, tmp_path / "b", d_output="sigmoid")
    mon = Monitor(G, D, tmp_path / "c")
    D(torch.randn(4, 2)).mean().backward()
    with pytest.raises(MonitorUsageError, match="Expected loss= to be a torch.Tensor but got float"):
        mon.discriminator_step(loss=0.5, real_out=torch.zeros(4), fake_out=torch.zeros(4))
    mon.close()
    with pytest.raises(MonitorUsageError, match="closed"):
        mon.generator_step(loss=torch.tensor(0.0), fake_out=torch.zeros(4))


def test_run_dir_held_by_a_live_monitor_is_refused(tmp_path):
    G, D = nets()
    mon = Monitor(G, D, tmp_path / "r")
    with pytest.raises(MonitorUsageError, match="held by process"):
        Monitor(G, D, tmp_path / "r", overwrite=True)
    mon.close()
    with pytest.raises(RunDirError, match="already holds a run"):
        Monitor(G, D, tmp_path / "r")
    Monitor(G, D, tmp_path / "r", overwrite=True).close()


def test_meta_records_format_and_layers(tmp_path):
    G, D = nets()
    Monitor(G, D, tmp_path / "r", d_output="critic", run_config={"loss": "wgan"}).close()
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    assert meta["format"] == "gandiag-run" and meta["version"] == 1
    assert meta["d_output"] == "critic" and meta["config"] == {"loss": "wgan"}
    assert meta["layers_d"] == ["0", "2"]
