import numpy as np
import pytest

from gandiag import schema as S
from gandiag.detectors.vanishing_gradient import VanishingGeneratorGradient, VanishingGradientConfig


def _detect(run, **config):
    return VanishingGeneratorGradient(VanishingGradientConfig(**config)).detect(run)


def test_grad_norm_that_decays_then_stays_flat_fires_near_the_decay(make_run, healthy):
    m = healthy(0)
    t = np.arange(1000)
    decay = np.where(t < 300, 1.0, np.exp(-np.minimum(t - 300, 100) / 10.0))  # 1 -> 4.5e-5, then flat
    m[S.GRAD_NORM_G] = m[S.GRAD_NORM_G] * decay
    (f,) = _detect(make_run(m))
    assert f.kind == "vanishing_generator_gradient" and f.severity == "warning"
    assert 300 <= f.start_step <= 360
    assert f.end_step == 999
    assert f.evidence["ratio"] >= 100 and f.evidence["decay_ratio"] == 100
    assert f.evidence["metric"] == S.GRAD_NORM_G


def test_logit_gradient_below_the_floor_fires(make_run, healthy):
    m = healthy(0)
    m[S.LOGIT_GRAD_G][400:] = 0.01 + 0.005 * np.random.default_rng(1).random(600)
    (f,) = _detect(make_run(m, {"config": {"loss": "minimax"}}))
    assert 390 <= f.start_step <= 410 and f.end_step == 999
    assert f.evidence["floor"] == 0.05 and f.evidence["median_in_window"] < 0.02
    assert f.evidence["median_before"] == pytest.approx(0.5, abs=0.05)
    assert f.evidence["loss"] == "minimax"
    assert "non-saturating" in f.message


def test_both_rules_on_one_collapse_report_it_once(make_run, healthy):
    m = healthy(0)
    m[S.LOGIT_GRAD_G][400:] = 0.001
    m[S.GRAD_NORM_G][400:] *= 1e-4
    assert len(_detect(make_run(m))) == 1


def test_critic_ignores_the_logit_floor_but_not_the_decay(make_run, healthy):
    m = healthy(0)
    m[S.LOGIT_GRAD_G][:] = 0.01  # a critic's score gradient has no fixed scale
    assert _detect(make_run(m, {"d_output": "critic"})) == []
    m[S.GRAD_NORM_G][500:] *= 1e-3
    (f,) = _detect(make_run(m, {"d_output": "critic"}))
    assert f.evidence["metric"] == S.GRAD_NORM_G and 490 <= f.start_step <= 510


def test_unbounded_logit_gradient_is_not_held_to_the_floor(make_run, healthy):
    m = healthy(0)
    m[S.LOGIT_GRAD_G][:100] = 1.8  # a least-squares loss, not BCE
    m[S.LOGIT_GRAD_G][400:] = 0.01
    assert _detect(make_run(m)) == []


def test_short_dip_and_healthy_run_do_not_fire(make_run, healthy):
    m = healthy(0)
    assert _detect(make_run(m)) == []
    m[S.LOGIT_GRAD_G][500:512] = 0.01
    m[S.GRAD_NORM_G][600:612] *= 1e-4
    assert _detect(make_run(m)) == []
