"""Oscillation: losses or D's output keep swinging in a cycle and never settle.

Rule, per signal (``loss_g``, ``loss_d``, ``d_fake``): remove minibatch noise
with a short rolling median and the slow trend with a long moving average; the
residual must (a) cycle: its autocorrelation over the second half of the run
has a trough, a peak at the period and the peak's repeat at twice the period,
each at least ``min_acf`` in size; (b) persist: the last third keeps at least
``min_persistence`` of the larger earlier swing (a damped cycle is convergence);
(c) matter: the last third's swing is at least ``min_relative_swing`` of the
signal's range there (a ripple on a big drift is not worth a finding).

Mode hopping is a cycle of *which modes* G covers rather than of the losses:
G sits on a few modes, D learns to reject them, G moves on. It is read from
``div/mode_shift`` (the total-variation distance between successive
evaluations' mode histograms; with the Monitor's ``sampler=`` these are one
fixed latent batch, so the shift is G's own movement). Over the evaluations of
the second half (``tail_fraction``), it fires when, in the median, at least
``hop_min_shift`` of G's mass moves to other modes between evaluations while G
covers at most ``hop_max_mode_fraction`` of the modes and at least
``hop_min_hq`` of its samples are near a mode (below that the histogram is a
handful of samples and its shift is noise).

A cycle whose swing is clearly growing (``spiral_growth`` from the first to the
last third and ``spiral_late_growth`` still over the last third) is left to the
divergence detector, which reports it as an outward spiral; the two thresholds
default to the divergence detector's own.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gandiag.detectors.base import Detector, DetectorConfig, Finding, count, fraction, ratio, register_detector
from gandiag.detectors.series import aligned, finite_series, median_spacing, periodicity, rolling_swing
from gandiag.rundir import Run
from gandiag.schema import D_FAKE, DIV_HQ_SHARE, DIV_MODE_SHIFT, DIV_MODES_COVERED, DIV_MODES_TOTAL, LOSS_D, LOSS_G

SIGNALS = (LOSS_G, LOSS_D, D_FAKE)


@dataclass(frozen=True)
class OscillationConfig(DetectorConfig):
    # Fewer points than this cannot show the several cycles (a), (b) and (c) need.
    min_points: int = count(100)
    # A 5-point median removes single-batch spikes but keeps cycles of 10 points and more.
    smooth_window: int = count(5)
    # The trend is a moving average over a fifth of the run: cycles up to ~a tenth of
    # the run stay in the residual, while slower drifts (lr decay, learning) go into the trend.
    trend_fraction: float = fraction(0.2)
    # The cycle is measured on the second half only, so one that has died out does not count.
    tail_fraction: float = fraction(0.5)
    # |autocorrelation| 0.3 at the trough, the period and twice the period: a sine with
    # noise of equal amplitude reaches ~0.6; detrended red noise (AR(0.99), random walks)
    # reached all three together in under 1% of 200 seeded trials.
    min_acf: float = fraction(0.3)
    # Below 4 points a "cycle" is indistinguishable from alternating minibatch noise.
    min_period: int = count(4)
    # The last third keeps at least half the largest earlier swing: not a decaying cycle.
    min_persistence: float = fraction(0.5)
    # A pure sine gives 0.5 here; 0.25 still fires when a drift of twice the swing's
    # amplitude shares the last third with it.
    min_relative_swing: float = fraction(0.25)
    # Where the swing first reaches this share of its final size marks the start.
    onset_fraction: float = fraction(0.5)
    # Same as DivergenceConfig: above both, the cycle is an outward spiral, reported as divergence.
    spiral_growth: float = ratio(1.5)
    spiral_late_growth: float = ratio(1.1)
    # Mode hopping. A quarter of the mass on other modes at each evaluation, in the
    # median: a collapsed G that stays on its modes moves 0.00-0.05 (the zoo's ring8
    # calibration collapse runs), the hopping calibration runs 0.37-0.39. A healthy G spread over
    # the modes moves 0.33-0.47 too (fixed latents through a G that still learns),
    # which is why the coverage test below is needed as well.
    hop_min_shift: float = fraction(0.25)
    # ...while covering at most half the modes at a time, mode_collapse's own share:
    # the hopping calibration runs cover 0.44-0.50 (median), the healthy ones 0.75
    # (ring8) and 0.8-0.9 (digits).
    hop_max_mode_fraction: float = fraction(0.5)
    # ...with at least a tenth of the samples near a mode (as the zoo's collapse truth):
    # below that a histogram is a few dozen samples and its "shift" is sampling noise
    # (ring8-balanced-lr2e-4-s0: shift 1.00 on 8-21% of 1,000 samples).
    hop_min_hq: float = fraction(0.1)
    # At least 6 shifts in the second half: fewer cannot tell a hop from one move
    # (ring8-balanced-lr2e-4-s0 has 3 evaluations with any sample near a mode).
    hop_min_evals: int = count(6)


@register_detector
class Oscillation(Detector):
    kind = "oscillation"
    Config = OscillationConfig
    description = ("Losses or D's output keep swinging in a persistent cycle instead of settling, "
                   "or G keeps hopping between a few modes.")
    advice = (
        "try lower learning rates (especially D's), a two-timescale update (TTUR), "
        "Adam with beta1=0.5 or 0, or a gradient penalty / spectral norm on D"
    )

    def detect(self, run: Run) -> list[Finding]:
        return self._cycles(run) + self._hopping(run)

    def _hopping(self, run: Run) -> list[Finding]:
        c = self.config
        evals = aligned(run, [DIV_MODE_SHIFT, DIV_MODES_COVERED, DIV_MODES_TOTAL, DIV_HQ_SHARE])
        evals = evals[evals[DIV_MODES_TOTAL] > 0]
        # Only the second half counts: an early search over the modes is learning,
        # and a hop the run has left behind is not its state.
        tail = evals.iloc[int(len(evals) * (1 - c.tail_fraction)):]
        if len(tail) < c.hop_min_evals:
            return []
        shift = tail[DIV_MODE_SHIFT].to_numpy()
        share = (tail[DIV_MODES_COVERED] / tail[DIV_MODES_TOTAL]).to_numpy()
        hq = tail[DIV_HQ_SHARE].to_numpy()
        med_shift, med_share, med_hq = float(np.median(shift)), float(np.median(share)), float(np.median(hq))
        if med_shift < c.hop_min_shift or med_share > c.hop_max_mode_fraction or med_hq < c.hop_min_hq:
            return []
        steps = tail.index.to_numpy(dtype=np.int64)
        big = shift >= c.hop_min_shift
        evidence = {
            "metric": DIV_MODE_SHIFT,
            "mode_shift_median": med_shift,
            "min_mode_shift": c.hop_min_shift,
            "mode_fraction_median": med_share,
            "max_mode_fraction": c.hop_max_mode_fraction,
            "modes_total": int(tail[DIV_MODES_TOTAL].max()),
            "hq_share_median": med_hq,
            "min_hq_share": c.hop_min_hq,
            "evaluations": len(tail),
            "hops": int(big.sum()),
            # Every evaluation of the window as step:shift/modes covered, so the
            # finding names where G jumped and how far.
            "shifts": ",".join(f"{s}:{v:.2f}/{int(m)}" for s, v, m in zip(steps, shift, tail[DIV_MODES_COVERED])),
        }
        first = int(steps[int(np.argmax(big))])
        message = (
            f"Mode hopping from step {first}: between evaluations {med_shift:.0%} of G's samples move to other "
            f"modes (median, threshold {c.hop_min_shift:.0%}) while G covers {med_share:.0%} of the "
            f"{evidence['modes_total']} modes at a time, so G and D chase each other round the modes instead "
            f"of G covering them all; {self.advice}"
        )
        return [self.finding("warning", first, int(steps[-1]), evidence, message)]

    def _cycles(self, run: Run) -> list[Finding]:
        c = self.config
        found = []
        for name in SIGNALS:
            steps, values = finite_series(run, name)
            if len(values) < c.min_points:
                continue
            p = periodicity(values, c.smooth_window, c.trend_fraction, c.tail_fraction, c.min_period)
            cycles = not math.isnan(p.period) and min(-p.trough, p.peak, p.repeat) >= c.min_acf
            spiral = p.growth >= c.spiral_growth and p.late_growth >= c.spiral_late_growth
            if not cycles or spiral:
                continue
            if p.persistence < c.min_persistence or p.relative_swing < c.min_relative_swing:
                continue
            found.append((name, steps, p))
        if not found:
            return []

        name, steps, p = max(found, key=lambda item: item[2].peak)
        envelope = rolling_swing(p.residual, max(3, int(round(2 * p.period))))
        onset = next((i for i, v in enumerate(envelope) if v >= c.onset_fraction * p.thirds[2]), 0)
        period_steps = p.period * median_spacing(steps)
        evidence = {
            "metric": name,
            "signals": ",".join(n for n, _, _ in found),
            "period_steps": period_steps,
            "amplitude": p.thirds[2],
            "relative_swing": p.relative_swing,
            "min_relative_swing": c.min_relative_swing,
            "persistence": p.persistence,
            "min_persistence": c.min_persistence,
            "acf_trough": p.trough,
            "acf_peak": p.peak,
            "acf_repeat": p.repeat,
            "min_acf": c.min_acf,
        }
        message = (
            f"{name} oscillates with a period of ~{period_steps:.0f} steps and amplitude {p.thirds[2]:.3g} "
            f"that does not decay (last third keeps {p.persistence:.0%} of the earlier swing), "
            f"so G and D chase each other instead of converging; {self.advice}"
        )
        return [self.finding("warning", int(steps[onset]), int(steps[-1]), evidence, message)]
