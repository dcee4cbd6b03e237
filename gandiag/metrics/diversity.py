"""Diversity and fidelity of generated samples: pure functions plus one evaluator.

The functions take tensors and return numbers; :class:`DiversityEvaluator`
holds the real-side statistics so that a training loop pays only for the
fake side on each call. Results are dicts keyed by the ``DIV_*`` names of
:mod:`gandiag.schema`; :data:`METRIC_INFO` says which direction is better.

Try it::

    python -c "from gandiag.data import load_dataset; ds = load_dataset('ring8'); \
print(ds.evaluator()(ds.data[:500]))"
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.linalg
import torch

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

HQ_SIGMAS = 3.0  # the toy-GAN protocol (Unrolled GAN, VEEGAN, PacGAN)
MIN_SHARE = 0.1  # a mode counts as covered at 10% of its uniform share
CONFIDENCE = 0.9  # a classified sample is high quality at top probability >= 0.9
K_NEIGHBOURS = 5  # Naeem et al.'s recommended k for PRDC


@dataclass(frozen=True)
class MetricInfo:
    """What a diversity metric's value means.

    Attributes:
        higher_is_better: ``True``/``False``, or ``None`` when there is no better
            direction (a count of modes that exist).
        lower: Smallest possible value.
        upper: Largest possible value (``inf`` when unbounded; for counts and
            the KL it depends on the number of modes, so it is given as ``inf``).
    """

    higher_is_better: bool | None
    lower: float
    upper: float


METRIC_INFO: dict[str, MetricInfo] = {
    DIV_MODES_COVERED: MetricInfo(True, 0.0, math.inf),
    DIV_MODES_TOTAL: MetricInfo(None, 1.0, math.inf),
    DIV_HQ_SHARE: MetricInfo(True, 0.0, 1.0),
    DIV_MODE_KL: MetricInfo(False, 0.0, math.inf),
    DIV_RATIO: MetricInfo(None, 0.0, math.inf),  # best at 1, not at either end
    DIV_PRECISION: MetricInfo(True, 0.0, 1.0),
    DIV_RECALL: MetricInfo(True, 0.0, 1.0),
    DIV_DENSITY: MetricInfo(True, 0.0, math.inf),
    DIV_COVERAGE: MetricInfo(True, 0.0, 1.0),
    DIV_FRECHET: MetricInfo(False, 0.0, math.inf),
    # No better direction: a learning G moves its mass, a settled one does not,
    # and a G that keeps moving it between few modes is hopping.
    DIV_MODE_SHIFT: MetricInfo(None, 0.0, 1.0),
}


class FeatureClassifier(Protocol):
    """What :class:`DiversityEvaluator` needs of a classifier."""

    def probs(self, x: torch.Tensor) -> torch.Tensor: ...

    def features(self, x: torch.Tensor) -> torch.Tensor: ...


def _as_matrix(name: str, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"Expected {name} to be a torch.Tensor but got {type(x).__name__}")
    if x.ndim < 2 or x.shape[0] < 1:
        raise ValueError(f"Expected {name} of shape [n, ...] with n >= 1 but got {tuple(x.shape)}")
    # float64: distance ranks and covariances are compared closely; the cost is small.
    return x.detach().to("cpu", torch.float64).flatten(1)


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a, b)


# Distance matrices are built in blocks of rows of at most this many entries
# (2 MiB in float64) and reduced block by block: a block stays in cache, and a
# call allocates no 8 MB matrix (fresh pages to fault in) at 1000 x 1000.
_BLOCK_ENTRIES = 1 << 18


def _row_blocks(n_rows: int, n_cols: int) -> list[slice]:
    step = max(1, _BLOCK_ENTRIES // max(n_cols, 1))
    return [slice(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]


def _sq_distances(a: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor) -> torch.Tensor:
    # ||a||^2 + ||b||^2 - 2 a.b in one matrix product, as torch.cdist computes
    # large inputs, but without its square root per entry: k-NN radii and ball
    # membership only compare distances, and squares compare alike.
    sq = torch.addmm((a * a).sum(1, keepdim=True), a, b.T, alpha=-2.0)
    return sq.add_(b_sq).clamp_min_(0.0)


def _self_distances(x: torch.Tensor, k: int, *, spread: bool = False) -> tuple[torch.Tensor, float]:
    """Squared distance from each row to its k-th nearest other row, and (with
    ``spread``) the mean distance over distinct pairs, from one pass over the
    rows' distance matrix; the mean is NaN without ``spread``."""
    n = x.shape[0]
    x_sq = (x * x).sum(1)
    kth = torch.empty(n, dtype=x.dtype)
    total = 0.0
    for rows in _row_blocks(n, n):
        sq = _sq_distances(x[rows], x, x_sq)
        own = sq.diagonal(offset=rows.start)  # each row's distance to itself
        own.fill_(math.inf)  # a point is not its own neighbour
        # topk, not kthvalue: the same value, several times faster for a small k.
        kth[rows] = sq.topk(k, dim=1, largest=False).values[:, -1]
        if spread:
            # The matrix is symmetric: roots of this block's own columns (the
            # diagonal, now 0, counted once) and of the columns to its right
            # (counted twice) add up to the sum over all ordered pairs.
            own.fill_(0.0)
            total += float(sq[:, rows].sqrt_().sum()) + 2.0 * float(sq[:, rows.stop:].sqrt_().sum())
    return kth, (total / (n * (n - 1)) if spread else math.nan)


# ----------------------------------------------------------------------------- modes


def assign_modes(
    samples: torch.Tensor, modes: torch.Tensor, std: float, hq_sigmas: float = HQ_SIGMAS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Assigns each sample to its nearest mode and flags the high-quality ones.

    A sample is high quality when its Euclidean distance to the nearest mode is
    at most ``hq_sigmas * std``, whatever the dimension (the rule of the toy
    GAN papers). In 2-D this keeps ``1 - exp(-hq_sigmas**2 / 2)`` of the true
    mixture's samples (98.9% at 3 sigmas); in many dimensions it keeps far
    fewer, since a Gaussian's radius grows like ``sqrt(D) * std``.

    Args:
        samples: ``[n, D]`` (or any ``[n, ...]``, flattened).
        modes: ``[M, D]`` mode centres.
        std: Per-coordinate standard deviation of each mode.
        hq_sigmas: Radius of the high-quality ball in units of ``std``.

    Returns:
        ``(idx, is_hq)``: nearest-mode index ``[n]`` (long) and flags ``[n]`` (bool).

    Example:
        >>> idx, hq = assign_modes(torch.zeros(3, 2), torch.tensor([[0., 0.], [2., 2.]]), 0.1)
        >>> idx.tolist(), hq.tolist()
        ([0, 0, 0], [True, True, True])
    """
    x = _as_matrix("samples", samples)
    centres = _as_matrix("modes", modes)
    if x.shape[1] != centres.shape[1]:
        raise ValueError(
            f"Expected samples with {centres.shape[1]} values like the modes but got {x.shape[1]}"
        )
    if not std > 0 or not hq_sigmas > 0:
        raise ValueError(f"Expected std > 0 and hq_sigmas > 0 but got std={std}, hq_sigmas={hq_sigmas}")
    dist, idx = _distances(x, centres).min(dim=1)
    return idx, dist <= hq_sigmas * std


def _mode_counts(idx: torch.Tensor, is_hq: torch.Tensor, total: int) -> torch.Tensor:
    """High-quality samples per mode, ``[total]`` float64."""
    return torch.bincount(idx[is_hq], minlength=total).double()


def _histogram_stats(idx: torch.Tensor, is_hq: torch.Tensor, total: int, min_share: float,
                     counts: torch.Tensor | None = None) -> dict[str, float]:
    if not 0 <= min_share <= 1:
        raise ValueError(f"Expected min_share in [0, 1] but got {min_share}")
    n = idx.shape[0]
    if counts is None:
        counts = _mode_counts(idx, is_hq, total)
    need = max(1.0, min_share * n / total)
    hq = counts.sum()
    if hq > 0:
        # KL(p || uniform) = log M - H(p): finite even with empty modes (0 log 0 = 0),
        # so no smoothing is needed; 0 when uniform, log M when all in one mode.
        p = counts / hq
        kl = float(math.log(total) + torch.xlogy(p, p).sum())
    else:
        kl = math.nan  # no high-quality sample: the histogram does not exist
    return {
        DIV_MODES_COVERED: float((counts >= need).sum()),
        DIV_MODES_TOTAL: float(total),
        DIV_HQ_SHARE: float(hq / n),
        DIV_MODE_KL: max(kl, 0.0) if not math.isnan(kl) else kl,
    }


def mode_stats(
    samples: torch.Tensor,
    modes: torch.Tensor,
    std: float,
    *,
    hq_sigmas: float = HQ_SIGMAS,
    min_share: float = MIN_SHARE,
) -> dict[str, float]:
    """Mode coverage and balance of samples from a known Gaussian mixture.

    Keys: ``DIV_MODES_COVERED`` (count in [0, M], higher is better) is the
    number of modes holding at least ``max(1, min_share * n / M)`` high-quality
    samples, i.e. 10% of a uniform spread by default, so a few stray points do
    not count as coverage. ``DIV_MODES_TOTAL`` is M. ``DIV_HQ_SHARE`` (in
    [0, 1], higher is better) is the share of all samples that are high
    quality (see :func:`assign_modes`). ``DIV_MODE_KL`` (in [0, log M], lower
    is better) is KL(p || uniform) in nats of the high-quality samples'
    histogram over modes; NaN when there is no high-quality sample.

    Args:
        samples: ``[n, D]`` generated samples.
        modes: ``[M, D]`` mode centres.
        std: Per-coordinate standard deviation of each mode.
        hq_sigmas: High-quality radius in units of ``std``.
        min_share: Fraction of a uniform share a mode needs to count as covered.

    Returns:
        Dict of the four keys above.

    Example:
        >>> from gandiag.data import load_dataset
        >>> ds = load_dataset("ring8", n=2000)
        >>> mode_stats(ds.data, ds.modes, ds.mode_std)["div/modes_covered"]
        8.0
    """
    idx, is_hq = assign_modes(samples, modes, std, hq_sigmas)
    return _histogram_stats(idx, is_hq, modes.shape[0], min_share)


def class_stats(
    probs: torch.Tensor, *, confidence: float = CONFIDENCE, min_share: float = MIN_SHARE
) -> dict[str, float]:
    """The keys of :func:`mode_stats` for classifier outputs; classes are the modes.

    A sample is high quality when its top class probability is at least
    ``confidence``; it then counts for that class. Ranges and directions are
    those of :func:`mode_stats` with M = K.

    Args:
        probs: ``[n, K]`` class probabilities (rows sum to 1).
        confidence: Top probability a sample needs to count as high quality.
        min_share: Fraction of a uniform share a class needs to count as covered.

    Returns:
        Dict with ``DIV_MODES_COVERED``, ``DIV_MODES_TOTAL``, ``DIV_HQ_SHARE``, ``DIV_MODE_KL``.

    Example:
        >>> class_stats(torch.eye(4))["div/modes_covered"]
        4.0
    """
    _check_probs(probs)
    idx, is_hq = _classify(probs, confidence)
    return _histogram_stats(idx, is_hq, probs.shape[1], min_share)


def _check_probs(probs: torch.Tensor) -> None:
    if not isinstance(probs, torch.Tensor) or probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(f"Expected probs of shape [n, K] with K >= 2 but got {tuple(getattr(probs, 'shape', ()))}")
    p = _as_matrix("probs", probs)
    row_sums = p.sum(dim=1)
    if (p < 0).any() or not torch.allclose(row_sums, torch.ones_like(row_sums), atol=1e-3):
        raise ValueError(
            "Expected probabilities (non-negative, rows summing to 1) but got rows summing to "
            f"{float(row_sums.min()):.4g}..{float(row_sums.max()):.4g}; pass softmax outputs, not logits"
        )


def _classify(probs: torch.Tensor, confidence: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Top class and "high quality" flags of checked class probabilities."""
    if not 0 < confidence <= 1:
        raise ValueError(f"Expected confidence in (0, 1] but got {confidence}")
    top, idx = _as_matrix("probs", probs).max(dim=1)
    return idx, top >= confidence


def histogram_shift(before: torch.Tensor, after: torch.Tensor) -> float:
    """Total-variation distance between two histograms over the same modes.

    Each histogram (counts or shares, ``[M]``, non-negative) is normalised to
    sum to 1 and the result is ``0.5 * sum |p - q|``: the share of the mass
    that sits on other modes in ``after`` than in ``before``. Range [0, 1]: 0
    for the same spread over the modes (whatever the sample counts), 1 when no
    mode holds mass in both. NaN when either histogram is empty (no
    high-quality sample: there is no spread to compare).

    Args:
        before: ``[M]`` counts or shares.
        after: ``[M]`` counts or shares over the same modes.

    Returns:
        The distance.

    Example:
        >>> histogram_shift(torch.tensor([4., 4., 0., 0.]), torch.tensor([0., 1., 1., 0.]))
        0.5
    """
    p, q = (torch.as_tensor(h, dtype=torch.float64).flatten() for h in (before, after))
    if p.shape != q.shape or p.numel() < 1:
        raise ValueError(f"Expected two histograms over the same modes but got shapes "
                         f"{tuple(p.shape)} and {tuple(q.shape)}")
    if (p < 0).any() or (q < 0).any() or not (torch.isfinite(p).all() and torch.isfinite(q).all()):
        raise ValueError("Expected non-negative, finite histogram counts but got a negative or non-finite entry")
    if p.sum() <= 0 or q.sum() <= 0:
        return math.nan
    return float(0.5 * (p / p.sum() - q / q.sum()).abs().sum())


# ----------------------------------------------------------------------------- PRDC


def knn_radii(feats: torch.Tensor, k: int = K_NEIGHBOURS) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row, shape ``[n]``.

    Args:
        feats: ``[n, F]`` features, ``n > k``.
        k: Neighbour rank; the row itself is not counted.

    Returns:
        float64 radii.
    """
    x = _as_matrix("feats", feats)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"Expected k to be a positive int but got {k!r}")
    if x.shape[0] <= k:
        raise ValueError(f"Expected more than k={k} samples for k-NN radii but got {x.shape[0]}")
    return _self_distances(x, k)[0].sqrt()


def prdc(
    real_feats: torch.Tensor,
    fake_feats: torch.Tensor,
    k: int = K_NEIGHBOURS,
    *,
    real_radii: torch.Tensor | None = None,
) -> dict[str, float]:
    """Precision, recall, density and coverage of Naeem et al. (2020).

    From "Reliable Fidelity and Diversity Metrics for Generative Models"
    (ICML 2020). With r(x) the distance from x to its k-th nearest neighbour
    within its own set: precision is the share of fakes inside some real ball
    B(x_i, r(x_i)); recall the share of reals inside some fake ball;
    density the mean number of real balls holding a fake, divided by k;
    coverage the share of reals whose ball holds at least one fake.
    Precision, recall and coverage lie in [0, 1]; density in [0, inf) and is
    about 1 when the sets match. Higher is better for all four.

    Args:
        real_feats: ``[N, F]`` real features (or flattened samples).
        fake_feats: ``[M, F]`` fake features, ``M > k``.
        k: Neighbour rank for the ball radii.
        real_radii: Precomputed :func:`knn_radii` of ``real_feats`` with the same k.

    Returns:
        Dict with ``DIV_PRECISION``, ``DIV_RECALL``, ``DIV_DENSITY``, ``DIV_COVERAGE``.

    Example:
        >>> x = torch.randn(200, 2)
        >>> round(prdc(x, x)["div/coverage"], 2)
        1.0
    """
    real = _as_matrix("real_feats", real_feats)
    fake = _as_matrix("fake_feats", fake_feats)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"Expected fake features of size {real.shape[1]} like the real ones but got {fake.shape[1]}")
    if real_radii is None:
        real_r2 = _self_distances(real, k)[0]
    elif real_radii.shape != (real.shape[0],):
        raise ValueError(f"Expected real_radii of shape [{real.shape[0]}] but got {tuple(real_radii.shape)}")
    else:
        real_r2 = real_radii.to(real.dtype) ** 2
    return _prdc_from_squares(real, fake, real_r2, _self_distances(fake, k)[0], k)


def _prdc_from_squares(real: torch.Tensor, fake: torch.Tensor, real_r2: torch.Tensor, fake_r2: torch.Tensor,
                       k: int) -> dict[str, float]:
    """PRDC from the two sets and their squared k-NN radii."""
    n, fake_sq = real.shape[0], (fake * fake).sum(1)
    n_balls = torch.zeros(fake.shape[0], dtype=torch.int32)  # real balls holding fake j
    covered = recalled = 0
    for rows in _row_blocks(n, fake.shape[0]):
        sq = _sq_distances(real[rows], fake, fake_sq)  # [rows, M]
        # The masks are reduced as uint8 (amax for "any", an int32 sum for counts):
        # several times faster on the CPU than bool any() and its int64 sum.
        inside_real = (sq <= real_r2[rows].unsqueeze(1)).view(torch.uint8)  # fake j inside real ball i
        n_balls += inside_real.sum(dim=0, dtype=torch.int32)
        # Some fake within real i's radius: the same test as "nearest fake within it".
        covered += int(inside_real.amax(dim=1).sum())
        recalled += int((sq <= fake_r2.unsqueeze(0)).view(torch.uint8).amax(dim=1).sum())  # real i in a fake ball
    return {
        DIV_PRECISION: float((n_balls > 0).double().mean()),
        DIV_RECALL: recalled / n,
        DIV_DENSITY: float(n_balls.double().mean() / k),
        DIV_COVERAGE: covered / n,
    }


# ----------------------------------------------------------------------------- spread


def mean_pairwise_distance(x: torch.Tensor) -> float:
    """Mean Euclidean distance over distinct pairs of rows (flattened).

    Args:
        x: ``[n, ...]`` with ``n >= 2``.

    Returns:
        The mean distance, in [0, inf).
    """
    flat = _as_matrix("x", x)
    if flat.shape[0] < 2:
        raise ValueError(f"Expected at least 2 samples for pairwise distances but got {flat.shape[0]}")
    return float(torch.pdist(flat).mean())


def diversity_ratio(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Mean pairwise distance among fakes over the same among reals.

    Range [0, inf); about 1 when the spreads match, towards 0 under mode
    collapse, above 1 when fakes are more scattered than the data. Neither
    end is better: closeness to 1 is.

    Args:
        real: ``[N, ...]`` real samples.
        fake: ``[M, ...]`` generated samples of the same sample shape.

    Returns:
        The ratio.

    Example:
        >>> x = torch.randn(100, 2)
        >>> diversity_ratio(x, 0.01 * x) < 0.05
        True
    """
    return _ratio(mean_pairwise_distance(fake), mean_pairwise_distance(real))


def _ratio(fake_spread: float, real_spread: float) -> float:
    if real_spread <= 0:
        raise ValueError("Expected real samples that are not all identical but got zero mean pairwise distance")
    return fake_spread / real_spread


# ----------------------------------------------------------------------------- Fréchet


def feature_statistics(feats: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[F]`` and covariance ``[F, F]`` (float64) of ``[n, F]`` features, ``n >= 2``."""
    x = _as_matrix("feats", feats).numpy()
    if x.shape[0] < 2:
        raise ValueError(f"Expected at least 2 samples for a covariance but got {x.shape[0]}")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def statistics_to_frechet(
    mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray, sigma_b: np.ndarray
) -> float:
    """Fréchet distance between Gaussians N(mu_a, sigma_a) and N(mu_b, sigma_b).

    ``||mu_a - mu_b||^2 + tr(sigma_a + sigma_b - 2 (sigma_a sigma_b)^(1/2))``,
    the quantity behind FID (Heusel et al., 2017, "GANs Trained by a Two
    Time-Scale Update Rule Converge to a Local Nash Equilibrium").
    Range [0, inf); lower is better.
    """
    if mu_a.shape != mu_b.shape or sigma_a.shape != sigma_b.shape:
        raise ValueError(f"Expected statistics of equal shapes but got {mu_a.shape}/{sigma_a.shape} "
                         f"and {mu_b.shape}/{sigma_b.shape}")
    root = _sqrtm(sigma_a @ sigma_b)
    if root is None:
        # Singular products (constant features, fewer samples than features)
        # can defeat sqrtm; a tiny ridge makes the product well conditioned.
        ridge = 1e-6 * np.eye(sigma_a.shape[0])
        root = _sqrtm((sigma_a + ridge) @ (sigma_b + ridge))
        if root is None:
            return math.nan
    # The exact root of a product of PSD matrices has a real spectrum; an
    # imaginary part is round-off and is dropped.
    trace_root = float(np.real(np.trace(root)))
    diff = mu_a - mu_b
    value = float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * trace_root)
    return max(value, 0.0)  # round-off can dip just below 0 for equal sets


def _sqrtm(a: np.ndarray) -> np.ndarray | None:
    # sqrtm only warns when it fails, so the result is checked here instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(a)
    if not np.isfinite(root).all():
        return None
    scale = max(float(np.abs(a).max()), 1e-300)
    if float(np.abs(root @ root - a).max()) > 1e-4 * scale:
        return None
    return root


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets.

    See :func:`statistics_to_frechet` (Heusel et al., 2017). Range [0, inf);
    lower is better; 0 for identical sets.

    Args:
        feats_a: ``[n, F]`` features.
        feats_b: ``[m, F]`` features.

    Returns:
        The distance.

    Example:
        >>> x = torch.randn(500, 3)
        >>> frechet_distance(x, x) < 1e-6
        True
    """
    return statistics_to_frechet(*feature_statistics(feats_a), *feature_statistics(feats_b))


# ----------------------------------------------------------------------------- evaluator


def _subsample(x: torch.Tensor, max_samples: int, seed: int) -> torch.Tensor:
    if x.shape[0] <= max_samples:
        return x
    # A seeded permutation, not the first rows: a user's file may be sorted by class.
    gen = torch.Generator().manual_seed(seed)
    return x[torch.randperm(x.shape[0], generator=gen)[:max_samples]]


class DiversityEvaluator:
    """Scores generated samples against a fixed real set.

    Every call returns ``DIV_RATIO`` (on flattened samples) and PRDC (on
    classifier features when a classifier is given, else on flattened
    samples); mode statistics when ``modes`` is given; class statistics and
    ``DIV_FRECHET`` (in feature space) when a classifier is given. With modes
    or classes, ``DIV_MODE_SHIFT`` compares the call's histogram with the
    previous call's (:func:`histogram_shift`; NaN on the first call), so an
    evaluator is stateful: use one per run, or :meth:`reset` it. Real-side
    k-NN radii, spread and feature statistics are computed once here.

    Fakes containing NaN or Inf (a diverged generator) give NaN for every key
    rather than an error, so a training run can record its own divergence.

    Args:
        real: ``[N, ...]`` real samples.
        modes: ``[M, D]`` mixture centres, with ``mode_std``.
        mode_std: Per-coordinate standard deviation of each mode.
        classifier: Object with ``probs(x) -> [n, K]`` and ``features(x) -> [n, F]``.
        k: PRDC neighbour rank.
        max_samples: Both sides are subsampled to at most this many.
        seed: Seed of the subsampling, for reproducible results.

    Example:
        >>> from gandiag.data import load_dataset
        >>> ds = load_dataset("ring8", n=2000)
        >>> scores = DiversityEvaluator(ds.data, modes=ds.modes, mode_std=ds.mode_std)(ds.data)
        >>> scores["div/modes_covered"]
        8.0
    """

    # Cost per call at 1000 fakes of dimension 2: two 1000x1000 squared-distance
    # matrices (fake-fake, real-fake). The fake-fake one gives both the k-NN
    # radii and the spread of DIV_RATIO; the real-real one is paid once, in
    # __init__. About 8-12 ms on one CPU core (it was 30-40 ms with kthvalue,
    # a separate pdist and square roots on every entry).

    def __init__(
        self,
        real: torch.Tensor,
        *,
        modes: torch.Tensor | None = None,
        mode_std: float | None = None,
        classifier: FeatureClassifier | None = None,
        k: int = K_NEIGHBOURS,
        max_samples: int = 1000,
        seed: int = 0,
    ):
        if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples <= k:
            raise ValueError(f"Expected max_samples to be an int > k={k} but got {max_samples!r}")
        if (modes is None) != (mode_std is None):
            raise ValueError("Expected modes and mode_std both given or both None but got only one")
        if modes is not None and classifier is not None:
            # Both would fill the same mode keys; there is no data set that needs both.
            raise ValueError("Expected modes or a classifier, not both, but got both")
        if classifier is not None and not all(callable(getattr(classifier, m, None)) for m in ("probs", "features")):
            raise TypeError(
                f"Expected a classifier with probs() and features() methods but got {type(classifier).__name__}"
            )
        if not isinstance(real, torch.Tensor) or real.ndim < 2:
            raise ValueError(f"Expected real samples as a tensor [N, ...] but got {getattr(real, 'shape', real)!r}")
        if real.shape[0] <= k:
            raise ValueError(f"Expected more than k={k} real samples (each is compared with its {k} nearest "
                             f"neighbours) but got {real.shape[0]}")
        self.k = k
        self.max_samples = max_samples
        self.seed = seed
        self.modes = modes
        self.mode_std = mode_std
        self.classifier = classifier
        self._last_counts: torch.Tensor | None = None  # the previous call's mode histogram
        self.sample_shape = tuple(real.shape[1:])
        self.real = _subsample(real.detach().cpu().float(), max_samples, seed)
        self._real_spread = mean_pairwise_distance(self.real)
        if self._real_spread <= 0:
            raise ValueError("Expected real samples that are not all identical but got zero spread")
        if modes is not None:
            dim = math.prod(self.sample_shape)
            if modes.ndim != 2 or modes.shape[1] != dim or not mode_std > 0:
                raise ValueError(
                    f"Expected modes [M, {dim}] and mode_std > 0 but got {tuple(modes.shape)} and {mode_std}"
                )
        feats = self.real if classifier is None else classifier.features(self.real)
        self._real_feats = _as_matrix("real features", feats)
        if classifier is not None:
            self._real_stats = feature_statistics(self._real_feats)
        # Squared radii: every comparison in a call is between squared distances.
        self._real_r2 = _self_distances(self._real_feats, k)[0]

    @property
    def keys(self) -> tuple[str, ...]:
        """The metric names each call returns."""
        keys = [DIV_RATIO, DIV_PRECISION, DIV_RECALL, DIV_DENSITY, DIV_COVERAGE]
        if self.modes is not None or self.classifier is not None:
            keys += [DIV_MODES_COVERED, DIV_MODES_TOTAL, DIV_HQ_SHARE, DIV_MODE_KL, DIV_MODE_SHIFT]
        if self.classifier is not None:
            keys.append(DIV_FRECHET)
        return tuple(keys)

    def __call__(self, fake: torch.Tensor) -> dict[str, float]:
        """Scores ``fake`` (``[n, *sample_shape]``, ``n > k``); returns ``{key: value}``."""
        if not isinstance(fake, torch.Tensor) or tuple(fake.shape[1:]) != self.sample_shape:
            raise ValueError(
                f"Expected fake samples of shape [n, {', '.join(map(str, self.sample_shape))}] "
                f"but got {tuple(getattr(fake, 'shape', ()))}"
            )
        fake = _subsample(fake.detach().cpu().float(), self.max_samples, self.seed)
        if fake.shape[0] <= self.k:
            raise ValueError(f"Expected more than k={self.k} fake samples but got {fake.shape[0]}")
        if not torch.isfinite(fake).all():
            return dict.fromkeys(self.keys, math.nan)
        flat = _as_matrix("fake", fake)
        if self.classifier is None:
            # PRDC is on the samples themselves: one pass over the fake-fake
            # distances gives both the k-NN radii and the spread.
            feats = flat
            fake_r2, spread = _self_distances(flat, self.k, spread=True)
        else:
            fake_feats = self.classifier.features(fake)
            feats = _as_matrix("fake features", fake_feats)
            fake_r2 = _self_distances(feats, self.k)[0]
            spread = _self_distances(flat, 1, spread=True)[1]
        out = {DIV_RATIO: _ratio(spread, self._real_spread)}
        if self.modes is not None:
            out.update(self._modes(*assign_modes(fake, self.modes, self.mode_std), self.modes.shape[0]))
        out.update(_prdc_from_squares(self._real_feats, feats, self._real_r2, fake_r2, self.k))
        if self.classifier is None:
            return out
        probs = self.classifier.probs(fake)
        _check_probs(probs)
        out.update(self._modes(*_classify(probs, CONFIDENCE), probs.shape[1]))
        out[DIV_FRECHET] = statistics_to_frechet(*self._real_stats, *feature_statistics(fake_feats))
        return out

    def reset(self) -> None:
        """Forget the previous call's histogram: the next ``DIV_MODE_SHIFT`` is NaN."""
        self._last_counts = None

    def _modes(self, idx: torch.Tensor, is_hq: torch.Tensor, total: int) -> dict[str, float]:
        counts = _mode_counts(idx, is_hq, total)
        out = _histogram_stats(idx, is_hq, total, MIN_SHARE, counts)
        # The shift compares with the previous call: fed G's samples of one
        # fixed latent batch (the Monitor's sampler=), it measures how far G's
        # mass moved between modes since the last evaluation; fed fresh batches
        # of an unchanged G it stays near its sampling noise (~0.05 at 1,000 samples
        # on 8 modes).
        out[DIV_MODE_SHIFT] = math.nan if self._last_counts is None else histogram_shift(self._last_counts, counts)
        self._last_counts = counts
        return out
