import numpy as np
import pandas as pd

from gandiag import schema as S
from gandiag.detectors.discriminator_strength import DiscriminatorTooStrong, DiscriminatorTooWeak, TooWeakConfig

T = np.arange(1000)


def _noise(seed, scale):
    return scale * np.random.default_rng(seed).normal(size=T.size)


def _strong(m, from_step, fake=0.005):
    m[S.D_ACC][from_step:] = np.clip(0.997 + _noise(1, 0.003)[from_step:], 0, 1)
    m[S.D_FAKE][from_step:] = fake
    m[S.D_REAL][from_step:] = 0.99
    return m


def _at_chance(m, from_step):
    m[S.D_ACC][from_step:] = 0.5 + _noise(2, 0.02)[from_step:]
    m[S.D_REAL][from_step:] = 0.5 + _noise(3, 0.01)[from_step:]
    m[S.D_FAKE][from_step:] = 0.5 + _noise(4, 0.01)[from_step:]
    return m


def _fooled(m, from_step, real=0.504, fake=0.998, acc=0.43):
    # The shape of a zoo run with a D too slow to follow G: the fakes score as
    # more real than the reals, and accuracy sits just below chance.
    m[S.D_ACC][from_step:] = acc + _noise(2, 0.02)[from_step:]
    m[S.D_REAL][from_step:] = real + _noise(3, 0.002)[from_step:]
    m[S.D_FAKE][from_step:] = fake
    return m


def _quality(m, hq):
    share = m[S.DIV_HQ_SHARE]
    share[share.index >= 300] = hq
    m[S.DIV_PRECISION][m[S.DIV_PRECISION].index >= 300] = hq
    return m


class TestTooStrong:
    def test_fires_on_near_perfect_separation(self, make_run, healthy):
        (f,) = DiscriminatorTooStrong().detect(make_run(_strong(healthy(0), 300)))
        assert f.kind == "discriminator_too_strong" and f.severity == "warning"
        assert 295 <= f.start_step <= 310 and f.end_step == 999
        assert f.evidence["d_fake_median"] == 0.005 and f.evidence["min_accuracy"] == 0.99

    def test_needs_saturated_fake_probabilities(self, make_run, healthy):
        assert DiscriminatorTooStrong().detect(make_run(_strong(healthy(0), 300, fake=0.2))) == []

    def test_a_critic_is_judged_on_accuracy_alone(self, make_run, healthy):
        m = _strong(healthy(0), 300, fake=-40.0)
        (f,) = DiscriminatorTooStrong().detect(make_run(m, {"d_output": "critic"}))
        assert "d_fake_median" not in f.evidence

    def test_a_brief_early_win_does_not_fire(self, make_run, healthy):
        m = _strong(healthy(0), 0)
        fresh = healthy(0)
        for name in (S.D_ACC, S.D_FAKE, S.D_REAL):
            m[name][60:] = fresh[name][60:]
        assert DiscriminatorTooStrong().detect(make_run(m)) == []

    def test_healthy_does_not_fire(self, make_run, healthy):
        assert DiscriminatorTooStrong().detect(make_run(healthy(0))) == []


class TestTooWeak:
    def test_fires_when_d_is_at_chance_and_samples_are_bad(self, make_run, healthy):
        m = _quality(_at_chance(healthy(0), 300), hq=0.2)
        (f,) = DiscriminatorTooWeak().detect(make_run(m))
        assert f.kind == "discriminator_too_weak" and f.severity == "warning"
        assert 295 <= f.start_step <= 310 and f.end_step == 999
        assert f.evidence[f"{S.DIV_HQ_SHARE}_median"] == 0.2

    def test_a_healthy_converged_gan_does_not_fire(self, make_run, healthy):
        m = _at_chance(healthy(0), 300)  # acc 0.5, D(x) = D(G(z)), hq_share 0.9
        assert DiscriminatorTooWeak().detect(make_run(m)) == []

    def test_without_quality_metrics_a_d_that_never_learned_is_info(self, make_run, healthy):
        m = _at_chance(healthy(0), 0)
        for name in (S.DIV_HQ_SHARE, S.DIV_PRECISION):
            del m[name]
        (f,) = DiscriminatorTooWeak().detect(make_run(m))
        assert f.severity == "info" and f.start_step <= 5

    def test_without_quality_metrics_chance_after_learning_is_not_enough(self, make_run, healthy):
        m = _at_chance(healthy(0), 300)
        for name in (S.DIV_HQ_SHARE, S.DIV_PRECISION):
            del m[name]
        assert DiscriminatorTooWeak().detect(make_run(m)) == []

    def test_quality_evaluated_only_before_the_window_is_used(self, make_run, healthy):
        m = _at_chance(healthy(0), 300)
        del m[S.DIV_PRECISION]
        m[S.DIV_HQ_SHARE] = pd.Series([0.9, 0.1], index=[100, 250])
        (f,) = DiscriminatorTooWeak().detect(make_run(m))
        assert f.evidence[f"{S.DIV_HQ_SHARE}_median"] == 0.1

    def test_healthy_does_not_fire(self, make_run, healthy):
        assert DiscriminatorTooWeak().detect(make_run(healthy(0))) == []

    def test_a_d_that_rates_fakes_more_real_than_reals_is_weak(self, make_run, healthy):
        m = _quality(_fooled(healthy(0), 300), hq=0.0)
        (f,) = DiscriminatorTooWeak().detect(make_run(m))
        assert 295 <= f.start_step <= 310 and f.end_step == 999
        assert f.evidence["real_fake_gap_median"] > 0.45
        # ... but not while its samples are good: then G simply won a round.
        assert DiscriminatorTooWeak().detect(make_run(_fooled(healthy(0), 300))) == []

    def test_ties_at_one_half_are_not_a_fooled_d(self, make_run, healthy):
        # Every output exactly 0.5 gives accuracy 0 (no sample on the right side of
        # 0.5) with no gap: neither at chance by accuracy nor fooled.
        m = _quality(_fooled(healthy(0), 300, real=0.5, fake=0.5, acc=0.0), hq=0.0)
        m[S.D_REAL][300:] = 0.5
        assert DiscriminatorTooWeak().detect(make_run(m)) == []

    def test_a_d_that_still_separates_is_not_weak_even_if_samples_are_bad(self, make_run, healthy):
        m = _quality(_fooled(healthy(0), 300, real=0.9, fake=0.2, acc=0.8), hq=0.0)
        assert DiscriminatorTooWeak().detect(make_run(m)) == []

    def test_a_noisy_critic_at_chance_is_judged_over_a_longer_window(self, make_run, healthy):
        # A clipped WGAN critic that cannot separate: its accuracy (midpoint threshold)
        # wanders +-0.05 around 0.52 from batch to batch while samples stay bad.
        m = _quality(healthy(0), hq=0.0)
        m[S.D_ACC][300:] = 0.52 + _noise(5, 0.05)[300:]
        found = DiscriminatorTooWeak().detect(make_run(m, {"d_output": "critic"}))
        assert found and found[0].start_step <= 320
        assert sum(f.end_step - f.start_step for f in found) >= 300
        # The same series read with the probability outputs' 5-point window breaks up.
        assert DiscriminatorTooWeak(TooWeakConfig(critic_smooth_window=5)).detect(make_run(m, {"d_output": "critic"})) == []
        # A critic that does separate is not weak, however long the window.
        m[S.D_ACC][300:] = 0.7 + _noise(5, 0.05)[300:]
        assert DiscriminatorTooWeak().detect(make_run(m, {"d_output": "critic"})) == []
