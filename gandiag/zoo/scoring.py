"""Scoring findings against known truth: confusion matrices, precision, recall, delays.

Pure functions over :class:`Outcome` records; nothing here runs a GAN or a
detector. For one finding kind K, a scenario is a positive when K is in its true
labels and a negative otherwise, unless K is one of its "don't care" kinds (a
natural side effect of its pathology), in which case it is left out of K's
matrix. A scenario is flagged for K when any finding of kind K was reported.

Example:
    >>> o = Outcome("a", "calibration", frozenset({"mode_collapse"}), frozenset(), {"mode_collapse": 300},
    ...             {"mode_collapse": 450})
    >>> confusion([o], "mode_collapse").tp, detection_delays([o], "mode_collapse")
    (1, [150])
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence


@dataclass(frozen=True)
class Outcome:
    """One scenario run, next to its truth.

    Attributes:
        scenario: the scenario's name.
        split: ``"calibration"`` or ``"heldout"``.
        truth: finding kinds that are truly present.
        dont_care: kinds left out of scoring for this run.
        onset: kind -> step at which the true pathology began (absent: unknown).
        found: kind -> first ``start_step`` among the findings of that kind.
    """

    scenario: str
    split: str
    truth: frozenset
    dont_care: frozenset
    onset: Mapping[str, int]
    found: Mapping[str, int]

    def __post_init__(self):
        overlap = set(self.truth) & set(self.dont_care)
        if overlap:
            raise ValueError(f"Expected truth and dont_care to be disjoint but both hold {sorted(overlap)}")
        missing = set(self.onset) - set(self.truth)
        if missing:
            raise ValueError(f"Expected onsets only for true kinds but got onsets for {sorted(missing)}")

    @property
    def healthy(self) -> bool:
        return not self.truth


@dataclass(frozen=True)
class Confusion:
    """Counts for one finding kind. ``precision``/``recall`` are NaN when undefined."""

    kind: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    fp_runs: tuple = field(default=())
    fn_runs: tuple = field(default=())

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn,
                "precision": self.precision, "recall": self.recall,
                "fp_runs": list(self.fp_runs), "fn_runs": list(self.fn_runs)}


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def confusion(outcomes: Iterable[Outcome], kind: str) -> Confusion:
    """The confusion matrix of one finding kind over ``outcomes``."""
    tp = fp = fn = tn = 0
    fp_runs, fn_runs = [], []
    for o in outcomes:
        if kind in o.dont_care:
            continue
        flagged, true = kind in o.found, kind in o.truth
        if flagged and true:
            tp += 1
        elif flagged:
            fp += 1
            fp_runs.append(o.scenario)
        elif true:
            fn += 1
            fn_runs.append(o.scenario)
        else:
            tn += 1
    return Confusion(kind, tp, fp, fn, tn, tuple(fp_runs), tuple(fn_runs))


def detection_delays(outcomes: Iterable[Outcome], kind: str) -> list[int]:
    """Steps from the true onset to the first finding, for each detected run with a known onset.

    Negative when the finding starts before the stated onset (a finding's start is
    where the detector places the pathology's beginning, not when it could first
    have been raised).
    """
    return [o.found[kind] - o.onset[kind] for o in outcomes
            if kind in o.truth and kind in o.found and kind in o.onset]


def clean_healthy_share(outcomes: Iterable[Outcome]) -> tuple[int, int]:
    """(healthy runs with no finding at all, healthy runs)."""
    healthy = [o for o in outcomes if o.healthy]
    return sum(1 for o in healthy if not o.found), len(healthy)


def score(outcomes: Sequence[Outcome], kinds: Sequence[str]) -> dict:
    """Every number of the zoo report for one set of outcomes.

    Returns:
        ``{"runs": n, "kinds": {kind: confusion dict + delays}, "healthy_clean": [k, n]}``.
    """
    out = {"runs": len(outcomes), "kinds": {}}
    for kind in kinds:
        c = confusion(outcomes, kind).to_dict()
        d = detection_delays(outcomes, kind)
        c["delays"] = d
        c["median_delay"] = float(sorted(d)[len(d) // 2]) if d else math.nan
        out["kinds"][kind] = c
    out["healthy_clean"] = list(clean_healthy_share(outcomes))
    return out
