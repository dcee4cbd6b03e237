"""The zoo: labelled healthy and pathological runs that measure the detectors.

    gandiag zoo --tier quick -o runs/zoo-quick

Modules: ``scenarios`` (the registry), ``dirac`` (the Dirac-GAN reference),
``truth`` (measurements on the networks that decide each run's labels),
``runner`` (train, measure, detect), ``scoring`` (confusion, precision, recall,
delays) and ``report`` (JSON and markdown).
"""
from __future__ import annotations

import os
from pathlib import Path

from gandiag.zoo import catalog  # noqa: F401  (importing it registers the scenarios)
from gandiag.zoo.report import shortfalls, summarize, text_summary, write_zoo_report
from gandiag.zoo.runner import run_zoo
from gandiag.zoo.scenarios import SCENARIOS, TIERS, Scenario, register_scenario, select

__all__ = ["SCENARIOS", "TIERS", "Scenario", "register_scenario", "select", "evaluate_zoo", "text_summary", "shortfalls"]


def evaluate_zoo(tier: str, out: str | os.PathLike, *, jobs: int = 1, reuse: bool = False,
                 command: str = "", progress=None) -> dict:
    """Run a tier's scenarios, score the detectors and write the report into ``out``.

    Returns:
        The summary written to ``out/zoo_results.json`` (see :func:`gandiag.zoo.report.summarize`).

    Example:
        >>> summary = evaluate_zoo("quick", "runs/zoo-quick")  # doctest: +SKIP
        >>> summary["scores"]["calibration"]["kinds"]["mode_collapse"]["recall"]  # doctest: +SKIP
    """
    zoo = run_zoo(tier, Path(out), jobs=jobs, reuse=reuse, progress=progress)
    summary = summarize(zoo)
    write_zoo_report(summary, out, command)
    return summary
