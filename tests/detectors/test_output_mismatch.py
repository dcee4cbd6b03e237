import numpy as np

from gandiag import schema as S
from gandiag.detectors.output_mismatch import OutputMismatch

T = np.arange(1000)
RNG = np.random.default_rng(0)


def _outputs(lo, hi):
    return {S.D_OUT_MIN: np.asarray(lo, float), S.D_OUT_MAX: np.asarray(hi, float)}


def test_sigmoid_applied_twice_fires(make_run):
    run = make_run(_outputs(0.5 + 0.05 * RNG.random(1000), 0.73 - 0.05 * RNG.random(1000)))
    (f,) = OutputMismatch().detect(run)
    assert (f.kind, f.severity, f.start_step, f.end_step) == ("output_mismatch", "warning", 0, 999)
    assert f.evidence["pattern"] == "sigmoid applied twice"


def test_probabilities_declared_as_logits_fire(make_run):
    (f,) = OutputMismatch().detect(make_run(_outputs(0.01 + 0.0 * T, 0.99 + 0.0 * T)))
    assert f.evidence["pattern"] == "probabilities declared as logits"


def test_double_sigmoid_under_probs_fires(make_run):
    (f,) = OutputMismatch().detect(make_run(_outputs(np.full(1000, 0.51), np.full(1000, 0.72)), {"d_output": "probs"}))
    assert f.evidence["pattern"] == "sigmoid applied twice"


def test_healthy_logits_starting_small_do_not_fire(make_run):
    spread = np.minimum(1 + T / 100, 6)  # within [-1, 1] early, then spreading out
    assert OutputMismatch().detect(make_run(_outputs(-spread, spread))) == []
    lo = np.where(T < 200, 0.1, -4.0)  # an early positive band, then a normal logit range
    assert OutputMismatch().detect(make_run(_outputs(lo, np.where(T < 200, 0.9, 4.0)))) == []


def test_probs_outside_unit_interval_are_critical(make_run):
    lo = np.where(T >= 100, -2.0, 0.1)
    (f,) = OutputMismatch().detect(make_run(_outputs(lo, np.full(1000, 0.9)), {"d_output": "probs"}))
    assert (f.severity, f.start_step, f.end_step) == ("critical", 100, 999)


def test_valid_probs_and_critics_do_not_fire(make_run):
    probs = make_run(_outputs(np.full(1000, 0.02), np.full(1000, 0.98)), {"d_output": "probs"})
    critic = make_run(_outputs(np.full(1000, 0.2), np.full(1000, 0.6)), {"d_output": "critic"})
    assert OutputMismatch().detect(probs) == [] and OutputMismatch().detect(critic) == []


def test_logits_all_near_zero_are_a_d_at_chance_not_probabilities(make_run):
    # The converged Dirac-GAN: D scores the real point exactly 0 and the fakes ~0.
    n = 400
    run = make_run({S.D_OUT_MIN: np.zeros(n), S.D_OUT_MAX: np.full(n, 1e-3)})
    assert OutputMismatch().detect(run) == []


def test_probabilities_declared_as_logits_fire_through_steps_where_d_rejects_everything(make_run):
    # A sigmoid-ended D under BCEWithLogitsLoss: on a fifth of the steps (in blocks)
    # D pushes every output below 0.05. Those steps fit logits near 0 as well, so
    # they must neither break the window nor make it.
    rejecting = (T // 50) % 5 == 2
    lo, hi = np.full(1000, 3e-7), np.where(rejecting, 0.03, 0.97)
    (f,) = OutputMismatch().detect(make_run(_outputs(lo, hi)))
    assert f.evidence["pattern"] == "probabilities declared as logits" and (f.start_step, f.end_step) == (0, 999)


def test_a_logit_d_mostly_at_zero_with_an_early_positive_band_does_not_fire(make_run):
    # 300 early steps in (0.05, 1), then a D at chance scoring ~0: too little evidence.
    lo, hi = np.where(T < 300, 0.1, 0.0), np.where(T < 300, 0.9, 1e-3)
    assert OutputMismatch().detect(make_run(_outputs(lo, hi))) == []
