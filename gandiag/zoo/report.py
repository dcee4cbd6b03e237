"""The zoo's report: numbers as JSON, and a markdown page that shows them.

``zoo_results.json`` holds everything (per split: confusion, precision, recall,
delays for each finding kind; per scenario: truth, measurements, findings);
``zoo_report.md`` is written from it alone.
"""
from __future__ import annotations

import math
from pathlib import Path

from gandiag.detectors import DETECTORS
from gandiag.rundir import write_json
from gandiag.zoo.runner import ZooRun, outcome
from gandiag.zoo.scenarios import SPLITS
from gandiag.zoo.scoring import score

RESULTS_FILE = "zoo_results.json"
REPORT_FILE = "zoo_report.md"

# The targets: precision and recall at least 0.95 on these kinds, and no
# finding at all on at least 95% of healthy runs.
TARGET_KINDS = ("vanishing_generator_gradient", "mode_collapse", "oscillation")
TARGET = 0.95


def summarize(zoo: ZooRun) -> dict:
    """Score each split (and both together) of a zoo run."""
    kinds = sorted(DETECTORS)
    by_split = {}
    for split in (*SPLITS, "all"):
        results = [r for r in zoo.results if split == "all" or r["split"] == split]
        outcomes = [o for o in map(outcome, results) if o is not None]
        s = score(outcomes, kinds)
        s["ambiguous"] = [r["scenario"] for r in results if r["truth"]["status"] == "ambiguous"]
        by_split[split] = s
    # Kinds the scenario does not care about are left out of the comparison, as out of scoring.
    mismatched = []
    for r in zoo.results:
        measured = sorted(set(r["truth"]["kinds"]) - set(r["dont_care"]))
        if sorted(r["intent"]) != measured:
            mismatched.append({"scenario": r["scenario"], "intent": r["intent"], "measured": measured,
                               "status": r["truth"]["status"]})
    return {"tier": zoo.tier, "seconds": zoo.seconds, "scores": by_split, "intent_mismatch": mismatched,
            "scenarios": zoo.results, "targets": {"kinds": list(TARGET_KINDS), "min": TARGET}}


def shortfalls(summary: dict, floor: float) -> list[str]:
    """What falls below ``floor`` over all scored scenarios: precision or recall
    of a target kind that has positives or findings, and the share of healthy
    runs with no finding. Empty when everything meets it."""
    s = summary["scores"]["all"]
    short = []
    for kind in TARGET_KINDS:
        c = s["kinds"][kind]
        if not (c["tp"] or c["fp"] or c["fn"]):
            continue
        for name in ("precision", "recall"):
            v = c[name]
            if v is None or (isinstance(v, float) and math.isnan(v)) or v < floor:
                short.append(f"{kind} {name} {_fmt(v)}")
    clean, healthy = s["healthy_clean"]
    if healthy and clean / healthy < floor:
        short.append(f"healthy runs without findings {clean}/{healthy}")
    return short


def _fmt(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def _table(s: dict) -> list[str]:
    lines = ["| finding kind | TP | FP | FN | TN | precision | recall | median delay (steps) "
             "| false positives | misses |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for kind, c in s["kinds"].items():
        if not (c["tp"] or c["fp"] or c["fn"]):
            continue
        mark = " **(target)**" if kind in TARGET_KINDS else ""
        delay = "–" if math.isnan(c["median_delay"]) else f"{c['median_delay']:.0f}"
        fps, fns = ", ".join(c["fp_runs"]) or "–", ", ".join(c["fn_runs"]) or "–"
        lines.append(f"| {kind}{mark} | {c['tp']} | {c['fp']} | {c['fn']} | {c['tn']} | {_fmt(c['precision'])} | "
                     f"{_fmt(c['recall'])} | {delay} | {fps} | {fns} |")
    quiet = [k for k, c in s["kinds"].items() if not (c["tp"] or c["fp"] or c["fn"])]
    if quiet:
        lines.append("")
        lines.append(f"Kinds with no positive and no finding in this set (all true negatives): {', '.join(quiet)}.")
    return lines


_HOW_TO_READ = (
    "How to read it: each scenario's truth is measured from its run, independently of the detectors "
    "(last section). A finding of the right kind is a true positive, of a kind the truth does not hold a "
    "false positive. Kinds a scenario marks \"don't care\" (a natural side effect of its pathology, "
    "e.g. vanishing gradients under an over-strong D) and kinds its truth leaves undecided are left out "
    "of that kind's counts. Delay is the finding's first step minus the truth's onset step; it is "
    "negative when the detector places the start before the truth's stricter threshold is crossed."
)


def markdown(summary: dict, command: str = "") -> str:
    out = [f"# gandiag zoo: {summary['tier']} tier", ""]
    if command:
        out += [f"Produced by `{command}` in {summary['seconds']:.0f} s.", ""]
    out += [_HOW_TO_READ, ""]
    # "all" repeats a split when the other one has no run (the quick tier is calibration only).
    splits = [sp for sp in SPLITS if summary["scores"][sp]["runs"] or summary["scores"][sp]["ambiguous"]]
    for split in (*splits, "all") if len(splits) > 1 else splits:
        s = summary["scores"][split]
        clean, healthy = s["healthy_clean"]
        out += [f"## {split} ({s['runs']} scored runs)", "",
                f"Healthy runs with no finding at all: {clean}/{healthy}"
                + (f" ({clean / healthy:.0%})" if healthy else ""), ""]
        out += _table(s)
        if s["ambiguous"]:
            out += ["", f"Not scored (truth ambiguous by measurement): {', '.join(s['ambiguous'])}."]
        out.append("")
    if summary["intent_mismatch"]:
        out += ["## Scenarios whose measured truth differs from their intent", "",
                "| scenario | built to show | measured | status |", "|---|---|---|---|"]
        for m in summary["intent_mismatch"]:
            out.append(f"| {m['scenario']} | {', '.join(m['intent']) or 'healthy'} | "
                       f"{', '.join(m['measured']) or '–'} | {m['status']} |")
        out.append("")
    out += ["## Scenarios", "", "| scenario | split | truth (measured) | don't care | found | key measurements |",
            "|---|---|---|---|---|---|"]
    for r in summary["scenarios"]:
        found = ", ".join(sorted({f"{f['kind']}@{f['start_step']}" for f in r["findings"]})) or "–"
        meas = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in r["truth"]["measured"].items())
        out.append(f"| {r['scenario']} | {r['split']} | {', '.join(r['truth']['kinds']) or r['truth']['status']} | "
                   f"{', '.join(r['dont_care']) or '–'} | {found} | {meas} |")
    out += ["", "## How each scenario's truth is measured", ""]
    for r in summary["scenarios"]:
        out.append(f"- **{r['scenario']}**: {r['how']}")
    return "\n".join(out) + "\n"


def text_summary(summary: dict) -> str:
    """A few lines for stdout: precision/recall of the target kinds per split."""
    lines = [f"zoo {summary['tier']}: {len(summary['scenarios'])} scenarios in {summary['seconds']:.0f}s"]
    for split in ("calibration", "heldout"):
        s = summary["scores"][split]
        if not s["runs"]:
            continue
        clean, healthy = s["healthy_clean"]
        parts = [f"{k}: P={_fmt(s['kinds'][k]['precision'])} R={_fmt(s['kinds'][k]['recall'])}" for k in TARGET_KINDS]
        lines.append(f"  {split}: {'; '.join(parts)}; healthy clean {clean}/{healthy}")
    return "\n".join(lines)


def write_zoo_report(summary: dict, out: str | Path, command: str = "") -> tuple[Path, Path]:
    out = Path(out)
    write_json(out / RESULTS_FILE, summary)
    md = out / REPORT_FILE
    md.write_text(markdown(summary, command))
    return out / RESULTS_FILE, md
