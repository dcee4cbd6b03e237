"""A short plain-text summary of runs and their findings, for stdout.

    python -c "from gandiag.rundir import load_run; from gandiag.report import text_summary; \\
        print(text_summary([load_run('runs/x')]))"
"""
from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

from gandiag.rundir import Run

FINDING_KEYS = ("kind", "severity", "start_step", "end_step", "message")
SEVERITIES = ("info", "warning", "critical")

FindingsArg = Sequence[Sequence[Mapping]] | Mapping[str, Sequence[Mapping]] | None


def _check_finding(f: Mapping, where: str) -> dict:
    if not isinstance(f, Mapping):
        raise TypeError(f"Expected each finding of {where} to be a dict but got {type(f).__name__}")
    missing = [k for k in FINDING_KEYS if k not in f]
    if missing:
        raise ValueError(f"Expected finding keys {list(FINDING_KEYS)} in a finding of {where} "
                         f"but {missing} are missing (got {sorted(f)})")
    if f["severity"] not in SEVERITIES:
        raise ValueError(f"Expected severity in {SEVERITIES} in a finding of {where} but got {f['severity']!r}")
    out = dict(f)
    out.setdefault("evidence", {})
    return out


def findings_by_run(runs: Sequence[Run], findings: FindingsArg = None) -> list[list[dict] | None]:
    """The findings of each run, in the order of ``runs``, checked.

    ``findings`` is a list parallel to ``runs``, or a mapping from run name to that
    run's findings (a run missing from it has none), or None to read each run's
    ``findings.json``. A run whose findings are unknown (None) was not analysed.
    """
    runs = list(runs)
    for r in runs:
        if not isinstance(r, Run):
            raise TypeError(f"Expected runs to hold gandiag.rundir.Run objects (from load_run) but got {type(r).__name__}")
    if findings is None:
        per_run = [r.findings() for r in runs]
    elif isinstance(findings, Mapping):
        names = [r.name for r in runs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"Expected unique run names to key findings by name but {dupes} repeat; "
                             "pass a list parallel to runs instead")
        unknown = sorted(set(findings) - set(names))
        if unknown:
            raise ValueError(f"Expected findings keyed by run names {sorted(names)} but got unknown keys {unknown}")
        per_run = [findings.get(n, []) for n in names]
    else:
        per_run = list(findings)
        if len(per_run) != len(runs):
            raise ValueError(f"Expected one findings list per run ({len(runs)}) but got {len(per_run)}")
    return [None if fs is None else [_check_finding(f, r.name) for f in fs] for r, fs in zip(runs, per_run)]


def step_range(f: Mapping) -> str:
    start, end = int(f["start_step"]), int(f["end_step"])
    return str(start) if start == end else f"{start}-{end}"


def _kinds_with_ranges(findings: list[dict]) -> str:
    by_kind: dict[str, list[str]] = {}
    for f in sorted(findings, key=lambda f: (int(f["start_step"]), str(f["kind"]))):
        by_kind.setdefault(str(f["kind"]), []).append(step_range(f))
    return "; ".join(f"{kind} {', '.join(ranges)}" for kind, ranges in by_kind.items())


def run_settings(run: Run) -> tuple[str, str]:
    """Two short labels for what made ``run``: ``("loss=ns", "seed=0")`` for a run of
    ``gandiag run``. A run recorded from someone's own loop has neither, so it gets
    where it came from and D's declared output, e.g. ``("own loop", "d_output=probs")``."""
    cfg = run.meta.get("config") or {}
    if "loss" in cfg or "seed" in cfg:
        return f"loss={cfg.get('loss', '?')}", f"seed={cfg.get('seed', '?')}"
    return str(cfg.get("source", "own loop")), f"d_output={run.meta.get('d_output', '?')}"


def text_summary(runs: Sequence[Run], findings: FindingsArg = None) -> str:
    """One line per run (name, loss, seed, status, findings with their step ranges),
    then the number of findings of each kind.

    Args:
        runs: runs from :func:`gandiag.rundir.load_run`.
        findings: a list parallel to ``runs``, a mapping from run name to findings,
            or None to read each run's ``findings.json``.

    Example:
        >>> print(text_summary(runs, [detect(r) for r in runs]))
        ring-ns-0   loss=ns  seed=0  completed  1 finding: mode_collapse 400-1000
        ...
    """
    runs = list(runs)
    per_run = findings_by_run(runs, findings)
    rows = []
    for run, fs in zip(runs, per_run):
        if fs is None:
            tail = "not analysed"
        elif not fs and run.metrics.empty:
            tail = "nothing recorded yet"
        elif not fs:
            tail = "no findings"
        else:
            tail = f"{len(fs)} finding{'s' if len(fs) != 1 else ''}: {_kinds_with_ranges(fs)}"
        rows.append((run.name, *run_settings(run), run.status, tail))
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(4)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(r[:4], widths)), r[4]]) for r in rows]

    counts: Counter[str] = Counter()
    runs_with: Counter[str] = Counter()
    for fs in per_run:
        for f in fs or ():
            counts[str(f["kind"])] += 1
        runs_with.update({str(f["kind"]) for f in fs or ()})
    total = sum(counts.values())
    lines.append("")
    lines.append(f"{len(runs)} run{'s' if len(runs) != 1 else ''}, {total} finding{'s' if total != 1 else ''}")
    for kind in sorted(counts, key=lambda k: (-counts[k], k)):
        lines.append(f"  {kind}: {counts[kind]} in {runs_with[kind]} run{'s' if runs_with[kind] != 1 else ''}")
    return "\n".join(lines)
