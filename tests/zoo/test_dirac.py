"""The Dirac-GAN reference (Mescheder et al. 2018): radii, and the detectors' verdicts."""
import math

import pytest

from gandiag.detectors import analyze
from gandiag.rundir import load_run
from gandiag.zoo.dirac import DiracConfig, radius_after, record_dirac, reference_runs

SIM = DiracConfig(scheme="simultaneous", steps=500)
ALT = DiracConfig(scheme="alternating", steps=500)
R1 = DiracConfig(scheme="simultaneous", steps=500, r1_gamma=0.3)


def test_closed_form_radii_match_the_reference():
    sim = radius_after(SIM)
    assert sim[99] == pytest.approx(1.96, abs=0.01)
    assert sim[499] == pytest.approx(3.10, abs=0.02)
    alt = radius_after(ALT)
    assert all(1.3 < r < 1.5 for r in alt)
    assert radius_after(R1)[199] < 1e-2


def test_alternating_cycles_whichever_player_moves_first():
    # The recorded order is D then G (the trainer's); G first stays on the same orbit size.
    th, ps, h = 1.0, 1.0, 0.2
    for _ in range(500):
        th = th - h * ps / (1 + math.exp(ps * th))
        ps = ps + h * th / (1 + math.exp(ps * th))
        assert 1.3 < math.hypot(th, ps) < 1.5


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    out = tmp_path_factory.mktemp("dirac")
    return {verdict: record_dirac(cfg, out / verdict) for verdict, cfg in reference_runs().items()}


def test_recorded_runs_end_where_the_closed_form_does(recorded):
    for verdict, cfg in reference_runs().items():
        meta = load_run(recorded[verdict]).meta
        assert meta["dirac"]["radius"] == pytest.approx(radius_after(cfg)[-1], rel=1e-6, abs=1e-9)
        assert meta["steps_seen"] == cfg.steps


def test_recorded_gradient_norms_are_the_closed_form_ones(recorded):
    # At step 0, |dL/dtheta| = f'(psi*theta)*psi with f'(t) = 1 / (1 + e^t). Simultaneous:
    # at theta = psi = 1. Alternating: at psi = 1 + h*f'(1), after D's step.
    sim = load_run(recorded["diverging"]).metrics
    assert sim["grad_norm_g"].iloc[0] == pytest.approx(1 / (1 + math.e), rel=1e-6)
    psi1 = 1 + 0.2 / (1 + math.e)
    alt = load_run(recorded["oscillating"]).metrics
    assert alt["grad_norm_g"].iloc[0] == pytest.approx(psi1 / (1 + math.exp(psi1)), rel=1e-6)
    for run in (sim, alt):
        assert run["d_moved_in_g_step"].dropna().max() == 0  # separate players, as the Monitor expects


def test_alternating_run_is_called_oscillating(recorded):
    assert [f.kind for f in analyze(recorded["oscillating"])] == ["oscillation"]


def test_r1_run_is_called_converged(recorded):
    assert analyze(recorded["converged"]) == []


def test_simultaneous_run_is_called_diverging(recorded):
    # G's signal really does vanish on the spiral's long D-wins stretches (D(G(z)) < 0.01),
    # so vanishing_generator_gradient may come with it; what matters is divergence, not oscillation.
    kinds = {f.kind for f in analyze(recorded["diverging"])}
    assert "divergence" in kinds and "oscillation" not in kinds
    (f,) = [f for f in analyze(recorded["diverging"]) if f.kind == "divergence"]
    assert f.evidence["reason"] == "spiral"


def test_config_is_checked():
    with pytest.raises(ValueError, match="scheme"):
        DiracConfig(scheme="leapfrog")
    with pytest.raises(ValueError, match="r1_gamma"):
        DiracConfig(r1_gamma=-1.0)
