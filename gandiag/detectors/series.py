"""Series helpers shared by the detectors: reading, smoothing, windows, periodicity.

Window lengths are counted in recorded points of a series, not in optimizer
steps, so a rule reads the same whether a metric was logged every step or every
tenth; positions are turned back into steps only when a finding is written.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.signal import savgol_filter

from gandiag.rundir import Run


def finite_series(run: Run, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one metric, keeping finite values only; empty arrays if absent."""
    s = run.series(name)
    values = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(values)
    return s.index.to_numpy(dtype=np.int64)[keep], values[keep]


def aligned(run: Run, names: list[str]) -> pd.DataFrame:
    """The rows where every metric in ``names`` is finite (empty if one is missing)."""
    if any(n not in run.metrics.columns for n in names):
        return pd.DataFrame(columns=names, dtype=float)
    df = run.metrics[names].apply(pd.to_numeric, errors="coerce").astype(float)
    return df[np.isfinite(df.to_numpy()).all(axis=1)]


def step_span(run: Run) -> tuple[int, int] | None:
    """First and last recorded step of the run, or None for a run with no rows."""
    if run.metrics.empty:
        return None
    return int(run.metrics.index.min()), int(run.metrics.index.max())


def warmup_end(run: Run, warmup_fraction: float) -> float:
    """The step before which the run counts as warming up (a fraction of its recorded span)."""
    span = step_span(run)
    if span is None:
        return math.inf
    first, last = span
    return first + warmup_fraction * (last - first)


def rolling_median(values: np.ndarray, window: int) -> np.ndarray:
    """Centred rolling median; it shrinks at the ends rather than leaving NaN."""
    return pd.Series(values, dtype=float).rolling(window, center=True, min_periods=1).median().to_numpy()


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) positions of every run of consecutive True values."""
    m = np.asarray(mask, dtype=bool)
    if m.size == 0:
        return []
    edges = np.diff(np.concatenate([[0], m.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist()))


def sustained_runs(mask: np.ndarray, min_points: int, min_fraction: float = 0.0) -> list[tuple[int, int]]:
    """The runs of True at least ``min_points`` long and at least ``min_fraction`` of the mask."""
    need = max(min_points, math.ceil(min_fraction * len(mask)))
    return [(a, b) for a, b in true_runs(mask) if b - a + 1 >= need]


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def swing(values: np.ndarray) -> float:
    """Half the 5-95% spread: a sine's amplitude, robust to a few outliers."""
    if len(values) == 0:
        return 0.0
    lo, hi = np.percentile(values, [5, 95])
    return float(hi - lo) / 2


def rolling_swing(values: np.ndarray, window: int) -> np.ndarray:
    """:func:`swing` over a centred rolling window."""
    s = pd.Series(values, dtype=float).rolling(window, center=True, min_periods=max(1, window // 2))
    return ((s.quantile(0.95) - s.quantile(0.05)) / 2).to_numpy()


def median_spacing(steps: np.ndarray) -> float:
    """Typical number of steps between two recorded points (1 when it cannot be told)."""
    if len(steps) < 2:
        return 1.0
    return float(np.median(np.diff(steps)))


def autocorrelation(values: np.ndarray, max_lag: int) -> np.ndarray:
    """Biased sample autocorrelation at lags 0..max_lag (zeros for a constant series)."""
    x = np.asarray(values, dtype=float) - np.mean(values)
    n = len(x)
    spectrum = np.fft.rfft(x, 2 * n)
    acov = np.fft.irfft(spectrum * np.conj(spectrum))[: max_lag + 1]
    if acov[0] <= 0:
        return np.zeros(max_lag + 1)
    return acov / acov[0]


@dataclass(frozen=True)
class Periodicity:
    """How periodic a detrended signal is, and how its swing evolves.

    Attributes:
        period: points per cycle (the autocorrelation peak after the deepest
            trough), NaN when there is no trough-then-peak structure.
        trough: the deepest autocorrelation (negative for a cycle).
        peak: the autocorrelation at ``period``.
        repeat: the highest autocorrelation within 10% of twice the period:
            a cycle repeats, a slow random wander does not (0 when out of reach).
        thirds: :func:`swing` of the residual in the first, middle and last third.
        tail_range: 1-99% range of the smoothed signal over the last third.
        residual: the smoothed signal minus its slow trend.
    """

    period: float
    trough: float
    peak: float
    repeat: float
    thirds: tuple[float, float, float]
    tail_range: float
    residual: np.ndarray = field(repr=False)

    @property
    def growth(self) -> float:
        """Swing of the last third over the first."""
        return _safe_ratio(self.thirds[2], self.thirds[0])

    @property
    def late_growth(self) -> float:
        """Swing of the last third over the middle one: still growing at the end?"""
        return _safe_ratio(self.thirds[2], self.thirds[1])

    @property
    def persistence(self) -> float:
        """Swing of the last third over the larger earlier one: below 1 means it is dying out."""
        return _safe_ratio(self.thirds[2], max(self.thirds[0], self.thirds[1]))

    @property
    def relative_swing(self) -> float:
        """Last-third swing against the signal's range there (~0.5 for a pure sine)."""
        return _safe_ratio(self.thirds[2], self.tail_range)


def _safe_ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return math.inf if num > 0 else 0.0


def periodicity(
    values: np.ndarray, smooth_window: int, trend_fraction: float, tail_fraction: float, min_period: int
) -> Periodicity:
    """Separate a signal's slow trend from its swing and measure the swing's cycle.

    The signal is smoothed with a short rolling median (minibatch noise), the
    trend is a long moving average (a first-order Savitzky-Golay filter, which
    fits a line at the ends instead of bending towards them), and the
    autocorrelation of the residual over the last ``tail_fraction`` of the run
    is searched for a trough followed by a peak at no more than three times the
    trough's lag, as a cycle gives (cos: trough at P/2, peak at P), and for the
    cycle's repeat near 2P.
    """
    x = np.asarray(values, dtype=float)
    n = len(x)
    smooth = rolling_median(x, smooth_window)
    window = max(3, int(round(trend_fraction * n)))
    window = min(window if window % 2 else window + 1, n if n % 2 else n - 1)
    trend = savgol_filter(smooth, window, 1, mode="interp") if window >= 3 else np.full(n, smooth.mean())
    residual = smooth - trend

    thirds = tuple(swing(part) for part in np.array_split(residual, 3))
    tail_range = float(np.subtract(*np.percentile(np.array_split(smooth, 3)[2], [99, 1])))

    tail = residual[n - max(2, int(round(tail_fraction * n))):]
    period, trough, peak, repeat = math.nan, 0.0, 0.0, 0.0
    max_lag = len(tail) // 2
    if max_lag > min_period:
        acf = autocorrelation(tail, max_lag)
        k_trough = int(np.argmin(acf[1:])) + 1
        trough = float(acf[k_trough])
        stop = min(3 * k_trough, max_lag)
        if trough < 0 and stop > k_trough + 1:
            k_peak = k_trough + 1 + int(np.argmax(acf[k_trough + 1 : stop + 1]))
            if k_peak >= min_period and acf[k_peak] > 0:
                peak = float(acf[k_peak])
                period = _refine_peak(acf, k_peak)
                lo, hi = int(math.floor(1.8 * period)), int(math.ceil(2.2 * period))
                if hi <= max_lag:
                    repeat = float(acf[lo : hi + 1].max())
    return Periodicity(period, trough, peak, repeat, thirds, tail_range, residual)


def _refine_peak(acf: np.ndarray, k: int) -> float:
    # A parabola through the peak and its neighbours places it between lags.
    if k + 1 >= len(acf):
        return float(k)
    left, mid, right = acf[k - 1], acf[k], acf[k + 1]
    curvature = left - 2 * mid + right
    if curvature >= 0:
        return float(k)
    return float(k + 0.5 * (left - right) / curvature)
