"""Mode collapse: after warm-up, G covers too few of the data's modes.

With mode metrics (``div/modes_covered`` and ``div/modes_total``), fire when the
covered share is at most ``max_mode_fraction`` on ``min_evals`` evaluations in a
row. Without them, fire when ``div/diversity_ratio`` or ``div/recall`` is below
its floor on ``min_evals`` evaluations in a row. Evaluations before
``warmup_fraction`` of the run do not count: modes appear one by one early on,
and few modes then means "not yet", not "lost". Only a collapse that lasts to
the latest evaluation is reported: GANs often cover few modes for a while and
then spread out (the zoo's healthy digit runs sit on 2-5 of 10 classes until
~60% of the run and end on 9), and a stretch the run has recovered from is not
its state; on a run still being written the latest evaluation is "now".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gandiag.detectors.base import Detector, DetectorConfig, Finding, count, fraction, register_detector
from gandiag.detectors.series import aligned, sustained_runs, warmup_end
from gandiag.rundir import Run
from gandiag.schema import DIV_MODES_COVERED, DIV_MODES_TOTAL, DIV_RATIO, DIV_RECALL


@dataclass(frozen=True)
class ModeCollapseConfig(DetectorConfig):
    # Half the modes lost is already a failed run on the mode-labelled mixtures; 0.25
    # would miss the common partial collapse onto 3 of 8 modes.
    max_mode_fraction: float = fraction(0.5)
    # Generated samples spreading less than half as widely as real ones is collapse,
    # not the mild under-dispersion (0.8-1.0) of a healthy, slightly sharp G.
    diversity_ratio_floor: float = fraction(0.5)
    # Recall (Kynkaanniemi et al., 2019) of a G on one mode of eight is ~0.125;
    # healthy runs on toy data sit above 0.5.
    recall_floor: float = fraction(0.3)
    # Few modes hit precisely while the fakes still reach most of the real data
    # (recall this high) is low precision, not collapse: a G spread round the whole
    # ring but not yet sharp. A G on half of the modes has recall near 0.5.
    spread_recall: float = fraction(0.7)
    # Two evaluations in a row: one bad evaluation can be the metric's own sampling noise.
    min_evals: int = count(2)
    # The first fifth of the run is warm-up.
    warmup_fraction: float = fraction(0.2)


@register_detector
class ModeCollapse(Detector):
    kind = "mode_collapse"
    Config = ModeCollapseConfig
    description = "After warm-up the generator covers only a few of the data's modes."
    advice = (
        "try minibatch discrimination or a minibatch-stddev layer, unrolled or more D steps, "
        "a lower G learning rate, or a loss with better coverage (WGAN-GP, hinge)"
    )

    def detect(self, run: Run) -> list[Finding]:
        warm = warmup_end(run, self.config.warmup_fraction)
        modes = aligned(run, [DIV_MODES_COVERED, DIV_MODES_TOTAL])
        modes = modes[modes[DIV_MODES_TOTAL] > 0]
        if len(modes):
            return self._modes(modes, warm, run.series(DIV_RECALL))
        return self._spread(run, warm)

    def _modes(self, modes, warm: float, recall) -> list[Finding]:
        c = self.config
        steps = modes.index.to_numpy(dtype=np.int64)
        covered = modes[DIV_MODES_COVERED].to_numpy()
        total = modes[DIV_MODES_TOTAL].to_numpy()
        low = (covered / total <= c.max_mode_fraction) & (steps >= warm)
        if len(recall):
            r = recall.reindex(modes.index).to_numpy(dtype=float)
            low &= ~(r >= c.spread_recall)  # NaN recall (not measured) does not clear it
        found = []
        for a, b in _ongoing(sustained_runs(low, c.min_evals), len(low)):
            evidence = {
                "modes_total": int(np.max(total[a : b + 1])),
                "modes_covered_in_window": int(np.min(covered[a : b + 1])),
                "max_mode_fraction": c.max_mode_fraction,
                "evaluations": b - a + 1,
            }
            before = ""
            if a > 0:
                evidence["modes_covered_before"] = int(np.max(covered[:a]))
                if evidence["modes_covered_before"] > evidence["modes_covered_in_window"]:
                    before = f", down from {evidence['modes_covered_before']}"
            message = (
                f"Mode collapse from step {steps[a]}: G covers {evidence['modes_covered_in_window']} of "
                f"{evidence['modes_total']} modes{before} (threshold {c.max_mode_fraction:.0%}), "
                f"so it has settled on a few outputs that fool D; {self.advice}"
            )
            found.append(self.finding("warning", int(steps[a]), int(steps[b]), evidence, message))
        return found

    def _spread(self, run: Run, warm: float) -> list[Finding]:
        c = self.config
        floors = {name: floor for name, floor in ((DIV_RATIO, c.diversity_ratio_floor), (DIV_RECALL, c.recall_floor))
                  if name in run.metrics.columns}
        if not floors:
            return []
        evals = run.metrics[list(floors)].astype(float)
        evals = evals[np.isfinite(evals.to_numpy()).any(axis=1)]
        steps = evals.index.to_numpy(dtype=np.int64)
        low = np.zeros(len(evals), dtype=bool)
        for name, floor in floors.items():
            low |= (evals[name] < floor).to_numpy()
        low &= steps >= warm
        found = []
        for a, b in _ongoing(sustained_runs(low, c.min_evals), len(low)):
            window = evals.iloc[a : b + 1]
            evidence = {"evaluations": b - a + 1}
            parts = []
            for name, floor in floors.items():
                if window[name].notna().any():
                    evidence[f"{name}_in_window"] = float(window[name].median())
                    evidence[f"{name}_floor"] = floor
                    parts.append(f"{name} {evidence[f'{name}_in_window']:.3g} (floor {floor:g})")
            message = (
                f"Mode collapse from step {steps[a]}: {', '.join(parts)}, so G's samples cover "
                f"much less of the data than they should; {self.advice}"
            )
            found.append(self.finding("warning", int(steps[a]), int(steps[b]), evidence, message))
        return found


def _ongoing(windows: list[tuple[int, int]], n: int) -> list[tuple[int, int]]:
    """The window that reaches the latest evaluation, if any."""
    return [(a, b) for a, b in windows if b == n - 1]
