"""The run directory: the one contract between recording and everything after it.

Layout (format version 1)::

    RUN_DIR/
      meta.json        format name and version, config, d_output, status
      metrics.jsonl    one JSON object per recorded step, appended while training
      samples/         step_XXXXXXX.npy snapshots of generated samples
      real.npy         a batch of real samples, for the report and offline metrics
      findings.json    written by analysis (a list of findings)

``metrics.jsonl`` is append-only and flushed every few steps, so a run that is
killed keeps everything up to its last flush; a torn last line is ignored on read.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np

if TYPE_CHECKING:
    import pandas as pd  # imported where runs are read: recording does not need it

FORMAT_NAME = "gandiag-run"
FORMAT_VERSION = 1

META_FILE = "meta.json"
METRICS_FILE = "metrics.jsonl"
FINDINGS_FILE = "findings.json"
SAMPLES_DIR = "samples"
REAL_FILE = "real.npy"
LOCK_FILE = ".lock"

STATUSES = ("running", "completed", "diverged", "interrupted")


class RunDirError(ValueError):
    """A path is not a readable gandiag run directory."""


def jsonable(value: Any) -> Any:
    """``value`` with what strict JSON cannot spell made spellable: NaN/Inf as
    strings, numpy scalars as Python numbers, tuples as lists, keys as str."""
    # NaN and Inf are legal metric values (that is how divergence shows), but
    # strict JSON has no spelling for them; they are written as strings.
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (np.floating, np.integer)):
        return jsonable(value.item())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def describe_os_error(exc: OSError) -> str:
    """``"PermissionError: Operation not permitted (/sys/x)"``: an OS error in one line, for messages."""
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{type(exc).__name__}: {exc.strerror or exc}{where}"


_STRICT_JSON = json.JSONEncoder(allow_nan=False)


def _unjson(value: Any) -> Any:
    if value in ("nan", "inf", "-inf"):
        return float(value)
    return value


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(jsonable(obj), indent=2, sort_keys=True))
    os.replace(tmp, path)


class RunWriter:
    """Appends to a run directory. Used by :class:`gandiag.Monitor` only.

    Creating the writer creates the directory; it refuses a directory that
    already holds a run, so that nothing recorded earlier is ever lost.
    """

    def __init__(self, path: str | os.PathLike, meta: Mapping[str, Any], *, overwrite: bool = False):
        self.path = Path(path)
        if (self.path / META_FILE).exists() and not overwrite:
            raise RunDirError(
                f"Expected an empty or new run directory but {self.path} already holds a run; "
                "choose another run_dir or pass overwrite=True"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for name in (METRICS_FILE, FINDINGS_FILE):
                (self.path / name).unlink(missing_ok=True)
            samples = self.path / SAMPLES_DIR
            if samples.is_dir():
                for f in samples.glob("*.npy"):
                    f.unlink()
        self.meta = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "created": time.time(),
            "status": "running",
            **dict(meta),
        }
        write_json(self.path / META_FILE, self.meta)
        self._metrics = open(self.path / METRICS_FILE, "a", encoding="utf-8")

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        lines = []
        for row in rows:
            # The usual row is finite floats: encoded as is. The strict encoder
            # refuses NaN/Inf and types JSON lacks, so only such rows pay for
            # jsonable. Keys json spells unlike str() (True, False, None) go
            # that way too; `in` finds them in O(1) (and sends key 1 along, harmlessly).
            try:
                if not isinstance(row, dict) or None in row or True in row or False in row:
                    raise TypeError(type(row).__name__)
                lines.append(_STRICT_JSON.encode(row))
            except (ValueError, TypeError):
                lines.append(json.dumps(jsonable(dict(row))))
        if lines:
            self._metrics.write("\n".join(lines) + "\n")
        self._metrics.flush()

    def save_samples(self, step: int, samples: np.ndarray) -> None:
        d = self.path / SAMPLES_DIR
        d.mkdir(exist_ok=True)
        np.save(d / f"step_{step:07d}.npy", np.asarray(samples, dtype=np.float32))

    def save_real(self, real: np.ndarray) -> None:
        np.save(self.path / REAL_FILE, np.asarray(real, dtype=np.float32))

    def update_meta(self, **fields: Any) -> None:
        self.meta.update(fields)
        write_json(self.path / META_FILE, self.meta)

    def close(self, status: str, **fields: Any) -> None:
        if status not in STATUSES:
            raise ValueError(f"Expected status in {STATUSES} but got {status!r}")
        if not self._metrics.closed:
            self._metrics.close()
        self.update_meta(status=status, finished=time.time(), **fields)


@dataclass(frozen=True)
class Run:
    """A run directory as read back: everything a detector or a report may use.

    Attributes:
        path: the run directory.
        meta: the contents of ``meta.json`` (config, ``d_output``, status, ...).
        metrics: one row per recorded step, indexed by ``step``; columns are the
            metric names of :mod:`gandiag.schema`. Metrics recorded on a cadence
            are NaN on the other steps.
        samples: step -> path of the saved sample snapshot.
    """

    path: Path
    meta: dict
    metrics: pd.DataFrame
    samples: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def status(self) -> str:
        return self.meta.get("status", "running")

    @property
    def d_output(self) -> str:
        return self.meta.get("d_output", "logits")

    def series(self, name: str) -> pd.Series:
        """One metric with NaN rows dropped (empty if it was never recorded)."""
        if name not in self.metrics.columns:
            import pandas as pd

            return pd.Series(dtype=float, name=name)
        return self.metrics[name].dropna()

    def load_samples(self, step: int) -> np.ndarray:
        return _load_array(self.samples[step])

    def load_real(self) -> np.ndarray | None:
        p = self.path / REAL_FILE
        return _load_array(p) if p.exists() else None

    def findings(self) -> list[dict] | None:
        p = self.path / FINDINGS_FILE
        return json.loads(p.read_text()) if p.exists() else None


def _load_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise RunDirError(f"Expected a numeric .npy array in {path} but it could not be read ({type(exc).__name__})") from None


def _read_metrics(path: Path) -> pd.DataFrame:
    import pandas as pd

    rows = []
    if path.exists():
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):
                    continue  # a torn final line: the run was killed mid-write
                raise RunDirError(f"Expected one JSON object per line in {path} but line {number} is not JSON") from None
            if not isinstance(row, dict) or not isinstance(row.get("step"), int) or isinstance(row.get("step"), bool):
                raise RunDirError(
                    f"Expected each line of {path} to be an object with an integer 'step' but line {number} is {line[:60]!r}"
                )
            rows.append({k: _unjson(v) for k, v in row.items()})
    if not rows:
        return pd.DataFrame(index=pd.Index([], name="step", dtype=int))
    df = pd.DataFrame.from_records(rows)
    # A step may be written in more than one row (a cadence metric arriving later):
    # the rows of one step are merged, later values winning.
    df = df.groupby("step", sort=True).last()
    df.index = df.index.astype(int)
    return df.apply(pd.to_numeric, errors="coerce")


def load_run(path: str | os.PathLike) -> Run:
    """Read a run directory, complete or still being written.

    Raises:
        RunDirError: the path is missing, or is not a gandiag run directory of a
            format version this gandiag can read.
    """
    p = Path(path)
    if not p.is_dir():
        raise RunDirError(f"Expected a run directory but {str(p)!r} does not exist or is not a directory")
    meta_path = p / META_FILE
    if not meta_path.exists():
        raise RunDirError(f"Expected {META_FILE} in {str(p)!r} but found none: not a gandiag run directory")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise RunDirError(f"Expected valid JSON in {meta_path} but got: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise RunDirError(f"Expected format {FORMAT_NAME!r} in {meta_path} but got {meta.get('format') if isinstance(meta, dict) else meta!r}")
    if meta.get("version") != FORMAT_VERSION:
        raise RunDirError(f"Expected run format version {FORMAT_VERSION} in {meta_path} but got {meta.get('version')!r}")
    metrics = _read_metrics(p / METRICS_FILE)
    samples = {}
    sd = p / SAMPLES_DIR
    if sd.is_dir():
        for f in sorted(sd.glob("step_*.npy")):
            samples[int(f.stem.split("_")[1])] = f
    return Run(path=p, meta={k: _unjson(v) for k, v in meta.items()}, metrics=metrics, samples=samples)


def write_findings(path: str | os.PathLike, findings: list[dict]) -> Path:
    out = Path(path) / FINDINGS_FILE
    write_json(out, findings)
    return out
