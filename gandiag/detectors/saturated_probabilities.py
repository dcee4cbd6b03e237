"""Saturated probabilities: a probability-output D hits exactly 0 or 1 in float32.

Only for ``d_output == "probs"``: a loss written as ``log(D(x))`` then returns
-inf or NaN. With logits the loss is computed from the logit and stays finite,
and D's overconfidence is the discriminator_too_strong finding, so logits and
critics are not reported here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gandiag.detectors.base import Detector, DetectorConfig, Finding, count, fraction, register_detector
from gandiag.detectors.series import finite_series
from gandiag.rundir import Run
from gandiag.schema import D_PROB_SATURATED


@dataclass(frozen=True)
class SaturatedProbabilitiesConfig(DetectorConfig):
    # One step in twenty: isolated saturated batches survive a clamped log, a D that sits at
    # the float32 edge that often will hit an unclamped one.
    min_share: float = fraction(0.05)
    # At least three such steps, so one freak batch is not a finding.
    min_points: int = count(3)


@register_detector
class SaturatedProbabilities(Detector):
    kind = "saturated_probabilities"
    Config = SaturatedProbabilitiesConfig
    description = "D's probabilities reach exactly 0 or 1, where log(D) is -inf."
    advice = (
        "output logits and use BCEWithLogitsLoss (or F.logsigmoid) instead of log(sigmoid(x)), "
        "or at least clamp probabilities away from 0 and 1"
    )

    def detect(self, run: Run) -> list[Finding]:
        c = self.config
        if run.d_output != "probs":
            return []
        steps, saturated = finite_series(run, D_PROB_SATURATED)
        hits = saturated > 0
        if len(saturated) == 0 or hits.sum() < c.min_points:
            return []
        share = float(hits.mean())
        if share < c.min_share:
            return []
        evidence = {
            "metric": D_PROB_SATURATED,
            "share_of_steps": share,
            "min_share": c.min_share,
            "max_saturated_share": float(np.max(saturated)),
        }
        message = (
            f"D's probabilities are exactly 0 or 1 on {share:.0%} of steps (up to "
            f"{evidence['max_saturated_share']:.1%} of a batch), where a hand-written log(D) gives -inf/NaN; "
            f"{self.advice}"
        )
        return [self.finding("warning", int(steps[hits][0]), int(steps[hits][-1]), evidence, message)]
