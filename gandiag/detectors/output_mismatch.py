"""Output mismatch: D's raw outputs do not fit the declared ``d_output``.

- declared "probs": any recorded ``d_out_min``/``d_out_max`` outside [0, 1]
  (beyond float rounding): BCE on it is undefined. Critical.
- declared "logits" or "probs": every output of a sustained window lies in
  [sigmoid(0), sigmoid(1)] = [0.5, 0.7311]: the sigmoid was applied to a
  probability, i.e. twice. Warning.
- declared "logits": every output of a sustained window lies in [0, 1]: D ends
  in a sigmoid, and the loss applies another. Warning. A healthy logit D's
  batch minimum and maximum straddle 0 as soon as it separates anything, so
  requiring half the run keeps early small outputs from firing. Steps whose
  outputs all sit within ``min_output`` of 0 say nothing either way (a logit D
  at chance, as the converged Dirac-GAN scores every input exactly 0, looks
  like a sigmoid D that rejects everything): they neither break a window nor
  count towards it, and at least ``min_informative_share`` of the window's
  steps must be informative ones.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gandiag.detectors.base import Detector, DetectorConfig, Finding, count, fraction, positive, register_detector
from gandiag.detectors.series import aligned, sustained_runs
from gandiag.rundir import Run
from gandiag.schema import D_OUT_MAX, D_OUT_MIN

SIGMOID_0 = 0.5
SIGMOID_1 = 1 / (1 + math.exp(-1))


@dataclass(frozen=True)
class OutputMismatchConfig(DetectorConfig):
    # Float32 sigmoid outputs never leave [0, 1]; the margin absorbs rounding in the
    # monitor's min/max, nothing more.
    tolerance: float = positive(1e-6)
    # One step with a "probability" outside [0, 1] is already a bug.
    probs_min_points: int = count(1)
    # Logits that look like probabilities must do so for 50 points and half the run:
    # an early logit D can sit in a narrow positive band for a while.
    window_min_points: int = count(50)
    window_min_fraction: float = fraction(0.5)
    # A sigmoid's outputs at chance are ~0.5; below 0.05 at the top the outputs are
    # logits near 0 (a D at chance), not probabilities.
    min_output: float = positive(0.05)
    # ...such steps may fill at most half a window: a D mostly at 0 is a logit D at chance.
    min_informative_share: float = fraction(0.5)


@register_detector
class OutputMismatch(Detector):
    kind = "output_mismatch"
    Config = OutputMismatchConfig
    description = "D's raw outputs do not fit the declared d_output (logits, probs)."
    advice = (
        "prefer a D without a final sigmoid, declared d_output='logits' and trained with BCEWithLogitsLoss; "
        "declare 'probs' only when D ends in exactly one sigmoid"
    )

    def detect(self, run: Run) -> list[Finding]:
        if run.d_output not in ("logits", "probs"):
            return []
        out = aligned(run, [D_OUT_MIN, D_OUT_MAX])
        if out.empty:
            return []
        c = self.config
        steps = out.index.to_numpy(dtype=np.int64)
        lo, hi = out[D_OUT_MIN].to_numpy(), out[D_OUT_MAX].to_numpy()
        if run.d_output == "probs":
            outside = (lo < -c.tolerance) | (hi > 1 + c.tolerance)
            if outside.sum() >= c.probs_min_points:
                hits = steps[outside]
                evidence = {
                    "d_output": "probs",
                    "d_out_min": float(lo.min()),
                    "d_out_max": float(hi.max()),
                    "steps_outside": int(outside.sum()),
                }
                message = (
                    f"D is declared to output probabilities but its outputs reach [{lo.min():.3g}, {hi.max():.3g}], "
                    f"outside [0, 1], so it is missing its final sigmoid; {self.advice}"
                )
                return [self.finding("critical", int(hits[0]), int(hits[-1]), evidence, message)]

        twice = (lo >= SIGMOID_0 - c.tolerance) & (hi <= SIGMOID_1 + c.tolerance)
        found = self._windows(run.d_output, steps, lo, hi, twice, "sigmoid applied twice")
        if run.d_output == "logits" and not found:
            unit = (lo >= -c.tolerance) & (hi <= 1 + c.tolerance)
            # A sigmoid D that rejects every sample (all outputs near 0) fits both readings.
            informative = unit & (hi >= c.min_output)
            found = self._windows(run.d_output, steps, lo, hi, unit, "probabilities declared as logits", informative)
        return found

    def _windows(self, declared, steps, lo, hi, mask, what, informative=None) -> list[Finding]:
        c = self.config
        found = []
        for a, b in sustained_runs(mask, c.window_min_points, c.window_min_fraction):
            if informative is not None:
                n_informative = int(informative[a : b + 1].sum())
                if n_informative < max(c.window_min_points, c.min_informative_share * (b - a + 1)):
                    continue
            evidence = {
                "d_output": declared,
                "pattern": what,
                "d_out_min": float(lo[a : b + 1].min()),
                "d_out_max": float(hi[a : b + 1].max()),
                "points": b - a + 1,
            }
            if what == "sigmoid applied twice":
                cause = (
                    f"all D outputs lie in [{evidence['d_out_min']:.3g}, {evidence['d_out_max']:.3g}] within "
                    f"[sigmoid(0), sigmoid(1)] = [0.5, {SIGMOID_1:.4f}], so a sigmoid was applied to a probability"
                )
            else:
                cause = (
                    f"all D outputs lie in [{evidence['d_out_min']:.3g}, {evidence['d_out_max']:.3g}] within [0, 1] "
                    f"although d_output is 'logits', so D likely ends in a sigmoid and the loss adds another"
                )
            message = f"Output mismatch over steps {steps[a]}-{steps[b]}: {cause}; {self.advice}"
            found.append(self.finding("warning", int(steps[a]), int(steps[b]), evidence, message))
        return found
