"""Generator gets no gradient: ``g_has_grad`` is 0 on (almost) every G step.

The usual cause is a generator step that feeds D detached fakes
(``G(z).detach()`` reused from the D step), so ``loss_g.backward()`` never
reaches G's parameters.
"""
from __future__ import annotations

from dataclasses import dataclass


from gandiag.detectors.base import Detector, DetectorConfig, Finding, count, fraction, register_detector
from gandiag.detectors.series import finite_series
from gandiag.rundir import Run
from gandiag.schema import G_HAS_GRAD


@dataclass(frozen=True)
class NoGeneratorGradientConfig(DetectorConfig):
    # 90% of G steps: a detached graph is a code path, so it shows on nearly every step;
    # the margin tolerates a few steps a GradScaler skipped or the monitor missed.
    min_share: float = fraction(0.9)
    # Five recorded G steps before judging: the first iteration of a user loop may be odd.
    min_points: int = count(5)


@register_detector
class GeneratorGetsNoGradient(Detector):
    kind = "generator_gets_no_gradient"
    Config = NoGeneratorGradientConfig
    description = "The generator's parameters receive no gradient in its own step."
    advice = (
        "in the generator step compute fakes = G(z) without .detach() (or regenerate them), "
        "make sure G's parameters require grad, and call generator_step after loss_g.backward()"
    )

    def detect(self, run: Run) -> list[Finding]:
        c = self.config
        steps, has_grad = finite_series(run, G_HAS_GRAD)
        if len(has_grad) < c.min_points:
            return []
        none = has_grad < 0.5
        share = float(none.mean())
        if share < c.min_share:
            return []
        hits = steps[none]
        evidence = {"metric": G_HAS_GRAD, "share_without_grad": share, "min_share": c.min_share, "g_steps": len(steps)}
        message = (
            f"Generator gets no gradient: {G_HAS_GRAD} is 0 on {share:.0%} of G steps, "
            f"usually because the fakes were detached in the generator step; {self.advice}"
        )
        return [self.finding("critical", int(hits[0]), int(hits[-1]), evidence, message)]
