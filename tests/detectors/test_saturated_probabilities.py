import numpy as np

from gandiag import schema as S
from gandiag.detectors.saturated_probabilities import SaturatedProbabilities


def _saturated(n_steps, every):
    share = np.zeros(n_steps)
    share[100::every] = 0.25
    return share


def test_saturated_probabilities_fire_for_probs(make_run):
    (f,) = SaturatedProbabilities().detect(make_run({S.D_PROB_SATURATED: _saturated(1000, 5)}, {"d_output": "probs"}))
    assert (f.kind, f.severity, f.start_step) == ("saturated_probabilities", "warning", 100)
    assert f.end_step == 995 and f.evidence["max_saturated_share"] == 0.25


def test_logits_and_critics_are_not_reported(make_run):
    for d_output in ("logits", "critic"):
        run = make_run({S.D_PROB_SATURATED: _saturated(1000, 5)}, {"d_output": d_output})
        assert SaturatedProbabilities().detect(run) == []


def test_rare_saturation_does_not_fire(make_run, healthy):
    rare = make_run({S.D_PROB_SATURATED: _saturated(1000, 400)}, {"d_output": "probs"})
    assert SaturatedProbabilities().detect(rare) == []
    assert SaturatedProbabilities().detect(make_run(healthy(0), {"d_output": "probs"})) == []
