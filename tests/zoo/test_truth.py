"""Truth measurements and rules, and the trainer hooks the zoo relies on."""
import math

import pytest
import torch

from gandiag.data import load_dataset
from gandiag.losses import get_loss
from gandiag.rundir import load_run
from gandiag.train import TrainConfig, initial_models, train
from gandiag.zoo.scenarios import train_config
from gandiag.zoo.truth import TruthProbe, TruthRecord, is_healthy, label, mode_hopping


def _record(n=40, **over):
    base = dict(steps=list(range(0, 10 * n, 10)), g_grad=[1.0] * n, g_signal=[0.5] * n, d_acc=[0.6] * n,
                d_real=[0.55] * n, d_fake=[0.45] * n, top_mode=[0] * n, top_share=[0.12] * n, finite=[True] * n,
                weight_g=[10.0] * n, weight_d=[10.0] * n,
                final={"finite": True, "modes_covered": 8.0, "modes_total": 8.0, "hq_share": 0.8})
    base.update(over)
    return TruthRecord(**base)


def test_a_balanced_record_is_healthy():
    kinds, onset, measured, undecided = label(_record())
    assert kinds == set() and undecided == set() and is_healthy(measured)


def test_each_rule_fires_on_its_own_measurement():
    n = 40
    assert label(_record(final={"finite": True, "modes_covered": 2.0, "modes_total": 8.0, "hq_share": 0.7}))[0] \
        == {"mode_collapse"}
    # Few modes but no data-like samples: coverage says nothing, the kind is undecided.
    kinds, _, _, undecided = label(_record(final={"finite": True, "modes_covered": 0.0, "modes_total": 8.0,
                                                  "hq_share": 0.01}))
    assert "mode_collapse" not in kinds and undecided == {"mode_collapse"}
    signal = [0.5] * 20 + [0.001] * 20
    kinds, onset, _, _ = label(_record(g_signal=signal))
    assert kinds == {"vanishing_generator_gradient"} and onset["vanishing_generator_gradient"] == 200
    kinds, _, _, _ = label(_record(d_acc=[0.6] * 20 + [1.0] * 20, d_fake=[0.45] * 20 + [0.01] * 20))
    assert kinds == {"discriminator_too_strong"}
    kinds, _, _, _ = label(_record(weight_d=[10.0] * 30 + [500.0] * 10))
    assert "divergence" in kinds
    kinds, _, _, _ = label(_record(finite=[True] * (n - 1) + [False]))
    assert kinds == {"divergence"}


def test_a_short_dip_of_the_signal_is_not_a_vanishing_gradient():
    assert label(_record(g_signal=[0.5] * 35 + [0.001] * 5))[0] == set()


def test_freeze_g_after_stops_g_but_keeps_recording_its_gradient(tmp_path):
    cfg = train_config(loss="minimax", data="ring8", seed=0, steps=40, batch_size=32, lr_g=1e-3, lr_d=1e-3,
                       betas=(0.5, 0.999), d_steps=1, width=16, freeze_g_after=10)
    ds = load_dataset("ring8", n=500)
    seen = {}

    def observer(step, G, D):
        seen[step] = [p.detach().clone() for p in G.parameters()]

    train(cfg, tmp_path / "run", dataset=ds, models=initial_models(ds, cfg), observer=observer)
    assert not all(torch.equal(a, b) for a, b in zip(seen[0], seen[9]))   # G trained before the freeze
    assert all(torch.equal(a, b) for a, b in zip(seen[9], seen[39]))       # ...and not after it
    grad = load_run(tmp_path / "run").metrics["grad_norm_g"].dropna()  # (39: the diversity row of close())
    assert list(grad.index) == list(range(0, 40, cfg.monitor.record_every)) and (grad > 0).all()


def test_freeze_g_after_is_validated():
    with pytest.raises(ValueError, match="freeze_g_after"):
        TrainConfig(freeze_g_after=-1)
    assert TrainConfig().freeze_g_after is None


def test_probe_measures_the_live_networks_on_its_own_schedule(tmp_path):
    ds = load_dataset("ring8", n=500)
    cfg = train_config(loss="nonsaturating", data="ring8", seed=0, steps=20, batch_size=32, lr_g=1e-3,
                       lr_d=1e-3, betas=(0.5, 0.999), d_steps=1, width=16)
    probe = TruthProbe(ds, get_loss("nonsaturating"), every=5, steps=20, seed=0, n_fixed=64, n_final=256)
    train(cfg, tmp_path / "run", dataset=ds, models=initial_models(ds, cfg), observer=probe)
    rec = probe.finish()
    assert rec.steps == [0, 5, 10, 15, 19]
    assert all(math.isfinite(g) and g > 0 for g in rec.g_grad)
    assert 0 <= rec.final["hq_share"] <= 1 and rec.final["modes_total"] == 8


def _hist(*modes, hq=0.4, total=8):
    """One probe's histogram: ``hq`` of the fixed batch spread evenly over ``modes``."""
    h = [0.0] * total
    for m in modes:
        h[m] = hq / len(modes)
    return h


COLLAPSED = {"finite": True, "modes_covered": 2.0, "modes_total": 8.0, "hq_share": 0.5}


def test_a_g_moving_round_the_modes_is_hopping_and_its_final_coverage_undecided():
    # Three modes at a time, one step round the ring per probe: coverage 3/8, union 8/8,
    # 1/3 of the mass moves each time.
    hists = [_hist(i % 8, (i + 1) % 8, (i + 2) % 8) for i in range(40)]
    hop = mode_hopping(hists)
    assert hop["coverage"] == 3 / 8 and hop["union"] == 1.0 and hop["hopping"]
    assert hop["shift"] == pytest.approx(1 / 3) and hop["hq"] == pytest.approx(0.4)
    kinds, onset, measured, undecided = label(_record(mode_hist=hists, final=COLLAPSED))
    assert kinds == {"oscillation"} and undecided == {"mode_collapse"}
    assert onset["oscillation"] == 200 and measured["hop_union"] == 1.0


def test_a_steady_collapse_and_a_steady_spread_are_not_hopping():
    collapsed = label(_record(mode_hist=[_hist(2, 5, hq=0.7)] * 40, final=COLLAPSED))
    assert collapsed[0] == {"mode_collapse"} and collapsed[3] == set()
    spread = label(_record(mode_hist=[_hist(*range(8), hq=0.8)] * 40))
    assert spread[0] == set() and spread[2]["hop_shift"] == 0.0


def test_reshuffling_between_the_same_modes_is_not_hopping():
    # All the mass flips between modes 0 and 1 (shift 1 each time), but G never visits
    # more than 2 of 8 modes: not "from mode to mode" round the data.
    hop = mode_hopping([_hist(i % 2) for i in range(40)])
    assert hop["shift"] == 1.0 and hop["union"] == 0.25 and not hop["hopping"]


def test_hopping_needs_data_like_samples():
    hists = [_hist(i % 8, (i + 1) % 8, hq=0.05) for i in range(40)]
    assert not mode_hopping(hists)["hopping"] and mode_hopping(hists)["hq"] == pytest.approx(0.05)


def test_a_final_collapse_the_probes_do_not_show_is_undecided():
    # The probes of the second half cover 6 of 8 modes; the final G covers 2.
    kinds, _, measured, undecided = label(_record(mode_hist=[_hist(*range(6), hq=0.6)] * 40, final=COLLAPSED))
    assert "mode_collapse" not in kinds and undecided == {"mode_collapse"}
    assert measured["hop_coverage"] == 0.75


def test_probe_records_mode_histograms():
    ds = load_dataset("ring8", n=500)
    probe = TruthProbe(ds, get_loss("nonsaturating"), every=1, steps=1, seed=0, n_fixed=64)

    class OnMode(torch.nn.Module):  # a "G" that puts every sample on mode 3
        latent_dim = 2

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(2, 2))

        def forward(self, z):
            return ds.modes[3] + z @ self.w

    D = torch.nn.Linear(2, 1)
    probe(0, OnMode(), D)
    assert probe.record.mode_hist == [[0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]]
