"""Detectors: recorded metrics in, findings out.

Each module holds one finding kind (``discriminator_strength`` holds two that
share a measure) and registers it in ``DETECTORS`` on import.

Example:
    >>> from gandiag.detectors import DETECTORS
    >>> DETECTORS["mode_collapse"].description
    "After warm-up the generator covers only a few of the data's modes."
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from gandiag.detectors.base import (
    DETECTORS,
    SEVERITIES,
    Detector,
    DetectorConfig,
    Finding,
    register_detector,
)
from gandiag.detectors import (  # noqa: F401  (importing a detector module registers it)
    d_changed_in_g_step,
    discriminator_strength,
    divergence,
    mode_collapse,
    no_generator_gradient,
    oscillation,
    output_mismatch,
    saturated_probabilities,
    vanishing_gradient,
)
from gandiag.rundir import Run, load_run

__all__ = ["DETECTORS", "SEVERITIES", "Detector", "DetectorConfig", "Finding", "analyze", "register_detector"]


def analyze(
    run: Run | str | os.PathLike,
    kinds: Iterable[str] | None = None,
    configs: Mapping[str, DetectorConfig] | None = None,
) -> list[Finding]:
    """Run the detectors on a run and return their findings, sorted by start step.

    Args:
        run: a loaded :class:`~gandiag.rundir.Run` or the path of a run directory.
        kinds: detector kinds to run (keys of ``DETECTORS``); all when None.
        configs: kind -> that detector's ``Config`` instance, for non-default thresholds.

    Raises:
        ValueError: a kind in ``kinds`` or ``configs`` is not registered.
        TypeError: a config is not the named detector's ``Config``.

    Example:
        >>> findings = analyze("runs/mnist-minimax", kinds=["mode_collapse"])  # doctest: +SKIP
        >>> [f.kind for f in findings]  # doctest: +SKIP
        ['mode_collapse']
    """
    if isinstance(kinds, str):
        raise TypeError(f"Expected kinds to be a list of detector kinds but got the str {kinds!r}")
    configs = dict(configs or {})
    selected = list(DETECTORS) if kinds is None else list(dict.fromkeys(kinds))
    unknown = [k for k in selected + list(configs) if k not in DETECTORS]
    if unknown:
        raise ValueError(f"Expected detector kinds among {sorted(DETECTORS)} but got {sorted(set(unknown))}")
    if not isinstance(run, Run):
        run = load_run(run)
    findings = []
    for kind in selected:
        findings.extend(DETECTORS[kind](configs.get(kind)).detect(run))
    return sorted(findings, key=lambda f: (f.start_step, f.end_step, f.kind))
