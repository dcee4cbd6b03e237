import numpy as np

from gandiag import schema as S
from gandiag.detectors.no_generator_gradient import GeneratorGetsNoGradient


def test_no_gradient_on_every_g_step_is_critical(make_run, healthy):
    m = healthy(0)
    m[S.G_HAS_GRAD] = np.zeros(1000)
    (f,) = GeneratorGetsNoGradient().detect(make_run(m))
    assert (f.kind, f.severity, f.start_step, f.end_step) == ("generator_gets_no_gradient", "critical", 0, 999)
    assert f.evidence["share_without_grad"] == 1.0
    assert "detach" in f.message


def test_almost_all_steps_is_enough(make_run):
    has_grad = np.zeros(100)
    has_grad[[3, 50, 77]] = 1
    (f,) = GeneratorGetsNoGradient().detect(make_run({S.G_HAS_GRAD: has_grad}))
    assert f.evidence["share_without_grad"] == 0.97


def test_some_steps_without_gradient_do_not_fire(make_run, healthy):
    has_grad = np.ones(100)
    has_grad[:50] = 0
    assert GeneratorGetsNoGradient().detect(make_run({S.G_HAS_GRAD: has_grad})) == []
    assert GeneratorGetsNoGradient().detect(make_run(healthy(0))) == []


def test_too_few_steps_do_not_fire(make_run):
    assert GeneratorGetsNoGradient().detect(make_run({S.G_HAS_GRAD: np.zeros(3)})) == []
