"""From run directories to findings and a report: what ``gandiag report`` does.

Detectors read only what was recorded, so this works on any run directory:
one made by ``gandiag run``, by a Monitor in your own loop, or one still being
written.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from gandiag.detectors import DETECTORS, analyze
from gandiag.rundir import META_FILE, Run, RunDirError, load_run, write_findings


def find_run_dirs(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Expand each path: a run directory stays as it is; a folder of run
    directories (a sweep made by ``gandiag run``) gives each run inside it.

    Raises:
        RunDirError: a path is missing, or holds no run directory.
    """
    return [p for p, _ in _expand(paths)]


def _expand(paths: Sequence[str | os.PathLike]) -> list[tuple[Path, bool]]:
    """(run directory, whether it was named itself rather than found in a folder)."""
    if not paths:
        raise RunDirError("Expected at least one run directory but got none")
    found: dict[Path, bool] = {}
    for raw in paths:
        p = Path(raw)
        if not p.is_dir():
            raise RunDirError(f"Expected a run directory but {str(p)!r} does not exist or is not a directory")
        inner = _runs_below(p, depth=2)
        if not inner:
            raise RunDirError(f"Expected a run directory (with {META_FILE}) or a folder of them but {str(p)!r} holds neither")
        # The same run named twice (or inside two named folders) is reported once.
        for r in inner:
            key = r.resolve()
            found[key] = found.get(key, False) or r == p
    return list(found.items())


def _runs_below(p: Path, depth: int) -> list[Path]:
    # A run directory, or run directories up to `depth` folders down: a sweep
    # folder, or `runs/` holding several sweeps.
    if (p / META_FILE).exists():
        return [p]
    if depth == 0:
        return []
    return [r for c in sorted(p.iterdir()) if c.is_dir() for r in _runs_below(c, depth - 1)]


@dataclass(frozen=True)
class Analysis:
    """Runs and their findings (as plain dicts, the findings.json form), in order.

    ``skipped`` holds ``(run directory, reason)`` for runs found inside a folder
    that could not be read; the other runs are analysed all the same.
    """

    runs: list[Run]
    findings: list[list[dict]]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def kinds(self) -> set[str]:
        return {f["kind"] for fs in self.findings for f in fs}

    def write_findings(self) -> list[tuple[Path, str]]:
        """Write each run's ``findings.json``. Returns ``(run directory, reason)``
        for each one that could not be written (a read-only copy of a run, say):
        its findings are still in this object and in the report."""
        failed = []
        for run, fs in zip(self.runs, self.findings):
            try:
                write_findings(run.path, fs)
            except OSError as e:
                failed.append((run.path, f"{type(e).__name__}: {e.strerror or e}"))
        return failed


def analyze_runs(paths: Sequence[str | os.PathLike], *, write: bool = True) -> Analysis:
    """Load every run, run every detector on it, and (by default) write its
    ``findings.json``. All paths are read and checked before anything is written.

    A run named in ``paths`` that cannot be read is an error; one found inside a
    named folder is skipped (see :attr:`Analysis.skipped`), unless none can be read.
    """
    runs, skipped = [], []
    for p, named in _expand(paths):
        try:
            runs.append(load_run(p))
        except RunDirError as e:
            if named:
                raise
            skipped.append((p, str(e)))
    if not runs:
        raise RunDirError(f"Expected at least one readable run but none of the {len(skipped)} found could be read; "
                          f"first: {skipped[0][1]}")
    result = Analysis(runs=runs, findings=[[f.to_dict() for f in analyze(run)] for run in runs], skipped=skipped)
    if write:
        result.write_findings()
    return result


def check_kinds(kinds: Sequence[str]) -> list[str]:
    """Validate finding kinds named by a user (``--fail-on``)."""
    bad = [k for k in kinds if k not in DETECTORS]
    if bad:
        raise ValueError(f"Expected finding kinds from {sorted(DETECTORS)} but got {bad}")
    return list(kinds)
