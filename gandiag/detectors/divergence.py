"""Divergence: the run blew up, or is on its way to.

Any of these makes one finding, which starts at the earliest bad step and runs
to the end of the run:

- the run's status is ``diverged`` (at ``meta["diverged_at"]`` when recorded);
- the monitor flagged ``nonfinite`` on a step;
- a loss or gradient norm is Inf, or NaN in a metric recorded on every row (a
  gap in a metric logged on a cadence is only a step it was not logged on);
  values on a step a GradScaler skipped for that network do not count;
- a gradient norm or |loss| explodes: its rolling median rises a set factor
  above its level in the first part of the run, for several points in a row
  (for a gradient norm that level is the early peak, not the early median: a G
  whose gradient vanished against a saturated D right after the start and then
  recovers is not exploding; the zoo's minimax runs against a strong D do this);
- D's raw logits run away: ``d_out_min``/``d_out_max`` beyond ``max_logit`` in
  magnitude for several points in a row (logits only), which also catches a run
  that blows up inside the early window the explosion test compares against;
- an outward spiral: a loss or ``d_fake`` cycles (as the oscillation detector
  measures it) with a swing that grows from the first to the last third and is
  still growing at the end. The oscillation detector stays silent on such a
  cycle, so a spiral is reported once, here;
- an outward spiral whose period lengthens as it grows (logits and probs): D's
  verdict on the fakes, the logit of the smoothed ``d_fake``, swings from one
  side (beyond ``chirp_hysteresis``) to the other at least
  ``chirp_min_half_cycles`` times, and the largest swing of the last third of
  those half-cycles is ``spiral_growth`` times that of the first third and
  ``spiral_late_growth`` times that of the middle third. The simultaneous
  Dirac-GAN spirals like this: each turn is slower than the last (sign changes
  at steps 12, 52, 101, 171, 303), so the autocorrelation finds no stable period.
"""
from __future__ import annotations

import math
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
from gandiag.detectors.series import (
    aligned,
    finite_series,
    median_spacing,
    periodicity,
    rolling_median,
    rolling_swing,
    step_span,
    sustained_runs,
)
from gandiag.rundir import Run
from gandiag.schema import (
    D_FAKE,
    D_OUT_MAX,
    D_OUT_MIN,
    GRAD_NORM_D,
    GRAD_NORM_G,
    LOSS_D,
    LOSS_G,
    NONFINITE,
    SKIPPED_D,
    SKIPPED_G,
)

# Each watched metric with the skip flag of the network it belongs to.
WATCHED = ((LOSS_G, SKIPPED_G), (GRAD_NORM_G, SKIPPED_G), (LOSS_D, SKIPPED_D), (GRAD_NORM_D, SKIPPED_D))
GRAD_NORMS = (GRAD_NORM_G, GRAD_NORM_D)
LOSSES = (LOSS_G, LOSS_D)
SPIRAL_SIGNALS = (LOSS_G, LOSS_D, D_FAKE)


@dataclass(frozen=True)
class DivergenceConfig(DetectorConfig):
    # Two orders of magnitude: lr warm-up or a sharpening D move a gradient norm a few
    # times over; only a blow-up moves it a hundredfold.
    grad_explode_ratio: float = ratio(100.0)
    # Three orders for |loss|: a healthy critic loss can grow from ~0 to tens, and a
    # non-saturating G loss from 0.7 to ~20 when D wins, without anything blowing up.
    loss_explode_ratio: float = ratio(1000.0)
    # The early level is the median over the first tenth of the recorded points.
    baseline_fraction: float = fraction(0.1)
    # A 5-point rolling median keeps one heavy-tailed batch from looking like a trend.
    smooth_window: int = count(5)
    # Five smoothed points in a row above the factor: one spike is not a trend.
    explode_min_points: int = count(5)
    # Fewer points than this give no early level worth comparing with.
    min_points: int = count(20)
    # float32 rounds sigmoid(17) to exactly 1, so a logit of 1,000 is far past any
    # meaningful confidence: D's weights have run away. The zoo's non-diverged runs
    # peak at |logit| 162, its lr-0.5 runs reach 1e9-1e10.
    max_logit: float = positive(1000.0)
    # The spiral test measures cycles like OscillationConfig; the next six fields mean
    # the same there and share its defaults (see oscillation.py for why).
    spiral_min_points: int = count(100)
    spiral_smooth_window: int = count(5)
    trend_fraction: float = fraction(0.2)
    tail_fraction: float = fraction(0.5)
    min_acf: float = fraction(0.3)
    min_period: int = count(4)
    # A swing 1.5x larger in the last third than in the first is steady outward growth,
    # well beyond the +-20% that noise puts on a constant swing...
    spiral_growth: float = ratio(1.5)
    # ...and still 1.1x over the last third: a cycle that switched on mid-run and then
    # held a steady size is an oscillation, not a spiral.
    spiral_late_growth: float = ratio(1.1)
    # A half-cycle of D's verdict counts once the fakes' logit passes +-0.5 (D(G(z))
    # beyond 0.38-0.62): smaller wobbles around 0.5 are minibatch noise.
    chirp_hysteresis: float = positive(0.5)
    # Four full turns: fewer cannot tell growth from a single large excursion. The
    # zoo's trained runs swing through at most 5 half-cycles, the Dirac-GAN 11-29.
    chirp_min_half_cycles: int = count(8)


@register_detector
class Divergence(Detector):
    kind = "divergence"
    Config = DivergenceConfig
    description = "The run blew up: non-finite values, exploding losses or gradients, or an outward spiral."
    advice = (
        "lower the learning rates, clip gradients, use a numerically stable loss (BCE with logits), "
        "or stabilise D with a gradient penalty or spectral norm"
    )

    def detect(self, run: Run) -> list[Finding]:
        span = step_span(run)
        events = _nonfinite_events(run)
        if run.status == "diverged":
            at = run.meta.get("diverged_at")
            at = int(at) if isinstance(at, (int, float)) and math.isfinite(at) else None
            if at is None:
                at = min((e[0] for e in events), default=span[1] if span else 0)
            events.append((at, "status", {"status": "diverged"}, f"the run was marked diverged at step {at}"))
        events += self._explosions(run)
        events += self._runaway_logits(run)
        events += self._spirals(run)
        if not any(e[1] == "spiral" for e in events):
            events += self._chirps(run)
        if not events:
            return []

        events.sort(key=lambda e: e[0])
        start, reason, evidence, what = events[0]
        end = max(start, span[1] if span else start)
        evidence = {"reason": reason, "reasons": ",".join(dict.fromkeys(e[1] for e in events)), **evidence}
        message = f"Training diverged: {what}; {self.advice}"
        return [self.finding("critical", start, end, evidence, message)]

    def _explosions(self, run: Run) -> list[tuple]:
        c = self.config
        events = []
        for name in GRAD_NORMS + LOSSES:
            steps, values = finite_series(run, name)
            if len(values) < c.min_points:
                continue
            is_loss = name in LOSSES
            smooth = rolling_median(np.abs(values), c.smooth_window)
            early = slice(0, max(c.smooth_window, int(round(c.baseline_fraction * len(values)))))
            baseline = float(np.median(smooth[early])) if is_loss else float(np.max(smooth[early]))
            if is_loss:
                # A loss that starts near 0 would make any later size look explosive;
                # its early noise sets the floor of the baseline.
                q75, q25 = np.percentile(values[early], [75, 25])
                baseline = max(baseline, float(q75 - q25))
            if baseline <= 0:
                continue
            threshold = c.loss_explode_ratio if is_loss else c.grad_explode_ratio
            grown = smooth / baseline
            runs = sustained_runs(grown >= threshold, c.explode_min_points)
            if not runs:
                continue
            a, b = runs[0]
            evidence = {
                "metric": name,
                "baseline": baseline,
                "value": float(np.median(smooth[a : b + 1])),
                "ratio": float(np.median(grown[a : b + 1])),
                "threshold_ratio": threshold,
            }
            label = f"|{name}|" if is_loss else name
            what = (
                f"{label} rose {evidence['ratio']:.3g}x above its early level from step {int(steps[a])} "
                f"(threshold {threshold:g}x)"
            )
            events.append((int(steps[a]), "exploding", evidence, what))
        return events

    def _runaway_logits(self, run: Run) -> list[tuple]:
        c = self.config
        if run.d_output != "logits":
            return []
        out = aligned(run, [D_OUT_MIN, D_OUT_MAX])
        if out.empty:
            return []
        size = np.maximum(out[D_OUT_MIN].abs().to_numpy(), out[D_OUT_MAX].abs().to_numpy())
        runs = sustained_runs(size >= c.max_logit, c.explode_min_points)
        if not runs:
            return []
        a, b = runs[0]
        at = int(out.index[a])
        evidence = {"metric": "d_out_max", "value": float(np.median(size[a : b + 1])), "max_logit": c.max_logit}
        what = (f"D's logits reached |{evidence['value']:.3g}| from step {at} (threshold {c.max_logit:g}), "
                f"so D's weights have run away")
        return [(at, "runaway_logits", evidence, what)]

    def _chirps(self, run: Run) -> list[tuple]:
        c = self.config
        if run.d_output == "critic":
            return []
        steps, d_fake = finite_series(run, D_FAKE)
        if len(d_fake) < c.spiral_min_points:
            return []
        p = np.clip(rolling_median(d_fake, c.spiral_smooth_window), 1e-6, 1 - 1e-6)
        verdict = np.log(p / (1 - p))
        swings, starts = _half_cycles(verdict, c.chirp_hysteresis)
        if len(swings) < c.chirp_min_half_cycles:
            return []
        first, middle, last = (part.max() for part in np.array_split(swings, 3))
        growth, late = last / first, last / middle
        if growth < c.spiral_growth or late < c.spiral_late_growth:
            return []
        at = int(steps[starts[int(np.argmax(swings >= c.spiral_growth * first))]])
        evidence = {
            "metric": D_FAKE,
            "half_cycles": int(len(swings)),
            "growth": float(growth),
            "spiral_growth": c.spiral_growth,
            "late_growth": float(late),
            "spiral_late_growth": c.spiral_late_growth,
        }
        what = (
            f"D's verdict on the fakes flipped {len(swings)} times with swings (in logits) that grew {growth:.2g}x "
            f"(threshold {c.spiral_growth:g}x) while each turn took longer, an outward spiral, as simultaneous "
            f"gradient steps produce on the Dirac-GAN"
        )
        return [(at, "spiral", evidence, what)]

    def _spirals(self, run: Run) -> list[tuple]:
        c = self.config
        events = []
        for name in SPIRAL_SIGNALS:
            steps, values = finite_series(run, name)
            if len(values) < c.spiral_min_points:
                continue
            p = periodicity(values, c.spiral_smooth_window, c.trend_fraction, c.tail_fraction, c.min_period)
            if math.isnan(p.period) or min(-p.trough, p.peak, p.repeat) < c.min_acf:
                continue
            if p.growth < c.spiral_growth or p.late_growth < c.spiral_late_growth:
                continue
            envelope = rolling_swing(p.residual, max(3, int(round(2 * p.period))))
            grown = np.flatnonzero(envelope >= c.spiral_growth * p.thirds[0])
            at = int(steps[grown[0]]) if len(grown) else int(steps[0])
            period_steps = p.period * median_spacing(steps)
            evidence = {
                "metric": name,
                "period_steps": period_steps,
                "growth": p.growth,
                "spiral_growth": c.spiral_growth,
                "late_growth": p.late_growth,
                "spiral_late_growth": c.spiral_late_growth,
                "acf_peak": p.peak,
            }
            what = (
                f"{name} cycles every ~{period_steps:.0f} steps with a swing that grew {p.growth:.2g}x "
                f"(threshold {c.spiral_growth:g}x), an outward spiral, as simultaneous "
                f"gradient steps produce on a bilinear game"
            )
            events.append((at, "spiral", evidence, what))
        return events


def _half_cycles(x: np.ndarray, hysteresis: float) -> tuple[np.ndarray, list[int]]:
    """Largest |x| of each stretch on one side of 0, a side counting once |x| > hysteresis,
    and the position where each stretch began."""
    swings, starts, side, peak = [], [], 0, 0.0
    for i, v in enumerate(x):
        now = 1 if v > hysteresis else (-1 if v < -hysteresis else 0)
        if now and now != side:
            if side:
                swings.append(peak)
            side, peak = now, abs(v)
            starts.append(i)
        elif side and np.sign(v) == side:
            peak = max(peak, abs(v))
    if side:
        swings.append(peak)
    return np.asarray(swings, dtype=float), starts


def _nonfinite_events(run: Run) -> list[tuple]:
    m = run.metrics
    steps = m.index.to_numpy(dtype=np.int64)
    events = []
    if NONFINITE in m.columns:
        flagged = np.flatnonzero(pd.to_numeric(m[NONFINITE], errors="coerce").fillna(0).to_numpy() > 0)
        if len(flagged):
            at = int(steps[flagged[0]])
            evidence = {"metric": NONFINITE, "step": at, "flagged_steps": int(len(flagged))}
            what = f"a loss or gradient was NaN/Inf on an unskipped step from step {at}"
            events.append((at, "nonfinite", evidence, what))
    # The Monitor writes `nonfinite` on every row and flags a NaN loss or gradient
    # there, so in its runs a NaN cell is a value not recorded on that row (an
    # iteration without a G step or without a D step), never a blow-up. Only runs
    # written without that flag have to guess NaN's meaning from the cadence.
    guess_nan = NONFINITE not in m.columns
    for name, skip in WATCHED:
        if name not in m.columns:
            continue
        col = pd.to_numeric(m[name], errors="coerce").to_numpy(dtype=float)
        bad = np.isinf(col)
        recorded = np.flatnonzero(~np.isnan(col))
        # A NaN means a blow-up only in a metric present on every row; elsewhere it is a cadence gap.
        if guess_nan and len(recorded) >= 2 and np.median(np.diff(recorded)) == 1:
            after_first = np.arange(len(col)) > recorded[0]
            bad |= np.isnan(col) & after_first
        if skip in m.columns:
            bad &= ~(pd.to_numeric(m[skip], errors="coerce").fillna(0).to_numpy() > 0)
        hits = np.flatnonzero(bad)
        if len(hits):
            at = int(steps[hits[0]])
            value = "nan" if np.isnan(col[hits[0]]) else ("inf" if col[hits[0]] > 0 else "-inf")
            evidence = {"metric": name, "step": at, "value": value}
            events.append((at, "nonfinite", evidence, f"{name} became {value} at step {at}"))
    return events
