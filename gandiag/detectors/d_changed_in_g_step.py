"""D changed in the generator step: ``d_moved_in_g_step`` is 1 on many G steps.

D's weights should only move in D steps. When they change in G's step, G's
optimizer was built over D's parameters too (``Adam(list(G.parameters()) +
list(D.parameters()))`` or ``Adam(model.parameters())`` over a wrapper), so
every G step also trains D to help the generator.
"""
from __future__ import annotations

from dataclasses import dataclass

from gandiag.detectors.base import Detector, DetectorConfig, Finding, count, fraction, register_detector
from gandiag.detectors.series import finite_series
from gandiag.rundir import Run
from gandiag.schema import D_MOVED_IN_G_STEP


@dataclass(frozen=True)
class DChangedInGStepConfig(DetectorConfig):
    # A shared optimizer moves D on every G step that follows a backward pass through D;
    # half the recorded G steps leaves room for steps where D's gradient was zero or skipped.
    min_share: float = fraction(0.5)
    # Three recorded steps: one odd step (a checkpoint reload) is not a pattern.
    min_points: int = count(3)


@register_detector
class DiscriminatorChangedInGeneratorStep(Detector):
    kind = "discriminator_changed_in_generator_step"
    Config = DChangedInGStepConfig
    description = "D's weights change during the generator's update step."
    advice = (
        "give G its own optimizer over G.parameters() only, and call D's optimizer "
        "step/zero_grad only in the D step"
    )

    def detect(self, run: Run) -> list[Finding]:
        c = self.config
        steps, moved = finite_series(run, D_MOVED_IN_G_STEP)
        hits = steps[moved >= 0.5]
        if len(moved) == 0 or len(hits) < c.min_points:
            return []
        share = len(hits) / len(moved)
        if share < c.min_share:
            return []
        evidence = {
            "metric": D_MOVED_IN_G_STEP,
            "share_of_g_steps": share,
            "min_share": c.min_share,
            "steps": len(hits),
        }
        message = (
            f"D's weights changed in {share:.0%} of generator steps, so G's optimizer also holds "
            f"D's parameters; {self.advice}"
        )
        return [self.finding("critical", int(hits[0]), int(hits[-1]), evidence, message)]
