import numpy as np

from gandiag import schema as S
from gandiag.detectors.d_changed_in_g_step import DiscriminatorChangedInGeneratorStep


def test_d_moving_in_every_g_step_is_critical(make_run, healthy):
    m = healthy(0)
    m[S.D_MOVED_IN_G_STEP] = np.ones(1000)
    (f,) = DiscriminatorChangedInGeneratorStep().detect(make_run(m))
    assert (f.kind, f.severity, f.start_step, f.end_step) == (
        "discriminator_changed_in_generator_step", "critical", 0, 999)
    assert f.evidence["share_of_g_steps"] == 1.0


def test_isolated_moves_do_not_fire(make_run, healthy):
    moved = np.zeros(1000)
    moved[[10, 500]] = 1
    assert DiscriminatorChangedInGeneratorStep().detect(make_run({S.D_MOVED_IN_G_STEP: moved})) == []
    assert DiscriminatorChangedInGeneratorStep().detect(make_run(healthy(0))) == []
