"""Plots of one run's metrics, its findings and its samples, and overlays across runs.

Every function takes ``ax=None`` and returns ``(fig, ax)``. With no ``ax`` a new
:class:`matplotlib.figure.Figure` is made directly, so pyplot, the backend and the
global rcParams are never touched; the seaborn theme is applied in a context manager.

    python -c "from gandiag.rundir import load_run; from gandiag.report.plots import plot_losses; \\
        plot_losses(load_run('runs/x'))[0].savefig('losses.png')"
"""
from __future__ import annotations

import contextlib
import zlib
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from gandiag import schema
from gandiag.rundir import Run

# One colour per finding kind, shared by the shaded intervals and the HTML badges.
KIND_COLORS: dict[str, str] = {
    "vanishing_generator_gradient": "#1f77b4",
    "mode_collapse": "#d62728",
    "oscillation": "#ff7f0e",
    "discriminator_too_strong": "#9467bd",
    "discriminator_too_weak": "#8c564b",
    "divergence": "#e377c2",
    "generator_gets_no_gradient": "#17becf",
    "output_mismatch": "#bcbd22",
    "saturated_probabilities": "#2ca02c",
    "discriminator_changed_in_generator_step": "#7f7f7f",
}
# Kinds added later by new detectors get a stable colour from this list.
_SPARE_COLORS = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d")

SPAN_ALPHA = 0.18
SPAN_GID = "finding:"             # gid prefix of a shaded finding interval, then its kind
LAST_FINITE_GID = "last-finite-step"
NOT_RECORDED = "not recorded"
MAX_GRID_IMAGES = 64
_MAX_POINTS = 2000                # scatter points per set; more only slows the PNG down

# Metrics recorded at every step: a NaN tail in one of them means the run went non-finite.
_DENSE_METRICS = (schema.LOSS_G, schema.LOSS_D, schema.GRAD_NORM_G, schema.GRAD_NORM_D)
_LOG_METRICS = (schema.GRAD_NORM_G, schema.GRAD_NORM_D, schema.LOGIT_GRAD_G)
# Losses of different variants live on different scales (a WGAN critic's scores
# are unbounded, BCE losses sit near 1). When the runs' typical |loss| differ by
# more than this factor, a loss panel goes symlog, linear up to the smallest one:
# on a linear axis the large ones would flatten the others to a line.
_LOSS_METRICS = (schema.LOSS_G, schema.LOSS_D)
_LOSS_SCALE_SPREAD = 10.0

_METRIC_COLORS = {
    schema.LOSS_G: "#1f77b4",
    schema.LOSS_D: "#ff7f0e",
    schema.GRAD_NORM_G: "#1f77b4",
    schema.GRAD_NORM_D: "#ff7f0e",
    schema.LOGIT_GRAD_G: "#2ca02c",
    schema.D_REAL: "#2ca02c",
    schema.D_FAKE: "#d62728",
    schema.D_ACC: "#555555",
}


def kind_color(kind: str) -> str:
    """The colour of a finding kind, as ``#rrggbb``; stable for kinds not in :data:`KIND_COLORS`."""
    if kind in KIND_COLORS:
        return KIND_COLORS[kind]
    return _SPARE_COLORS[zlib.crc32(kind.encode()) % len(_SPARE_COLORS)]


@contextlib.contextmanager
def _theme():
    with sns.axes_style("whitegrid"), sns.plotting_context("paper"):
        yield


def _new_axes(ax: Axes | None, figsize=(7.0, 3.0)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _finite(s: pd.Series) -> pd.Series:
    return s.replace([np.inf, -np.inf], np.nan)


def _window(n: int) -> int:
    return int(min(200, max(1, n // 50)))


def run_label(run: Run) -> str:
    """``"<loss> seed=<seed>"`` from the run's config, falling back to the run's name."""
    cfg = run.meta.get("config") or {}
    loss, seed = cfg.get("loss"), cfg.get("seed")
    if loss is None and seed is None:
        return run.name
    return f"{loss if loss is not None else '?'} seed={seed if seed is not None else '?'}"


def last_finite_step(run: Run) -> int | None:
    """The last step before the run's metrics went NaN or Inf, or None if they never did.

    A step counts as non-finite when the monitor flagged it (``nonfinite``), when a
    per-step metric is ±Inf, or when a per-step metric turns NaN and stays NaN to the
    end (a sparse NaN is only a metric that was not recorded on that step).
    """
    df = run.metrics
    if df.empty:
        return None
    bad: list[int] = []
    if schema.NONFINITE in df.columns:
        flagged = df.index[df[schema.NONFINITE].fillna(0) > 0]
        if len(flagged):
            bad.append(int(flagged[0]))
    for name in _DENSE_METRICS:
        if name not in df.columns:
            continue
        col = df[name].to_numpy(dtype=float)
        inf = np.flatnonzero(np.isinf(col))
        if len(inf):
            bad.append(int(df.index[inf[0]]))
        finite = np.flatnonzero(np.isfinite(col))
        if len(finite) and finite[-1] < len(col) - 1:
            bad.append(int(df.index[finite[-1] + 1]))
    if not bad:
        return None
    first_bad = min(bad)
    before = df.index[df.index < first_bad]
    return int(before[-1]) if len(before) else None


def _shade_findings(ax: Axes, findings: Iterable[Mapping], steps: pd.Index) -> list:
    handles: dict[str, Patch] = {}
    # A one-step finding still needs a visible width.
    span = float(steps[-1] - steps[0]) if len(steps) > 1 else 1.0
    pad = max(0.5, span * 0.003)
    for f in findings:
        kind = str(f["kind"])
        start, end = float(f["start_step"]), float(f["end_step"])
        if end - start < 2 * pad:
            mid = (start + end) / 2
            start, end = mid - pad, mid + pad
        color = kind_color(kind)
        patch = ax.axvspan(start, end, color=color, alpha=SPAN_ALPHA, lw=0, zorder=0)
        patch.set_gid(SPAN_GID + kind)
        handles.setdefault(kind, Patch(facecolor=color, alpha=min(1.0, SPAN_ALPHA * 3), label=kind))
    return list(handles.values())


def _mark_last_finite(ax: Axes, run: Run) -> list:
    step = last_finite_step(run)
    if step is None:
        return []
    line = ax.axvline(step, color="#b00020", ls="--", lw=1.2, zorder=3)
    line.set_gid(LAST_FINITE_GID)
    return [Line2D([], [], color="#b00020", ls="--", lw=1.2, label=f"last finite step {step}")]


def _plot_series(ax: Axes, s: pd.Series, label: str, color: str | None, positive: bool, smooth: bool) -> None:
    s = _finite(s)
    if positive:
        s = s.where(s > 0)
    s = s.dropna()
    if len(s) == 1:
        ax.plot(s.index, s.to_numpy(), "o", color=color, label=label, ms=4)
        return
    if smooth and len(s) >= 20:
        ax.plot(s.index, s.to_numpy(), color=color, alpha=0.3, lw=0.7)
        mean = s.rolling(_window(len(s)), center=True, min_periods=1).mean()
        ax.plot(mean.index, mean.to_numpy(), color=color, lw=1.5, label=label)
    else:
        marker = "o" if len(s) < 60 else None
        ax.plot(s.index, s.to_numpy(), color=color, lw=1.3, marker=marker, ms=3, label=label)


def _finish(ax: Axes, run: Run, findings, handles: list, missing: list[str], ylabel: str) -> None:
    steps = run.metrics.index
    extra = []
    if findings and len(steps):
        extra += _shade_findings(ax, findings, steps)
    elif findings:
        extra += _shade_findings(ax, findings, pd.Index([0]))
    extra += _mark_last_finite(ax, run)
    if missing and not handles:
        ax.text(0.5, 0.5, f"{NOT_RECORDED}: {', '.join(missing)}", transform=ax.transAxes,
                ha="center", va="center", color="#777777")
    elif missing:
        ax.text(0.01, 0.97, f"{NOT_RECORDED}: {', '.join(missing)}", transform=ax.transAxes,
                ha="left", va="top", color="#777777", fontsize="small")
    ax.set_ylabel(ylabel)
    ax.set_xlabel("step")
    legend = [h for h in ax.get_legend_handles_labels()[0]] + extra
    if legend:
        ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  fontsize="x-small", frameon=False, borderaxespad=0.0)


def _timeseries(run: Run, findings, ax, names: Sequence[str], ylabel: str, title: str,
                log: bool = False, smooth: bool = True, labels: Mapping[str, str] | None = None):
    with _theme():
        fig, ax = _new_axes(ax)
        present, missing = [], []
        for name in names:
            s = run.series(name)
            (present if len(s) else missing).append(name)
            if len(s):
                _plot_series(ax, s, (labels or {}).get(name, name), _METRIC_COLORS.get(name), log, smooth)
        if log:
            ax.set_yscale("log")
        ax.set_title(title, loc="left", fontsize="medium")
        _finish(ax, run, list(findings), present, missing, ylabel)
    return fig, ax


def plot_losses(run: Run, findings: Iterable[Mapping] = (), ax: Axes | None = None) -> tuple[Figure, Axes]:
    """G and D losses per step: raw values, faint, under a rolling mean.

    Example:
        >>> fig, ax = plot_losses(run, findings)
        >>> fig.savefig("losses.png")
    """
    return _timeseries(run, findings, ax, (schema.LOSS_G, schema.LOSS_D), "loss", "Losses")


def plot_grad_norms(run: Run, findings: Iterable[Mapping] = (), ax: Axes | None = None) -> tuple[Figure, Axes]:
    """G and D gradient norms and G's per-sample logit gradient, on a log scale."""
    return _timeseries(run, findings, ax, _LOG_METRICS, "norm (log)", "Gradient norms", log=True)


def plot_confidence(run: Run, findings: Iterable[Mapping] = (), ax: Axes | None = None) -> tuple[Figure, Axes]:
    """Mean D output on real and fake samples, and D's accuracy."""
    ylabel = "critic score / accuracy" if run.d_output == "critic" else "probability / accuracy"
    return _timeseries(run, findings, ax, (schema.D_REAL, schema.D_FAKE, schema.D_ACC), ylabel,
                       "Discriminator confidence")


_MODES_FRACTION = "modes covered (fraction)"
_DIVERSITY = (
    (schema.DIV_HQ_SHARE, "hq share"),
    (schema.DIV_RECALL, "recall"),
    (schema.DIV_COVERAGE, "coverage"),
    (schema.DIV_RATIO, "diversity ratio"),
    # Share of G's mass that moved to other modes since the last evaluation: high
    # while coverage stays low is mode hopping (the oscillation finding).
    (schema.DIV_MODE_SHIFT, "mode shift"),
)


def _modes_fraction(run: Run) -> pd.Series:
    covered, total = run.series(schema.DIV_MODES_COVERED), run.series(schema.DIV_MODES_TOTAL)
    if covered.empty or total.empty:
        return pd.Series(dtype=float)
    frac = covered / total.reindex(covered.index).where(lambda t: t > 0)
    return frac.dropna()


def plot_diversity(run: Run, findings: Iterable[Mapping] = (), ax: Axes | None = None) -> tuple[Figure, Axes]:
    """The diversity metrics the run recorded: modes covered as a fraction of all modes,
    high-quality share, recall, coverage, diversity ratio and mode shift."""
    with _theme():
        fig, ax = _new_axes(ax)
        palette = sns.color_palette("dark", 1 + len(_DIVERSITY))
        present = []
        frac = _modes_fraction(run)
        if len(frac):
            _plot_series(ax, frac, _MODES_FRACTION, palette[0], False, smooth=False)
            present.append(_MODES_FRACTION)
        for (name, label), color in zip(_DIVERSITY, palette[1:]):
            s = run.series(name)
            if len(s):
                _plot_series(ax, s, label, color, False, smooth=False)
                present.append(label)
        missing = [] if present else ["div/*"]
        ax.set_title("Diversity", loc="left", fontsize="medium")
        _finish(ax, run, list(findings), present, missing, "share")
    return fig, ax


def _subsample(x: np.ndarray, n: int = _MAX_POINTS) -> np.ndarray:
    if len(x) <= n:
        return x
    return x[np.linspace(0, len(x) - 1, n).astype(int)]


def _image_grid(images: np.ndarray) -> tuple[np.ndarray, bool]:
    """Tile up to 64 images [n, C, H, W] into one array; returns (grid, is_rgb)."""
    images = np.nan_to_num(images[:MAX_GRID_IMAGES].astype(np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    n, c, h, w = images.shape
    rgb = c == 3
    # Generators end in tanh, so [-1, 1] is the expected range; data already in [0, 1] is kept.
    if images.min() < 0:
        images = (images + 1.0) / 2.0
    images = np.clip(images, 0.0, 1.0)
    images = images.transpose(0, 2, 3, 1) if rgb else images[:, :1].transpose(0, 2, 3, 1)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    depth = 3 if rgb else 1
    grid = np.ones((rows * (h + 1) + 1, cols * (w + 1) + 1, depth), dtype=np.float32)
    for i in range(n):
        r, q = divmod(i, cols)
        grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + q * (w + 1):1 + q * (w + 1) + w] = images[i]
    return (grid if rgb else grid[..., 0]), rgb


def _pca_2d(x: np.ndarray, fit_on: np.ndarray) -> np.ndarray:
    fit_on = fit_on[np.isfinite(fit_on).all(axis=1)]
    mean = fit_on.mean(axis=0)
    _, _, vt = np.linalg.svd(fit_on - mean, full_matrices=False)
    return (x - mean) @ vt[:2].T


def plot_samples(samples: np.ndarray, real: np.ndarray | None = None, ax: Axes | None = None,
                 title: str | None = None) -> tuple[Figure, Axes]:
    """Generated samples, drawn by their shape.

    2-D points are scattered over faint real points; images ``[n, C, H, W]`` (or
    ``[n, H, W]``) become a grid of up to 64; other vectors ``[n, d]`` are projected
    onto their first two principal components, fitted on ``real`` when it is given.

    Example:
        >>> fig, ax = plot_samples(run.load_samples(1000), run.load_real(), title="step 1000")
    """
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim not in (2, 4):
        raise ValueError(f"Expected samples of shape [n, d], [n, H, W] or [n, C, H, W] but got {x.shape}")
    r = None
    if real is not None:
        r = np.asarray(real, dtype=np.float32)
        if r.ndim == 1:
            r = r[:, None]
        if r.ndim == 3:
            r = r[:, None]
        if r.shape[1:] != x.shape[1:]:
            raise ValueError(f"Expected real samples of shape [n, {', '.join(map(str, x.shape[1:]))}] "
                             f"like the fakes but got {r.shape}")
    with _theme():
        fig, ax = _new_axes(ax, figsize=(3.5, 3.5))
        if x.ndim == 4:
            grid, rgb = _image_grid(x)
            ax.imshow(grid, cmap=None if rgb else "gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_axis_off()
        elif x.shape[1] == 1:
            bins = 40
            if r is not None:
                ax.hist(_finite_rows(r)[:, 0], bins=bins, color="#999999", alpha=0.5, label="real", density=True)
            ax.hist(_finite_rows(x)[:, 0], bins=bins, color="#d62728", alpha=0.6, label="fake", density=True)
        else:
            fx = _finite_rows(x)
            if x.shape[1] > 2:
                fit = _finite_rows(r) if r is not None and len(_finite_rows(r)) > 2 else fx
                if len(fit) > 2:
                    fx = _pca_2d(fx, fit)
                    r = _pca_2d(r, fit) if r is not None else None
                else:
                    fx = fx[:, :2]
                ax.set_xlabel("PC 1")
                ax.set_ylabel("PC 2")
            if r is not None:
                rr = _subsample(_finite_rows(r))
                ax.scatter(rr[:, 0], rr[:, 1], s=4, c="#999999", alpha=0.25, lw=0, label="real")
            fx = _subsample(fx)
            ax.scatter(fx[:, 0], fx[:, 1], s=5, c="#d62728", alpha=0.6, lw=0, label="fake")
            dropped = len(x) - len(_finite_rows(x))
            if dropped:
                ax.text(0.02, 0.98, f"{dropped} non-finite samples not shown", transform=ax.transAxes,
                        ha="left", va="top", fontsize="x-small", color="#b00020")
            ax.set_aspect("equal", adjustable="datalim")
            ax.tick_params(labelsize="x-small")
        if title is not None:
            ax.set_title(title, fontsize="small")
    return fig, ax


def _finite_rows(x: np.ndarray) -> np.ndarray:
    return x[np.isfinite(x).all(axis=1)]


def plot_overlay(runs: Sequence[Run], metric: str, ax: Axes | None = None, *,
                 logy: bool | None = None) -> tuple[Figure, Axes]:
    """One line per run for one metric, for comparing loss variants and seeds.

    Runs of one loss variant share a colour; seeds differ by line style. Per-step
    metrics are drawn as a rolling mean. ``schema.DIV_MODES_COVERED`` is drawn as a
    fraction of ``schema.DIV_MODES_TOTAL`` where the run recorded the total.
    ``logy`` defaults to a log scale for gradient norms. A loss panel whose runs'
    typical magnitudes (90th percentile of |loss|) differ more than tenfold is
    drawn on a symlog scale, linear up to the smallest of them.

    Example:
        >>> fig, ax = plot_overlay(runs, schema.LOSS_G)
    """
    runs = list(runs)
    if logy is None:
        logy = metric in _LOG_METRICS or metric.startswith((schema.GRAD_NORM_G_LAYER, schema.GRAD_NORM_D_LAYER))
    variants = list(dict.fromkeys(str((r.meta.get("config") or {}).get("loss")) for r in runs))
    with _theme():
        fig, ax = _new_axes(ax)
        colors = dict(zip(variants, sns.color_palette("tab10" if len(variants) <= 10 else "husl", len(variants))))
        styles = ("-", "--", ":", "-.")
        seen: dict[str, int] = {}
        drawn = 0
        scales = []
        for run in runs:
            variant = str((run.meta.get("config") or {}).get("loss"))
            k = seen.get(variant, 0)
            seen[variant] = k + 1
            if metric == schema.DIV_MODES_COVERED and len(_modes_fraction(run)):
                s = _modes_fraction(run)
            else:
                s = run.series(metric)
            s = _finite(s)
            if logy:
                s = s.where(s > 0)
            s = s.dropna()
            if s.empty:
                continue
            if len(s) >= 100:
                s = s.rolling(_window(len(s)), center=True, min_periods=1).mean()
            marker = "o" if len(s) < 60 else None
            ax.plot(s.index, s.to_numpy(), color=colors[variant], ls=styles[k % len(styles)], lw=1.2,
                    marker=marker, ms=3, label=run_label(run))
            drawn += 1
            if metric in _LOSS_METRICS:
                scales.append(float(np.percentile(np.abs(s.to_numpy()), 90)))
        ylabel = _MODES_FRACTION if metric == schema.DIV_MODES_COVERED else metric
        if logy:
            ax.set_yscale("log")
        elif len(scales) > 1 and min(scales) > 0 \
                and max(scales) > _LOSS_SCALE_SPREAD * min(scales):
            ax.set_yscale("symlog", linthresh=min(scales))
            ylabel += " (symlog)"
        ax.set_ylabel(ylabel)
        ax.set_xlabel("step")
        ax.set_title(metric, loc="left", fontsize="medium")
        if not drawn:
            ax.text(0.5, 0.5, f"{metric}: {NOT_RECORDED}", transform=ax.transAxes,
                    ha="center", va="center", color="#777777")
        else:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="x-small", frameon=False,
                      borderaxespad=0.0, ncol=1 if drawn <= 30 else 2)
    return fig, ax
