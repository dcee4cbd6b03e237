"""Discriminator too strong or too weak, both read off D's separation of real and fake.

The shared measure is the rolling median of ``d_acc`` next to that of ``d_real``
and ``d_fake`` (probabilities for "logits" and "probs" outputs, raw scores for a
critic, where only the accuracy is used).

- too strong: accuracy at least ``min_accuracy`` and, for probabilities, mean
  D(G(z)) at most ``max_fake_prob``, over a sustained window.
- too weak: after warm-up, accuracy within ``chance_tolerance`` of 0.5 and, for
  probabilities, |D(x) - D(G(z))| at most ``max_gap`` (or, worse, D rating the
  fakes more real than the reals by over ``max_gap`` at no better than chance
  accuracy: a D too slow to follow G), over a sustained window, while the
  samples are bad. A healthy converged GAN sits at chance too, so the
  samples decide: with ``div/hq_share`` or ``div/precision`` recorded, one of them
  must be low in the window (warning). Without either, the rule falls back to a
  D that was at chance on nearly the whole run from the start, which means it
  never separated even an untrained G's samples (info: weaker evidence).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gandiag.detectors.base import Detector, DetectorConfig, Finding, count, fraction, register_detector
from gandiag.detectors.series import finite_series, rolling_median, sustained_runs, warmup_end
from gandiag.rundir import Run
from gandiag.schema import D_ACC, D_FAKE, D_REAL, DIV_HQ_SHARE, DIV_PRECISION

QUALITY = (DIV_HQ_SHARE, DIV_PRECISION)


def separation(run: Run, smooth_window: int) -> pd.DataFrame:
    """Smoothed ``d_acc``, ``d_real`` and ``d_fake`` on the steps with a finite ``d_acc``.

    ``d_real``/``d_fake`` are NaN where not recorded, and dropped for a critic.
    """
    steps, acc = finite_series(run, D_ACC)
    df = pd.DataFrame({D_ACC: rolling_median(acc, smooth_window)}, index=steps)
    if run.d_output != "critic":
        for name in (D_REAL, D_FAKE):
            s_steps, values = finite_series(run, name)
            if len(values):
                smooth = pd.Series(rolling_median(values, smooth_window), index=s_steps)
                df[name] = smooth.reindex(steps).to_numpy()
    return df


@dataclass(frozen=True)
class TooStrongConfig(DetectorConfig):
    # 99%: D separates nearly every sample; at 90-95% a D still passes useful gradient.
    min_accuracy: float = fraction(0.99)
    # Mean D(G(z)) at 2% puts the fakes' logits near -4, deep in the sigmoid's flat tail.
    max_fake_prob: float = fraction(0.02)
    # A 5-point median keeps one easy batch from breaking (or making) a window.
    smooth_window: int = count(5)
    # 20 points and a fifth of the run: D often wins briefly early on, and that is fine.
    min_points: int = count(20)
    min_fraction: float = fraction(0.2)


@register_detector
class DiscriminatorTooStrong(Detector):
    kind = "discriminator_too_strong"
    Config = TooStrongConfig
    description = "D separates real from fake almost perfectly for a sustained stretch."
    advice = (
        "weaken D (lower its learning rate, fewer D steps, dropout, label smoothing, instance noise) "
        "or strengthen G; under the minimax loss switch to the non-saturating one"
    )

    def detect(self, run: Run) -> list[Finding]:
        c = self.config
        df = separation(run, c.smooth_window)
        if df.empty:
            return []
        strong = df[D_ACC].to_numpy() >= c.min_accuracy
        if D_FAKE in df:
            fake = df[D_FAKE].to_numpy()
            strong &= np.isnan(fake) | (fake <= c.max_fake_prob)
        steps = df.index.to_numpy(dtype=np.int64)
        found = []
        for a, b in sustained_runs(strong, c.min_points, c.min_fraction):
            window = df.iloc[a : b + 1]
            evidence = {"d_acc_median": float(window[D_ACC].median()), "min_accuracy": c.min_accuracy}
            detail = f"median {D_ACC} {evidence['d_acc_median']:.3f} (threshold {c.min_accuracy:g})"
            if D_FAKE in window and window[D_FAKE].notna().any():
                evidence["d_fake_median"] = float(window[D_FAKE].median())
                evidence["max_fake_prob"] = c.max_fake_prob
                detail += f", median {D_FAKE} {evidence['d_fake_median']:.3g} (threshold {c.max_fake_prob:g})"
            message = (
                f"Discriminator too strong over steps {steps[a]}-{steps[b]}: {detail}, so G's gradient "
                f"through D is starved; {self.advice}"
            )
            found.append(self.finding("warning", int(steps[a]), int(steps[b]), evidence, message))
        return found


@dataclass(frozen=True)
class TooWeakConfig(DetectorConfig):
    # Within 0.05 of 0.5: a coin flip, given the batch-to-batch noise of the accuracy.
    chance_tolerance: float = fraction(0.05)
    # D(x) and D(G(z)) within 0.05 of each other: reals and fakes get the same score.
    max_gap: float = fraction(0.05)
    # A healthy G on the toy mixtures puts 80-90% of samples near a mode; under half
    # means most samples are off the data.
    max_hq_share: float = fraction(0.5)
    # Likewise for precision (share of samples on the real manifold).
    max_precision: float = fraction(0.5)
    # Both nets are near chance at initialisation; the first fifth of the run is warm-up.
    warmup_fraction: float = fraction(0.2)
    smooth_window: int = count(5)
    # A critic's accuracy uses a threshold taken from the same batch (the midpoint of
    # the mean scores), which adds noise: on ring8 WGAN runs at chance its batch-to-batch
    # std was 0.05 against 0.03 for a fixed 0.5 threshold, and a 5-point median left a
    # quarter of the points outside the tolerance. 25 points kept 98% inside.
    critic_smooth_window: int = count(25)
    # 20 points and a fifth of the run: a brief balanced spell is normal.
    min_points: int = count(20)
    min_fraction: float = fraction(0.2)
    # Fallback without quality metrics: at chance on 90% of the run, and on at least 200
    # points, since a working D separates an untrained G's samples well before that.
    never_learned_fraction: float = fraction(0.9)
    never_learned_points: int = count(200)


@register_detector
class DiscriminatorTooWeak(Detector):
    kind = "discriminator_too_weak"
    Config = TooWeakConfig
    description = "D cannot tell real from fake while the generator's samples are still bad."
    advice = (
        "strengthen D (higher learning rate, more D steps, more capacity) "
        "and check that D actually receives real and fake batches with the right labels"
    )

    def detect(self, run: Run) -> list[Finding]:
        c = self.config
        df = separation(run, c.critic_smooth_window if run.d_output == "critic" else c.smooth_window)
        if df.empty:
            return []
        steps = df.index.to_numpy(dtype=np.int64)
        acc = df[D_ACC].to_numpy()
        chance = np.abs(acc - 0.5) <= c.chance_tolerance
        if D_REAL in df and D_FAKE in df:
            gap = df[D_REAL].to_numpy() - df[D_FAKE].to_numpy()
            # Worse than chance counts too: a D that rates the fakes clearly *more* real
            # than the reals (G has run past a D too slow to follow). The gap's sign is
            # what says so: an accuracy of 0 from ties (every output exactly 0.5) is not that.
            inverted = (acc <= 0.5 + c.chance_tolerance) & (gap < -c.max_gap)
            chance = (chance & (np.isnan(gap) | (np.abs(gap) <= c.max_gap))) | inverted
        quality = [q for q in QUALITY if len(finite_series(run, q)[1])]
        if quality:
            return self._bad_samples(run, df, steps, chance & (steps >= warmup_end(run, c.warmup_fraction)), quality)
        return self._never_learned(df, steps, chance)

    def _evidence(self, window: pd.DataFrame) -> dict:
        evidence = {"d_acc_median": float(window[D_ACC].median()), "chance_tolerance": self.config.chance_tolerance}
        if D_REAL in window and D_FAKE in window:
            gap = (window[D_REAL] - window[D_FAKE]).abs()
            if gap.notna().any():
                evidence["real_fake_gap_median"] = float(gap.median())
                evidence["max_gap"] = self.config.max_gap
        return evidence

    def _bad_samples(self, run, df, steps, chance, quality) -> list[Finding]:
        c = self.config
        limits = {DIV_HQ_SHARE: c.max_hq_share, DIV_PRECISION: c.max_precision}
        found = []
        for a, b in sustained_runs(chance, c.min_points, c.min_fraction):
            start, end = int(steps[a]), int(steps[b])
            bad = []
            evidence = self._evidence(df.iloc[a : b + 1])
            for name in quality:
                q_steps, values = finite_series(run, name)
                inside = values[(q_steps >= start) & (q_steps <= end)]
                if len(inside) == 0:
                    inside = values[q_steps <= end][-1:]  # the latest evaluation before the window
                if len(inside) == 0:
                    continue
                value = float(np.median(inside))
                evidence[f"{name}_median"] = value
                evidence[f"{name}_max"] = limits[name]
                if value <= limits[name]:
                    bad.append(f"{name} {value:.3g} (threshold {limits[name]:g})")
            if not bad:
                continue
            message = (
                f"Discriminator too weak over steps {start}-{end}: {D_ACC} ~{evidence['d_acc_median']:.2f} "
                f"is no better than chance while samples are poor ({', '.join(bad)}), so G gets no useful feedback; "
                f"{self.advice}"
            )
            found.append(self.finding("warning", start, end, evidence, message))
        return found

    def _never_learned(self, df, steps, chance) -> list[Finding]:
        c = self.config
        found = []
        for a, b in sustained_runs(chance, c.never_learned_points, c.never_learned_fraction):
            start, end = int(steps[a]), int(steps[b])
            evidence = self._evidence(df.iloc[a : b + 1])
            evidence["share_at_chance"] = (b - a + 1) / len(steps)
            evidence["never_learned_fraction"] = c.never_learned_fraction
            message = (
                f"Discriminator too weak: {D_ACC} ~{evidence['d_acc_median']:.2f} stayed at chance on "
                f"{evidence['share_at_chance']:.0%} of the run from step {start}, so D never learned to "
                f"separate even early samples (no quality metric recorded to confirm); {self.advice}"
            )
            found.append(self.finding("info", start, end, evidence, message))
        return found
