"""One self-contained HTML report over runs and their findings.

The file needs nothing else to be read: plots are PNGs embedded as base64 data
URIs, the CSS is inline and there is no JavaScript.

    python -c "from gandiag.rundir import load_run; from gandiag.report import write_report; \\
        print(write_report([load_run('runs/x')]))"
"""
from __future__ import annotations

import base64
import io
import math
import os
import time
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from gandiag import schema
from gandiag.report import plots
from gandiag.report.text import FindingsArg, findings_by_run, step_range
from gandiag.rundir import Run

# One line per finding kind for the legend; a ``descriptions`` argument (the
# detector registry's) takes precedence over these.
KIND_DESCRIPTIONS: dict[str, str] = {
    "vanishing_generator_gradient": "The generator's gradient has shrunk towards zero, so G has all but stopped learning.",
    "mode_collapse": "The samples cover only a few of the data's modes, or their spread has shrunk.",
    "oscillation": "Losses or D's outputs swing back and forth instead of settling.",
    "discriminator_too_strong": "D tells real from fake almost perfectly and leaves G little signal to follow.",
    "discriminator_too_weak": "D cannot tell real from fake, so G's updates have no direction.",
    "divergence": "Losses or gradients blew up or turned NaN/Inf.",
    "generator_gets_no_gradient": "No gradient reached G's parameters (a detached output or a missing backward pass).",
    "output_mismatch": "D's outputs do not match what the loss expects (probabilities where logits belong, or the reverse).",
    "saturated_probabilities": "D's probabilities sit at exactly 0 or 1, where log-losses and their gradients break down.",
    "discriminator_changed_in_generator_step": "D's weights changed during a G step, so the G update also moved D.",
}

DPI = 90
FIG_WIDTH = 7.0
EARLY_SHARE = 0.1               # "early" = the first 10% of a run's steps
OVERLAY_METRICS = (schema.LOSS_G, schema.LOSS_D, schema.GRAD_NORM_G, schema.D_FAKE, schema.DIV_MODES_COVERED)
DASH = "\u2014"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:1.5em auto;max-width:60em;
 padding:0 1em;color:#222;line-height:1.4}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{margin-bottom:.3em}
.meta{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:.05em .45em;margin:.1em .15em .1em 0;border-radius:.7em;font-size:.85em;
 white-space:nowrap}
.sev{font-weight:600;text-transform:uppercase;font-size:.75em}
.sev-info{color:#2a6fb0}.sev-warning{color:#b36b00}.sev-critical{color:#b00020}
.badge.sev-critical{outline:2px solid #b00020}
table.evidence{margin:0;font-size:.85em}table.evidence td,table.evidence th{border-color:#eee;padding:.1em .4em}
ul.legend{list-style:none;padding-left:0;columns:2 26em}ul.legend li{margin:.15em 0;break-inside:avoid}
.none{color:#2e7d32;font-weight:600}.unknown{color:#777;font-style:italic}
.warn{color:#b00020}
img{max-width:100%;height:auto;display:block;margin:.4em 0}
dl.config{display:grid;grid-template-columns:max-content auto;gap:.1em 1em;margin:.4em 0;font-size:.9em}
dl.config dt{color:#666}dl.config dd{margin:0}
"""


def _margins(height_in: float) -> dict:
    # Fixed margins instead of constrained layout, which doubles the render time; the
    # right margin holds the legends that the plots place outside their axes.
    return {"left": 0.8 / FIG_WIDTH, "right": 1 - 1.9 / FIG_WIDTH,
            "bottom": 0.5 / height_in, "top": 1 - 0.3 / height_in}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(fig, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="{_png(fig)}">'


def _text_color(hex_color: str) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#fff"


def _badge(kind: str, extra: str = "", severity: str | None = None) -> str:
    color = plots.kind_color(kind)
    cls = f"badge sev-{severity}" if severity else "badge"
    return (f'<span class="{cls}" style="background:{color};color:{_text_color(color)}">'
            f"{escape(kind)}{escape(extra)}</span>")


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return str(v) if not math.isfinite(v) else f"{v:.4g}"
    if isinstance(value, (list, tuple)):
        items = [_fmt(v) for v in value[:8]]
        return "[" + ", ".join(items) + (", \u2026" if len(value) > 8 else "") + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in list(value.items())[:8]) + "}"
    text = str(value)
    return text if len(text) <= 200 else text[:199] + "\u2026"


def _config(run: Run) -> dict:
    return run.meta.get("config") or {}


def _early_median(run: Run, name: str) -> float | None:
    s = plots._finite(run.series(name)).dropna()
    steps = run.metrics.index
    if s.empty or not len(steps):
        return None
    cutoff = steps[0] + EARLY_SHARE * (steps[-1] - steps[0])
    early = s[s.index <= cutoff]
    return float(early.median()) if len(early) else None


def _final_modes(run: Run) -> str:
    covered, total = run.series(schema.DIV_MODES_COVERED), run.series(schema.DIV_MODES_TOTAL)
    if covered.empty or total.empty:
        return DASH
    step = covered.index[-1]
    t = total.loc[step] if step in total.index else total.iloc[-1]
    c = covered.iloc[-1]
    if not (math.isfinite(c) and math.isfinite(t)):
        return DASH
    # The step says how old "last" is: diversity is measured on a cadence.
    return (f"{_fmt(int(c) if float(c).is_integer() else c)}/{_fmt(int(t) if float(t).is_integer() else t)}"
            f" @{int(step)}")


def _num(value: float | None) -> str:
    return DASH if value is None else f"{value:.3g}"


def _group_by_variant(runs: list[Run], per_run: list) -> tuple[list[Run], list]:
    order: dict[str, int] = {}
    for r in runs:
        order.setdefault(str(_config(r).get("loss")), len(order))

    def key(i: int):
        cfg = _config(runs[i])
        seed = cfg.get("seed")
        return (order[str(cfg.get("loss"))], seed if isinstance(seed, (int, float)) else math.inf, runs[i].name)

    idx = sorted(range(len(runs)), key=key)
    return [runs[i] for i in idx], [per_run[i] for i in idx]


def _legend(kinds: Sequence[str], descriptions: Mapping[str, str]) -> str:
    items = "".join(
        f"<li>{_badge(k)} {escape(descriptions.get(k, '(no description)'))}</li>" for k in kinds)
    return f'<section><h2>Finding kinds</h2><ul class="legend">{items}</ul></section>'


def _finding_badges(fs: list[dict] | None) -> str:
    if fs is None:
        return '<span class="unknown">not analysed</span>'
    if not fs:
        return '<span class="none">none</span>'
    by_kind: dict[str, list[dict]] = {}
    for f in fs:
        by_kind.setdefault(str(f["kind"]), []).append(f)
    rank = {s: i for i, s in enumerate(("info", "warning", "critical"))}
    out = []
    for kind, group in by_kind.items():
        worst = max((str(f["severity"]) for f in group), key=lambda s: rank.get(s, 0))
        out.append(_badge(kind, f" \u00d7{len(group)}" if len(group) > 1 else "", worst))
    return "".join(out)


def _comparison(runs: list[Run], per_run: list, anchors: list[str]) -> str:
    head = ("Run", "Variant", "Seed", "Data", "Status", "Findings", "Modes covered (last evaluation)",
            "Early \u2016\u2207G\u2016", "Early logit grad")
    rows = []
    for run, fs, anchor in zip(runs, per_run, anchors):
        cfg = _config(run)
        cells = [
            f'<td><a href="#{anchor}">{escape(run.name)}</a></td>',
            f"<td>{escape(_fmt(cfg.get('loss', DASH)))}</td>",
            f"<td>{escape(_fmt(cfg.get('seed', DASH)))}</td>",
            f"<td>{escape(_fmt(cfg.get('data', DASH)))}</td>",
            f"<td>{escape(run.status)}</td>",
            f"<td>{_finding_badges(fs)}</td>",
            f'<td class="num">{escape(_final_modes(run))}</td>',
            f'<td class="num">{_num(_early_median(run, schema.GRAD_NORM_G))}</td>',
            f'<td class="num">{_num(_early_median(run, schema.LOGIT_GRAD_G))}</td>',
        ]
        rows.append(f'<tr class="run-row">{"".join(cells)}</tr>')
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    note = f"Early values are medians over the first {EARLY_SHARE:.0%} of each run's steps."
    if any(run.d_output == "critic" for run in runs):
        # Not a saturation reading: under -mean(score) nothing can saturate.
        note += (" A G loss of −mean(critic score) (WGAN, hinge) sends exactly 1 per sample back through the "
                 "critic's output, so its logit grad is 1 by construction.")
    note = f'<p class="meta">{escape(note)}</p>'
    return (f'<section><h2>Comparison</h2><table id="comparison"><thead><tr>{header}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>{note}</section>")


def _overlays(runs: list[Run]) -> str:
    # One figure per data set: losses and diversity of ring8 and digits live on
    # different scales, and comparing variants only makes sense on the same data.
    by_data: dict[str, list[Run]] = {}
    for run in runs:
        by_data.setdefault(str(_config(run).get("data", "?")), []).append(run)
    parts = [_overlay_figure(group, data if len(by_data) > 1 else None) for data, group in by_data.items()]
    parts = [p for p in parts if p]
    if not parts:
        return ""
    return (f"<section><h2>Across runs</h2><p class=\"meta\">Runs of one variant share a colour; seeds differ "
            f"by line style. Per-step metrics are smoothed.</p>{''.join(parts)}</section>")


def _overlay_runs(runs: list[Run], metric: str) -> list[Run]:
    # d_fake is a probability for "logits"/"probs" outputs but a raw score for a
    # critic: on one axis the scores would flatten the probabilities to a line.
    if metric == schema.D_FAKE:
        return [r for r in runs if r.d_output != "critic"]
    return runs


def _overlay_figure(runs: list[Run], data: str | None) -> str:
    metrics = [m for m in OVERLAY_METRICS if any(len(r.series(m)) for r in _overlay_runs(runs, m))]
    if not metrics:
        return ""
    with plots._theme():
        height = 2.3 * len(metrics) + 0.4
        fig = Figure(figsize=(FIG_WIDTH, height))
        fig.subplots_adjust(**_margins(height), hspace=0.3)
        axes = fig.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
        for i, (metric, ax) in enumerate(zip(metrics, axes)):
            plots.plot_overlay(_overlay_runs(runs, metric), metric, ax=ax)
            if i and ax.get_legend() is not None:
                ax.get_legend().remove()
            if i < len(metrics) - 1:
                ax.set_xlabel("")
    skipped = [m for m in OVERLAY_METRICS if not any(len(r.series(m)) for r in runs)]
    note = (f'<p class="meta">Not recorded in any run: {escape(", ".join(skipped))}</p>' if skipped else "")
    critics = [r.name for r in runs if r.d_output == "critic"]
    if schema.D_FAKE in metrics and critics:
        note += (f'<p class="meta">{schema.D_FAKE} is a probability; critic runs (raw scores) are left out of '
                 f'its panel: {escape(", ".join(critics))}</p>')
    heading = f"<h3>{escape(data)}</h3>" if data is not None else ""
    return f"{heading}{_img(fig, 'metrics across runs')}{note}"


def _evidence(evidence: Mapping) -> str:
    if not evidence:
        return DASH
    rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(_fmt(v))}</td></tr>" for k, v in evidence.items())
    return f'<table class="evidence">{rows}</table>'


def _findings_table(fs: list[dict] | None, recorded: bool = True) -> str:
    if fs is None:
        return '<p class="unknown">Not analysed: no findings were given and the run has no findings.json.</p>'
    if not fs and not recorded:
        return '<p class="unknown">Nothing recorded yet, so nothing to find.</p>'
    if not fs:
        return '<p class="none">No findings.</p>'
    rows = []
    for f in sorted(fs, key=lambda f: (int(f["start_step"]), str(f["kind"]))):
        sev = str(f["severity"])
        rows.append(
            f'<tr class="finding"><td>{_badge(str(f["kind"]))}</td>'
            f'<td><span class="sev sev-{escape(sev)}">{escape(sev)}</span></td>'
            f"<td>{escape(step_range(f))}</td><td>{escape(str(f['message']))}</td>"
            f"<td>{_evidence(f.get('evidence') or {})}</td></tr>")
    return ("<table class=\"findings\"><thead><tr><th>Kind</th><th>Severity</th><th>Steps</th><th>Message</th>"
            f"<th>Evidence</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _timeseries_figure(run: Run, fs: list[dict]) -> str:
    with plots._theme():
        fig = Figure(figsize=(FIG_WIDTH, 9.0))
        fig.subplots_adjust(**_margins(9.0), hspace=0.3)
        axes = fig.subplots(4, 1, sharex=True)
        for ax, plot in zip(axes, (plots.plot_losses, plots.plot_grad_norms, plots.plot_confidence,
                                   plots.plot_diversity)):
            plot(run, fs, ax=ax)
        for ax in axes[:-1]:
            ax.set_xlabel("")
    return _img(fig, f"metrics of {run.name}")


def _snapshot_steps(run: Run) -> list[int]:
    steps = sorted(run.samples)
    if not steps:
        return []
    return list(dict.fromkeys([steps[0], steps[len(steps) // 2], steps[-1]]))


def _samples_figure(run: Run) -> str:
    steps = _snapshot_steps(run)
    if not steps:
        return '<p class="unknown">No sample snapshots recorded.</p>'
    real = run.load_real()
    snaps = [run.load_samples(s) for s in steps]
    images = snaps[0].ndim >= 3
    panels = [(f"step {s}", x, real) for s, x in zip(steps, snaps)]
    if images and real is not None:
        panels.append(("real", real, None))
    with plots._theme():
        fig = Figure(figsize=(FIG_WIDTH, FIG_WIDTH / max(3, len(panels)) + 0.4))
        fig.subplots_adjust(left=0.04, right=0.98, bottom=0.1, top=0.88, wspace=0.25)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (label, x, r) in zip(axes, panels):
            plots.plot_samples(x, None if images else r, ax=ax, title=label)
    return _img(fig, f"samples of {run.name} at steps {', '.join(map(str, steps))}")


def _run_section(run: Run, fs: list[dict] | None, anchor: str) -> str:
    cfg = _config(run)
    steps = run.metrics.index
    info = {
        "variant": cfg.get("loss", DASH), "data": cfg.get("data", DASH), "seed": cfg.get("seed", DASH),
        "configured steps": cfg.get("steps", DASH), "recorded steps":
            f"{len(steps)} ({steps[0]}\u2013{steps[-1]})" if len(steps) else "0",
        "D output": run.d_output, "status": run.status, "path": str(run.path),
    }
    lfs = plots.last_finite_step(run)
    if lfs is not None:
        info["last finite step"] = lfs
    config = "".join(f"<dt>{escape(k)}</dt><dd>{escape(_fmt(v))}</dd>" for k, v in info.items())
    return (f'<section class="run" id="{anchor}"><h2>{escape(run.name)}</h2><dl class="config">{config}</dl>'
            f"<h3>Findings</h3>{_findings_table(fs, recorded=not run.metrics.empty)}"
            f"<h3>Metrics</h3>{_timeseries_figure(run, fs or [])}"
            f"<h3>Samples</h3>{_samples_figure(run)}</section>")


def _default_out() -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path("reports") / f"report-{stamp}.html"
    n = 1
    while out.exists():
        out = Path("reports") / f"report-{stamp}-{n}.html"
        n += 1
    return out


def render_report(runs: Sequence[Run], findings: FindingsArg = None, title: str | None = None, *,
                  descriptions: Mapping[str, str] | None = None) -> str:
    """The report of :func:`write_report` as a string of HTML."""
    runs = list(runs)
    if not runs:
        raise ValueError("Expected at least one run but got none")
    per_run = findings_by_run(runs, findings)
    runs, per_run = _group_by_variant(runs, per_run)
    desc = {**KIND_DESCRIPTIONS, **(descriptions or {})}
    seen = [str(f["kind"]) for fs in per_run for f in fs or ()]
    kinds = list(dict.fromkeys([*desc, *seen]))
    if title is None:
        title = "gandiag report" + (f": {runs[0].name}" if len(runs) == 1 else "")
    generated = datetime.now().astimezone().isoformat(timespec="seconds")
    anchors = [f"run-{i}" for i in range(len(runs))]
    n_findings = sum(len(fs or ()) for fs in per_run)
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title><style>{_CSS}</style></head><body>',
        f"<header><h1>{escape(title)}</h1><p class=\"meta\">Generated {escape(generated)} \u00b7 "
        f"{len(runs)} run{'s' if len(runs) != 1 else ''} \u00b7 {n_findings} finding{'s' if n_findings != 1 else ''}"
        "</p></header>",
        _legend(kinds, desc),
    ]
    if len(runs) >= 2:
        parts += [_comparison(runs, per_run, anchors), _overlays(runs)]
    parts += [_run_section(r, fs, a) for r, fs, a in zip(runs, per_run, anchors)]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(runs: Sequence[Run], findings: FindingsArg = None, out: str | os.PathLike | None = None,
                 title: str | None = None, *, descriptions: Mapping[str, str] | None = None) -> Path:
    """Write one self-contained HTML report over runs and their findings.

    With several runs the report opens with a comparison table and metrics overlaid
    across runs; then each run has its findings, its metrics with the flagged
    intervals shaded, and its first, middle and last sample snapshots.

    Args:
        runs: runs from :func:`gandiag.rundir.load_run`; shown grouped by loss variant.
        findings: a list of findings per run, parallel to ``runs``; or a mapping
            from run name to findings; or None to read each run's ``findings.json``.
        out: the file to write; default ``reports/report-<timestamp>.html`` under
            the working directory. Missing parent folders are created.
        title: the report's title.
        descriptions: one line per finding kind for the legend (e.g. from the
            detector registry); kinds it lacks fall back to :data:`KIND_DESCRIPTIONS`.

    Returns:
        The path of the written file.

    Example:
        >>> path = write_report(runs, [detect(r) for r in runs], "reports/ring.html")
    """
    text = render_report(runs, findings, title, descriptions=descriptions)
    path = Path(out) if out is not None else _default_out()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
