import math
import time

import numpy as np
import pytest
import torch

from gandiag.data import load_dataset
from gandiag.metrics.diversity import (
    DiversityEvaluator,
    assign_modes,
    class_stats,
    diversity_ratio,
    frechet_distance,
    histogram_shift,
    knn_radii,
    mode_stats,
    prdc,
)
from gandiag.schema import (
    DIV_COVERAGE,
    DIV_DENSITY,
    DIV_FRECHET,
    DIV_HQ_SHARE,
    DIV_MODE_KL,
    DIV_MODE_SHIFT,
    DIV_MODES_COVERED,
    DIV_MODES_TOTAL,
    DIV_PRECISION,
    DIV_RATIO,
    DIV_RECALL,
)


@pytest.fixture(scope="module")
def ring():
    return load_dataset("ring8", n=4000, seed=0)


def _fresh(ring, n=2000, seed=1):
    return load_dataset("ring8", n=n, seed=seed).data


def test_true_distribution_covers_all_modes(ring):
    stats = mode_stats(_fresh(ring), ring.modes, ring.mode_std)
    assert stats[DIV_MODES_COVERED] == 8 and stats[DIV_MODES_TOTAL] == 8
    # in 2-D, 3 sigmas hold 1 - exp(-4.5) = 98.9% of a Gaussian
    assert stats[DIV_HQ_SHARE] > 0.97
    assert stats[DIV_MODE_KL] < 0.05


def test_single_mode_gives_one_mode_and_log_m(ring):
    one = ring.modes[3] + ring.mode_std * torch.randn(1000, 2, generator=torch.Generator().manual_seed(0))
    stats = mode_stats(one, ring.modes, ring.mode_std)
    assert stats[DIV_MODES_COVERED] == 1
    assert math.isclose(stats[DIV_MODE_KL], math.log(8), rel_tol=1e-6)


def test_off_mode_samples_are_low_quality(ring):
    far = torch.zeros(100, 2)  # the ring's centre is 2 from every mode
    stats = mode_stats(far, ring.modes, ring.mode_std)
    assert stats[DIV_HQ_SHARE] == 0 and stats[DIV_MODES_COVERED] == 0 and math.isnan(stats[DIV_MODE_KL])


def test_a_few_stray_points_do_not_cover_a_mode(ring):
    n = 800  # uniform share 100 per mode, so a mode needs >= 10
    x = ring.modes[torch.arange(n) % 7].clone()  # modes 0..6 evenly
    x[:5] = ring.modes[7]  # 5 stray points in mode 7
    assert mode_stats(x, ring.modes, ring.mode_std)[DIV_MODES_COVERED] == 7


def test_assign_modes_rule():
    modes = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    x = torch.tensor([[0.29, 0.0], [0.31, 0.0], [9.0, 0.0]])
    idx, hq = assign_modes(x, modes, 0.1)
    assert idx.tolist() == [0, 0, 1] and hq.tolist() == [True, False, False]
    with pytest.raises(ValueError, match="Expected samples with 2 values"):
        assign_modes(torch.zeros(3, 3), modes, 0.1)


def test_class_stats():
    probs = torch.full((100, 10), 0.01)
    probs[torch.arange(100), torch.arange(100) % 10] = 0.91
    stats = class_stats(probs)
    assert stats[DIV_MODES_COVERED] == 10 and stats[DIV_HQ_SHARE] == 1 and stats[DIV_MODE_KL] < 1e-9
    probs[:, 0] = 0.91  # rows now sum to more than 1, as logits would
    with pytest.raises(ValueError, match="rows summing to 1"):
        class_stats(probs)
    collapsed = torch.zeros(50, 10)
    collapsed[:, 2] = 1
    s = class_stats(collapsed)
    assert s[DIV_MODES_COVERED] == 1 and math.isclose(s[DIV_MODE_KL], math.log(10))
    unsure = torch.full((50, 10), 0.1)
    assert class_stats(unsure)[DIV_HQ_SHARE] == 0


def test_prdc_of_two_real_samples_is_about_one(ring):
    scores = prdc(_fresh(ring, 1000, 1), _fresh(ring, 1000, 2))
    for key in (DIV_PRECISION, DIV_RECALL, DIV_COVERAGE, DIV_DENSITY):
        assert abs(scores[key] - 1) < 0.15, (key, scores[key])


def test_prdc_of_collapsed_fakes(ring):
    real = _fresh(ring, 1000, 1)
    point = ring.modes[0] + torch.zeros(200, 2) + 1e-3 * torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    scores = prdc(real, point)
    assert scores[DIV_RECALL] < 0.05 and scores[DIV_COVERAGE] < 0.05
    assert scores[DIV_PRECISION] > 0.9  # the point is a plausible sample
    one_mode = real[torch.cdist(real, ring.modes).argmin(dim=1) == 0]
    scores = prdc(real, one_mode)
    assert scores[DIV_COVERAGE] < 1 / 8 + 0.05 and scores[DIV_RECALL] < 1 / 8 + 0.05


def test_prdc_matches_brute_force_definition():
    gen = torch.Generator().manual_seed(0)
    real, fake, k = torch.randn(40, 3, generator=gen), torch.randn(30, 3, generator=gen) + 0.5, 3

    def radius(x, i):
        return sorted(float((x[i] - x[j]).norm()) for j in range(len(x)) if j != i)[k - 1]

    rr = [radius(real, i) for i in range(40)]
    fr = [radius(fake, j) for j in range(30)]
    d = lambda a, b: float((a - b).norm())  # noqa: E731
    precision = np.mean([any(d(f, real[i]) <= rr[i] for i in range(40)) for f in fake])
    recall = np.mean([any(d(r, fake[j]) <= fr[j] for j in range(30)) for r in real])
    density = np.mean([sum(d(f, real[i]) <= rr[i] for i in range(40)) for f in fake]) / k
    coverage = np.mean([min(d(real[i], f) for f in fake) <= rr[i] for i in range(40)])
    got = prdc(real, fake, k)
    assert got[DIV_PRECISION] == pytest.approx(precision)
    assert got[DIV_RECALL] == pytest.approx(recall)
    assert got[DIV_DENSITY] == pytest.approx(density)
    assert got[DIV_COVERAGE] == pytest.approx(coverage)
    assert torch.allclose(knn_radii(real, k), torch.tensor(rr, dtype=torch.float64))


def test_diversity_ratio(ring):
    assert abs(diversity_ratio(_fresh(ring, 1000, 1), _fresh(ring, 1000, 2)) - 1) < 0.05
    collapsed = ring.modes[0] + ring.mode_std * torch.randn(1000, 2)
    assert diversity_ratio(_fresh(ring, 1000, 1), collapsed) < 0.05
    with pytest.raises(ValueError, match="not all identical"):
        diversity_ratio(torch.ones(5, 2), collapsed)


def test_frechet_matches_closed_form_for_diagonal_gaussians():
    gen = torch.Generator().manual_seed(0)
    n = 200_000
    mu1, mu2 = torch.tensor([0.0, 1.0, -1.0]), torch.tensor([0.5, 0.0, -1.0])
    var1, var2 = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([2.0, 1.0, 0.25])
    a = mu1 + var1.sqrt() * torch.randn(n, 3, generator=gen)
    b = mu2 + var2.sqrt() * torch.randn(n, 3, generator=gen)
    expected = float(((mu1 - mu2) ** 2).sum() + (var1 + var2 - 2 * (var1 * var2).sqrt()).sum())
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.03)


def test_frechet_of_a_set_with_itself_is_zero():
    x = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    singular = torch.cat([x[:, :4], torch.zeros(500, 4)], dim=1)  # constant features
    assert frechet_distance(singular, singular) == pytest.approx(0.0, abs=1e-4)


def test_evaluator_on_mixture(ring):
    ev = DiversityEvaluator(ring.data, modes=ring.modes, mode_std=ring.mode_std)
    scores = ev(_fresh(ring, 1500, 5))
    assert set(scores) == set(ev.keys) == {
        DIV_RATIO, DIV_PRECISION, DIV_RECALL, DIV_DENSITY, DIV_COVERAGE,
        DIV_MODES_COVERED, DIV_MODES_TOTAL, DIV_HQ_SHARE, DIV_MODE_KL, DIV_MODE_SHIFT,
    }
    assert math.isnan(scores[DIV_MODE_SHIFT])  # no previous evaluation to compare with
    assert scores[DIV_MODES_COVERED] == 8 and abs(scores[DIV_RATIO] - 1) < 0.05
    assert all(isinstance(v, float) for v in scores.values())
    nan_scores = ev(torch.full((100, 2), math.nan))
    assert set(nan_scores) == set(ev.keys) and all(math.isnan(v) for v in nan_scores.values())


def test_evaluator_is_deterministic_and_generic_without_modes(ring):
    ev = DiversityEvaluator(ring.data, max_samples=500)
    fake = _fresh(ring, 1500, 5)
    assert ev(fake) == ev(fake)
    assert DIV_MODES_COVERED not in ev(fake) and DIV_FRECHET not in ev(fake)


def test_evaluator_is_fast(ring):
    ev = DiversityEvaluator(ring.data, modes=ring.modes, mode_std=ring.mode_std)
    fake = _fresh(ring, 1000, 5)
    ev(fake)  # warm-up
    start = time.perf_counter()
    for _ in range(5):
        ev(fake)
    assert (time.perf_counter() - start) / 5 < 0.25  # ~20-40 ms on one core; slack for shared CI


def test_evaluator_validates(ring):
    with pytest.raises(ValueError, match="both given or both None"):
        DiversityEvaluator(ring.data, modes=ring.modes)
    with pytest.raises(TypeError, match=r"probs\(\) and features\(\)"):
        DiversityEvaluator(ring.data, classifier=object())
    ev = DiversityEvaluator(ring.data)
    with pytest.raises(ValueError, match=r"Expected fake samples of shape \[n, 2\]"):
        ev(torch.zeros(10, 3))
    with pytest.raises(ValueError, match="more than k=5 fake samples"):
        ev(torch.zeros(5, 2))


def test_blocked_distances_agree_with_whole_matrices(monkeypatch):
    # Distances are reduced in row blocks; blocks of a few rows must give what
    # whole cdist matrices give.
    import gandiag.metrics.diversity as div

    gen = torch.Generator().manual_seed(0)
    real, fake, k = torch.randn(53, 3, generator=gen), torch.randn(47, 3, generator=gen) + 0.3, 4
    whole_r = torch.cdist(real.double(), real.double()).fill_diagonal_(math.inf).kthvalue(k, dim=1).values
    want = prdc(real, fake, k)
    spread = diversity_ratio(real, fake)
    monkeypatch.setattr(div, "_BLOCK_ENTRIES", 7 * 53)  # 7-row blocks, the last one short
    assert torch.allclose(knn_radii(real, k), whole_r)
    assert prdc(real, fake, k) == pytest.approx(want)
    ev = DiversityEvaluator(real, k=k)
    got = ev(fake)
    assert got[DIV_RATIO] == pytest.approx(spread)
    for key in (DIV_PRECISION, DIV_RECALL, DIV_DENSITY, DIV_COVERAGE):
        assert got[key] == pytest.approx(want[key]), key


def test_evaluator_agrees_with_the_functions(ring):
    fake = _fresh(ring, 1000, 5)
    real = ring.data[:1000]
    got = DiversityEvaluator(real)(fake)
    assert got[DIV_RATIO] == pytest.approx(diversity_ratio(real, fake), rel=1e-9)
    want = prdc(real, fake)
    for key in (DIV_PRECISION, DIV_RECALL, DIV_DENSITY, DIV_COVERAGE):
        assert got[key] == want[key], key


def test_histogram_shift_is_the_total_variation_distance():
    # p = (1/2, 1/2, 0, 0), q = (0, 1/2, 1/2, 0): half the mass moved, whatever the counts.
    assert histogram_shift(torch.tensor([4.0, 4.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 1.0, 0.0])) == 0.5
    assert histogram_shift(torch.tensor([1.0, 3.0]), torch.tensor([10.0, 30.0])) == 0.0
    assert histogram_shift(torch.tensor([5.0, 0.0, 0.0]), torch.tensor([0.0, 2.0, 7.0])) == 1.0
    # 0.5 * (|0.2 - 0.6| + |0.8 - 0.4|) = 0.4
    assert histogram_shift(torch.tensor([0.2, 0.8]), torch.tensor([0.6, 0.4])) == pytest.approx(0.4)
    assert math.isnan(histogram_shift(torch.zeros(3), torch.ones(3)))


def test_histogram_shift_validates():
    with pytest.raises(ValueError, match="same modes but got shapes"):
        histogram_shift(torch.ones(3), torch.ones(4))
    with pytest.raises(ValueError, match="non-negative, finite"):
        histogram_shift(torch.tensor([1.0, -1.0]), torch.ones(2))


def test_evaluator_mode_shift_follows_a_sampler_that_jumps(ring):
    # A "G" whose fixed batch sits on modes 0 and 1, then jumps to modes 2 and 3,
    # then sends half of its samples back: shifts 1, then 1/2, then 0.
    ev = DiversityEvaluator(ring.data, modes=ring.modes, mode_std=ring.mode_std)
    gen = torch.Generator().manual_seed(3)
    noise = ring.mode_std * torch.randn(400, 2, generator=gen)
    on = lambda *modes: ring.modes[torch.tensor(modes).repeat_interleave(400 // len(modes))] + noise  # noqa: E731
    assert math.isnan(ev(on(0, 1))[DIV_MODE_SHIFT])
    assert ev(on(2, 3))[DIV_MODE_SHIFT] == pytest.approx(1.0)
    assert ev(on(0, 1, 2, 3))[DIV_MODE_SHIFT] == pytest.approx(0.5, abs=0.02)
    assert ev(on(0, 1, 2, 3))[DIV_MODE_SHIFT] == 0.0
    ev.reset()
    assert math.isnan(ev(on(0, 1))[DIV_MODE_SHIFT])


def test_evaluator_mode_shift_of_fresh_batches_of_one_g_is_small(ring):
    ev = DiversityEvaluator(ring.data, modes=ring.modes, mode_std=ring.mode_std)
    ev(_fresh(ring, 1000, 5))
    assert ev(_fresh(ring, 1000, 6))[DIV_MODE_SHIFT] < 0.1  # sampling noise only


def test_evaluator_needs_more_reals_than_neighbours():
    with pytest.raises(ValueError, match=r"Expected more than k=5 real samples .* but got 5"):
        DiversityEvaluator(torch.randn(5, 2))
    assert DiversityEvaluator(torch.randn(6, 2)).k == 5
