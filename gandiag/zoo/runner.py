"""Running the zoo: train or simulate each scenario, measure its truth, run the detectors.

Each scenario's run directory gets a ``truth.json`` next to the Monitor's files
(the measurements and the labels derived from them). With ``reuse=True`` a run
directory that already holds a finished run and its ``truth.json`` is not
trained again; the detectors always run afresh, so thresholds can be
recalibrated on recorded runs.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gandiag.detectors import analyze
from gandiag.rundir import write_findings, write_json
from gandiag.zoo.scenarios import SCENARIOS, Scenario, select
from gandiag.zoo.scoring import Outcome

TRUTH_FILE = "truth.json"
RUNS_DIR = "runs"

# Dirac-GAN truth from the closed form: the radius after the last step against the start.
DIRAC_GROWN = 1.5        # diverging: the radius grew by half or more
DIRAC_CONVERGED = 1e-2   # converged: the radius fell below 1e-2
DIRAC_BAND = (0.7, 1.4)  # oscillating: over the second half the radius stays within this band of the start


def _dirac_truth(s: Scenario) -> dict:
    from gandiag.zoo.dirac import radius_after

    cfg = s.dirac
    r = radius_after(cfg)
    r0 = math.hypot(cfg.theta0, cfg.psi0)
    half = r[len(r) // 2:]
    measured = {"radius_start": r0, "radius_end": r[-1], "radius_min_2nd_half": min(half),
                "radius_max_2nd_half": max(half)}
    if r[-1] < DIRAC_CONVERGED:
        kinds, onset, status = [], {}, "healthy"
    elif r[-1] >= DIRAC_GROWN * r0:
        kinds, onset, status = ["divergence"], {"divergence": 0}, "pathological"
    elif DIRAC_BAND[0] * r0 <= min(half) and max(half) <= DIRAC_BAND[1] * r0:
        kinds, onset, status = ["oscillation"], {"oscillation": 0}, "pathological"
    else:
        kinds, onset, status = [], {}, "ambiguous"
    return {"kinds": kinds, "onset": onset, "measured": measured, "status": status,
            "rule": "closed-form radius of the Dirac-GAN (gandiag.zoo.dirac.radius_after)"}


def _train_truth(s: Scenario, run_dir: Path) -> dict:
    import torch

    from gandiag.data import grid_modes, load_dataset, mixture_dataset, ring_modes
    from gandiag.losses import get_loss
    from gandiag.train import initial_models, train
    from gandiag.zoo.truth import TruthProbe

    cfg = s.train
    if s.mode_std is not None:
        modes = ring_modes(8, 2.0) if cfg.data == "ring8" else grid_modes((-4.0, -2.0, 0.0, 2.0, 4.0))
        dataset = mixture_dataset(cfg.data, modes, s.mode_std, 10_000, cfg.seed)
    else:
        dataset = load_dataset(cfg.data, seed=cfg.seed)
    torch.set_num_threads(1)
    probe = TruthProbe(dataset, get_loss(cfg.loss), every=max(1, cfg.steps // 60), steps=cfg.steps, seed=cfg.seed)
    train(cfg, run_dir, dataset=dataset, models=initial_models(dataset, cfg), observer=probe)
    rec = probe.finish()
    return _relabel({"rule": "gandiag.zoo.truth.label on the TruthProbe measurements", "record": rec.to_dict()})


def _relabel(truth: dict) -> dict:
    from gandiag.zoo.truth import TruthRecord, is_healthy, label

    kinds, onset, measured, unknown = label(TruthRecord(**truth["record"]))
    status = "pathological" if kinds else ("healthy" if is_healthy(measured) else "ambiguous")
    return {**truth, "kinds": sorted(kinds), "onset": onset, "measured": measured, "status": status,
            "undecided": sorted(unknown)}


def run_scenario(name: str, out: str | os.PathLike, reuse: bool = False) -> dict:
    """Run one scenario into ``out/runs/<name>`` and return its truth and findings.

    Returns:
        ``{"scenario", "split", "intent", "dont_care", "truth", "findings", "seconds"}``.
    """
    s = SCENARIOS[name]
    run_dir = Path(out) / RUNS_DIR / name
    truth_path = run_dir / TRUTH_FILE
    t0 = time.time()
    built = repr(s.train if s.train is not None else s.dirac) + f" mode_std={s.mode_std}"
    truth = json.loads(truth_path.read_text()) if reuse and truth_path.exists() else None
    if truth is not None and truth.get("built") != built:
        truth = None  # the scenario was redefined since it was recorded: record it again
    if truth is not None:
        if "record" in truth:  # the truth rules may have changed since: label the stored measurements again
            truth = _relabel(truth)
            write_json(truth_path, truth)
    else:
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        if s.dirac is not None:
            from gandiag.zoo.dirac import record_dirac

            record_dirac(s.dirac, run_dir)
            truth = _dirac_truth(s)
        else:
            truth = _train_truth(s, run_dir)
        truth["built"] = built
        write_json(truth_path, truth)
    findings = [f.to_dict() for f in analyze(run_dir)]
    write_findings(run_dir, findings)
    shown = {k: v for k, v in truth.items() if k not in ("record", "built")}
    return {"scenario": name, "split": s.split, "intent": sorted(s.intent), "dont_care": sorted(s.dont_care),
            "how": s.how, "truth": shown, "findings": findings, "seconds": time.time() - t0}


def outcome(result: dict) -> Outcome | None:
    """The scored form of one scenario's result; None when its truth is ambiguous."""
    truth = result["truth"]
    if truth["status"] == "ambiguous":
        return None
    found = {}
    for f in result["findings"]:
        found[f["kind"]] = min(found.get(f["kind"], f["start_step"]), f["start_step"])
    # A scenario's don't-care kinds are not scored even where measured (a blown-up run
    # also "measures" a vanishing gradient); undecided kinds are not scored either.
    dont_care = frozenset(result["dont_care"]) | (frozenset(truth.get("undecided", ())) - set(truth["kinds"]))
    kinds = frozenset(truth["kinds"]) - dont_care
    return Outcome(result["scenario"], result["split"], kinds, dont_care,
                   {k: int(v) for k, v in truth["onset"].items() if k in kinds}, found)


@dataclass(frozen=True)
class ZooRun:
    tier: str
    out: Path
    results: list
    seconds: float


def run_zoo(tier: str, out: str | os.PathLike, *, jobs: int = 1, reuse: bool = False,
            progress: Callable[[str], None] | None = None, names: list[str] | None = None) -> ZooRun:
    """Run every scenario of ``tier`` (or only those in ``names``) into ``out``
    (``jobs`` processes at most).

    Example:
        >>> zoo = run_zoo("quick", "runs/zoo")  # doctest: +SKIP
    """
    scenarios = select(tier)
    if names is not None:
        unknown = sorted(set(names) - {s.name for s in scenarios})
        if unknown:
            raise ValueError(f"Expected scenario names of tier {tier!r} among {sorted(s.name for s in scenarios)} "
                             f"but got {unknown}")
        scenarios = [s for s in scenarios if s.name in set(names)]
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"Expected jobs to be an int >= 1 but got {jobs!r}")
    out = Path(out)
    (out / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
    t0 = time.time()
    names = [s.name for s in scenarios]
    results = []

    def done(r):
        results.append(r)
        kinds = sorted({f["kind"] for f in r["findings"]})
        say(f"[{len(results)}/{len(names)}] {r['scenario']}: truth {r['truth']['kinds'] or r['truth']['status']}, "
            f"found {kinds or 'nothing'} ({r['seconds']:.0f}s)")

    if jobs == 1:
        for n in names:
            done(run_scenario(n, out, reuse))
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("fork")) as pool:
            futures = [pool.submit(run_scenario, n, out, reuse) for n in names]
            for fut in futures:
                done(fut.result())
    order = {n: i for i, n in enumerate(names)}
    results.sort(key=lambda r: order[r["scenario"]])
    return ZooRun(tier, out, results, time.time() - t0)
