"""Vanishing generator gradient: G's learning signal through D collapses and stays so.

Two rules, each over a sustained window (``min_points`` and ``min_fraction`` of
the recorded points):

- floor: the rolling median of ``logit_grad_g`` stays below ``floor``. For the
  BCE family this is D(G(z)) under the saturating minimax loss and 1 - D(G(z))
  under the non-saturating one, so it lies in [0, 1]; the rule is skipped for a
  critic, and for any series that exceeds ``logit_grad_bound`` (another loss).
- decay: the rolling median of ``grad_norm_g`` sits ``decay_ratio`` times or
  more below its running peak. This one is scale-free and also covers critics.

Windows of the decay rule that overlap a floor window are not reported twice.
Points where D scores reals and fakes alike (smoothed |d_real - d_fake| at most
``converged_gap``, probabilities only) do not count towards a decay window: a
gradient that has shrunk because the game reached its equilibrium (the R1
Dirac-GAN spirals into θ = ψ = 0, where every gradient is 0) is convergence,
not a generator starved by a winning D.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gandiag.detectors.base import (
    Detector,
    DetectorConfig,
    Finding,
    count,
    fraction,
    positive,
    ratio,
    register_detector,
)
from gandiag.detectors.series import finite_series, overlaps, rolling_median, sustained_runs
from gandiag.rundir import Run
from gandiag.schema import D_FAKE, D_REAL, GRAD_NORM_G, LOGIT_GRAD_G


@dataclass(frozen=True)
class VanishingGradientConfig(DetectorConfig):
    # A healthy G sees |dL/dlogit| ~0.3-0.7; below 0.05 D's sigmoid is saturated on the
    # fakes and G gets under a tenth of that signal.
    floor: float = fraction(0.05)
    # BCE-family losses bound |dL/dlogit| by 1; a series above it comes from another
    # loss (least squares, a scaled hinge) where the absolute floor means nothing.
    logit_grad_bound: float = positive(1.0)
    # Two orders of magnitude below the running peak: init transients and lr decay rarely
    # move G's gradient norm that far, a G that no longer learns does.
    decay_ratio: float = ratio(100.0)
    # An 11-point median rides out heavy-tailed single batches; a real collapse lasts far longer.
    smooth_window: int = count(11)
    # 20 points: a shorter dip is noise or a warm-up step.
    min_points: int = count(20)
    # A tenth of the recorded run: G must have lost a real share of its updates.
    min_fraction: float = fraction(0.1)
    # D at chance: mean D(x) and D(G(z)) within 0.01. A starved G faces a D that
    # separates: the zoo's frozen-G and strong-D minimax runs never get below a gap of
    # 0.036; at an equilibrium (the R1 Dirac-GAN) the gap is 0 and so is every gradient.
    converged_gap: float = fraction(0.01)


@register_detector
class VanishingGeneratorGradient(Detector):
    kind = "vanishing_generator_gradient"
    Config = VanishingGradientConfig
    description = "The generator's gradient through D collapses to (almost) nothing for a sustained stretch."
    advice = (
        "switch to the non-saturating generator loss, or weaken D "
        "(lower its learning rate, fewer D steps, label smoothing, instance noise)"
    )

    def detect(self, run: Run) -> list[Finding]:
        found = [] if run.d_output == "critic" else self._floor(run)
        floor_windows = [(f.start_step, f.end_step) for f in found]
        for f in self._decay(run):
            if not any(overlaps((f.start_step, f.end_step), w) for w in floor_windows):
                found.append(f)
        return found

    def _floor(self, run: Run) -> list[Finding]:
        c = self.config
        steps, g = finite_series(run, LOGIT_GRAD_G)
        if len(g) == 0 or g.max() > c.logit_grad_bound:
            return []
        low = rolling_median(g, c.smooth_window) < c.floor
        found = []
        for a, b in sustained_runs(low, c.min_points, c.min_fraction):
            inside = float(np.median(g[a : b + 1]))
            evidence = {"metric": LOGIT_GRAD_G, "median_in_window": inside, "floor": c.floor, "points": b - a + 1}
            was = ""
            if a > 0:
                evidence["median_before"] = float(np.median(g[:a]))
                was = f" (was {evidence['median_before']:.3g})"
            loss = run.meta.get("config", {}).get("loss") if isinstance(run.meta.get("config"), dict) else None
            if isinstance(loss, str):
                evidence["loss"] = loss
            message = (
                f"Generator gradient vanished over steps {steps[a]}-{steps[b]}: median {LOGIT_GRAD_G} "
                f"{inside:.3g} stayed below {c.floor:g}{was}, so D's output is saturated on the fakes "
                f"and G barely learns; {self.advice}"
            )
            found.append(self.finding("warning", int(steps[a]), int(steps[b]), evidence, message))
        return found

    def _at_chance(self, run: Run, steps: np.ndarray) -> np.ndarray:
        """Where D cannot tell reals from fakes (False for critics and where unrecorded)."""
        c = self.config
        if run.d_output == "critic":
            return np.zeros(len(steps), dtype=bool)
        gaps = []
        for name in (D_REAL, D_FAKE):
            s_steps, values = finite_series(run, name)
            if len(values) == 0:
                return np.zeros(len(steps), dtype=bool)
            gaps.append(pd.Series(rolling_median(values, c.smooth_window), index=s_steps).reindex(steps).to_numpy())
        gap = np.abs(gaps[0] - gaps[1])
        return np.isfinite(gap) & (gap <= c.converged_gap)

    def _decay(self, run: Run) -> list[Finding]:
        c = self.config
        steps, norm = finite_series(run, GRAD_NORM_G)
        if len(norm) == 0:
            return []
        smooth = rolling_median(norm, c.smooth_window)
        peak = np.maximum.accumulate(smooth)
        with np.errstate(divide="ignore", invalid="ignore"):
            fall = np.where(smooth > 0, peak / smooth, np.inf)
        # A norm that was zero from the start has no peak to decay from (see generator_gets_no_gradient).
        fall[peak <= 0] = 1.0
        fall[self._at_chance(run, steps)] = 1.0
        found = []
        for a, b in sustained_runs(fall >= c.decay_ratio, c.min_points, c.min_fraction):
            k = int(np.argmax(smooth[: a + 1]))
            inside = float(np.median(norm[a : b + 1]))
            evidence = {
                "metric": GRAD_NORM_G,
                "peak_median": float(smooth[k]),
                "peak_step": int(steps[k]),
                "median_in_window": inside,
                "ratio": float(smooth[k] / inside) if inside > 0 else float("inf"),
                "decay_ratio": c.decay_ratio,
                "points": b - a + 1,
            }
            message = (
                f"Generator gradient vanished over steps {steps[a]}-{steps[b]}: {GRAD_NORM_G} fell to "
                f"{inside:.3g}, {c.decay_ratio:g}x or more below its peak {smooth[k]:.3g} at step {steps[k]}, "
                f"so G has stopped learning; {self.advice}"
            )
            found.append(self.finding("warning", int(steps[a]), int(steps[b]), evidence, message))
        return found
