"""Shared harness for detector tests: synthetic runs built straight into a Run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gandiag import schema as S
from gandiag.detectors import DETECTORS
from gandiag.rundir import Run

N_STEPS = 1000
EVAL_EVERY = 50


def _make_run(metrics: dict, meta: dict | None = None) -> Run:
    """A Run from metric arrays (one value per step, steps 0..n-1, NaN = not recorded)
    or pandas Series indexed by step (for metrics on a cadence)."""
    columns = {}
    for name, values in metrics.items():
        if isinstance(values, pd.Series):
            columns[name] = values.astype(float)
        else:
            values = np.asarray(values, dtype=float)
            columns[name] = pd.Series(values, index=np.arange(len(values)))
    df = pd.DataFrame(columns)
    df.index = df.index.astype(int)
    df.index.name = S.STEP
    df = df.sort_index()
    full_meta = {"status": "completed", "d_output": "logits", "config": {}}
    full_meta.update(meta or {})
    return Run(path=Path("synthetic"), meta=full_meta, metrics=df)


@pytest.fixture
def make_run():
    return _make_run


def _healthy_metrics(seed: int = 0, n: int = N_STEPS) -> dict:
    """A realistic healthy run: a short learning transient, then noisy plateaus.

    D wins early (accuracy ~0.8) and settles near 0.6; losses sit near their
    balanced values; G's logit gradient stays ~0.5; all 8 modes are covered
    after the first evaluations and 90% of samples are near a mode.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    early = np.exp(-t / 60)
    evals = np.arange(0, n, EVAL_EVERY)
    covered = np.minimum(8, 2 + evals // 15)
    ramp = 1 - np.exp(-evals / 80)
    return {
        S.LOSS_D: 1.25 - 0.2 * early + 0.06 * rng.normal(size=n),
        S.LOSS_G: 0.85 + 0.4 * early + 0.08 * rng.normal(size=n),
        S.LOGIT_GRAD_G: np.clip(0.5 - 0.1 * early + 0.04 * rng.normal(size=n), 0, 1),
        S.GRAD_NORM_G: np.exp(0.3 * rng.normal(size=n)) * (1 + early),
        S.GRAD_NORM_D: 0.8 * np.exp(0.3 * rng.normal(size=n)),
        S.D_REAL: 0.56 + 0.2 * early + 0.02 * rng.normal(size=n),
        S.D_FAKE: 0.44 - 0.2 * early + 0.02 * rng.normal(size=n),
        S.D_FAKE_G: 0.45 - 0.2 * early + 0.02 * rng.normal(size=n),
        S.D_ACC: np.clip(0.6 + 0.2 * early + 0.03 * rng.normal(size=n), 0, 1),
        S.D_STEPS: np.ones(n),
        S.D_OUT_MIN: -3 - 0.3 * rng.random(n),
        S.D_OUT_MAX: 3 + 0.3 * rng.random(n),
        S.D_PROB_SATURATED: np.zeros(n),
        S.G_HAS_GRAD: np.ones(n),
        S.D_MOVED_IN_G_STEP: np.zeros(n),
        S.SKIPPED_G: np.zeros(n),
        S.SKIPPED_D: np.zeros(n),
        S.NONFINITE: np.zeros(n),
        S.DIV_MODES_COVERED: pd.Series(covered, index=evals),
        S.DIV_MODES_TOTAL: pd.Series(np.full(len(evals), 8), index=evals),
        S.DIV_HQ_SHARE: pd.Series(0.3 + 0.6 * ramp + 0.01 * rng.normal(size=len(evals)), index=evals),
        S.DIV_PRECISION: pd.Series(0.3 + 0.55 * ramp, index=evals),
        S.DIV_RECALL: pd.Series(0.2 + 0.6 * ramp, index=evals),
        S.DIV_RATIO: pd.Series(0.4 + 0.55 * ramp, index=evals),
    }


@pytest.fixture
def healthy():
    """Factory of healthy metric dicts (a fresh copy per call): ``healthy(seed=0)``."""
    return _healthy_metrics


@pytest.fixture
def restore_registry():
    """Undo registrations a test makes, so other tests see only the built-in detectors."""
    saved = dict(DETECTORS)
    yield
    DETECTORS.clear()
    DETECTORS.update(saved)
