"""A factory for small synthetic run directories, written through RunWriter and read back."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gandiag import schema
from gandiag.rundir import RunWriter, load_run


def _ring(n: int, rng: np.random.Generator, modes: int = 8) -> np.ndarray:
    angles = 2 * np.pi * rng.integers(0, modes, n) / modes
    return np.stack([np.cos(angles), np.sin(angles)], 1) * 2 + rng.normal(0, 0.05, (n, 2))


def _samples(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "points":
        return _ring(n, rng)
    if kind == "images":
        return np.tanh(rng.normal(0, 1, (n, 1, 8, 8))).astype(np.float32)
    if kind == "vectors":
        return rng.normal(0, 1, (n, 5))
    raise ValueError(kind)


@pytest.fixture
def make_run(tmp_path):
    """``make_run(name, **options) -> Run``.

    Per step s (0..steps-1): losses near 1 (times ``loss_scale``), grad_norm_g = 1 + s and logit_grad_g = 0.5 + s, so the
    medians over the early steps have closed forms; div/modes_covered falls from
    8 to ``final_modes`` of 8 and is recorded every ``div_every`` steps.
    """

    def make(name: str = "run", *, steps: int = 200, loss: str = "ns", seed: int = 0, data: str = "ring8",
             status: str = "completed", samples: str | None = "points", omit=(), diverge_at: int | None = None,
             div_every: int = 20, snapshots: int = 3, final_modes: int = 3, d_output: str = "logits",
             loss_scale: float = 1.0):
        rng = np.random.default_rng(seed)
        w = RunWriter(tmp_path / name, {"config": {"loss": loss, "data": data, "seed": seed, "steps": steps},
                                       "d_output": d_output})
        rows = []
        for s in range(steps):
            row = {
                schema.STEP: s,
                schema.LOSS_G: loss_scale * (0.7 + 0.3 * math.sin(s / 7) + 0.05 * rng.normal()),
                schema.LOSS_D: loss_scale * (1.3 - 0.2 * math.sin(s / 7) + 0.05 * rng.normal()),
                schema.GRAD_NORM_G: 1.0 + s,
                schema.GRAD_NORM_D: 2.0 + 0.1 * rng.random(),
                schema.LOGIT_GRAD_G: 0.5 + s,
                schema.D_REAL: 0.6 + 0.05 * rng.random(),
                schema.D_FAKE: 0.4 + 0.05 * rng.random(),
                schema.D_ACC: 0.7,
            }
            if diverge_at is not None and s >= diverge_at:
                row.update({schema.LOSS_G: float("nan"), schema.LOSS_D: float("nan"),
                            schema.GRAD_NORM_G: float("inf"), schema.NONFINITE: 1})
            if s % div_every == 0 or s == steps - 1:
                frac = s / max(1, steps - 1)
                row.update({schema.DIV_MODES_COVERED: round(8 - (8 - final_modes) * frac),
                            schema.DIV_MODES_TOTAL: 8, schema.DIV_HQ_SHARE: 0.9 - 0.3 * frac,
                            schema.DIV_RECALL: 0.8 - 0.5 * frac})
            for k in omit:
                row.pop(k, None)
            rows.append(row)
        w.append(rows)
        if samples is not None:
            picks = np.linspace(0, steps - 1, snapshots).astype(int) if snapshots else []
            for s in dict.fromkeys(int(p) for p in picks):
                w.save_samples(s, _samples(samples, 128, rng))
            w.save_real(_samples(samples, 256, rng))
        w.close(status)
        return load_run(tmp_path / name)

    return make


@pytest.fixture
def finding():
    def make(kind: str, start: int, end: int, severity: str = "warning", message: str | None = None, **evidence):
        return {"kind": kind, "severity": severity, "start_step": start, "end_step": end,
                "evidence": evidence or {"metric": schema.GRAD_NORM_G, "value": 1e-6},
                "message": message if message is not None else f"{kind} between {start} and {end}"}

    return make
