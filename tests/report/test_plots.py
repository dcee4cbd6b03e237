import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.image import AxesImage

from gandiag import schema
from gandiag.report import plots

TIMESERIES = (plots.plot_losses, plots.plot_grad_norms, plots.plot_confidence, plots.plot_diversity)


def _spans(ax):
    return [p for p in ax.patches if (p.get_gid() or "").startswith(plots.SPAN_GID)]


def _legend_texts(ax):
    leg = ax.get_legend()
    return [t.get_text() for t in leg.get_texts()] if leg else []


@pytest.mark.parametrize("plot", TIMESERIES)
def test_new_figure_or_given_axes(make_run, plot):
    run = make_run()
    fig, ax = plot(run)
    assert ax.figure is fig and ax in fig.axes
    other = matplotlib.figure.Figure()
    given = other.add_subplot()
    fig2, ax2 = plot(run, ax=given)
    assert ax2 is given and fig2 is other


@pytest.mark.parametrize("plot", TIMESERIES)
def test_each_finding_is_shaded_with_one_legend_entry_per_kind(make_run, finding, plot):
    run = make_run(steps=300)
    fs = [finding("mode_collapse", 100, 200), finding("mode_collapse", 250, 280), finding("oscillation", 20, 60)]
    _, ax = plot(run, fs)
    spans = sorted((p.get_x(), p.get_x() + p.get_width(), p.get_gid()) for p in _spans(ax))
    assert [(round(a), round(b), g) for a, b, g in spans] == [
        (20, 60, plots.SPAN_GID + "oscillation"),
        (100, 200, plots.SPAN_GID + "mode_collapse"),
        (250, 280, plots.SPAN_GID + "mode_collapse"),
    ]
    colors = {g: p.get_facecolor()[:3] for p in _spans(ax) for g in [p.get_gid()]}
    assert np.allclose(colors[plots.SPAN_GID + "oscillation"], matplotlib.colors.to_rgb(plots.kind_color("oscillation")))
    labels = _legend_texts(ax)
    assert labels.count("mode_collapse") == 1 and labels.count("oscillation") == 1


def test_one_step_finding_still_has_width(make_run, finding):
    _, ax = plots.plot_losses(make_run(), [finding("divergence", 50, 50)])
    (span,) = _spans(ax)
    assert span.get_x() < 50 < span.get_x() + span.get_width()


def test_grad_norms_log_scale(make_run):
    _, ax = plots.plot_grad_norms(make_run())
    assert ax.get_yscale() == "log"
    labels = _legend_texts(ax)
    assert {schema.GRAD_NORM_G, schema.GRAD_NORM_D, schema.LOGIT_GRAD_G} <= set(labels)


def test_missing_metric_says_not_recorded(make_run):
    run = make_run(omit=(schema.GRAD_NORM_D,))
    _, ax = plots.plot_grad_norms(run)
    notes = [t.get_text() for t in ax.texts]
    assert any(plots.NOT_RECORDED in t and schema.GRAD_NORM_D in t for t in notes)
    assert schema.GRAD_NORM_D not in _legend_texts(ax)

    run = make_run("bare", omit=(schema.D_REAL, schema.D_FAKE, schema.D_ACC))
    _, ax = plots.plot_confidence(run)
    assert not ax.lines
    assert any(plots.NOT_RECORDED in t.get_text() for t in ax.texts)


def test_diversity_plots_only_recorded_series(make_run):
    _, ax = plots.plot_diversity(make_run(steps=100))
    labels = _legend_texts(ax)
    assert "modes covered (fraction)" in labels and "recall" in labels and "hq share" in labels
    assert "coverage" not in labels and "diversity ratio" not in labels
    (frac,) = [l for l in ax.lines if l.get_label() == "modes covered (fraction)"]
    assert frac.get_ydata()[0] == pytest.approx(1.0) and frac.get_ydata()[-1] == pytest.approx(3 / 8)


@pytest.mark.parametrize("plot", TIMESERIES)
def test_divergence_marks_last_finite_step(make_run, plot):
    run = make_run(steps=100, diverge_at=70)
    assert plots.last_finite_step(run) == 69
    _, ax = plot(run)
    marks = [l for l in ax.lines if l.get_gid() == plots.LAST_FINITE_GID]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [69, 69]
    for line in ax.lines:
        y = np.asarray(line.get_ydata(), dtype=float)
        assert not np.isinf(y).any()


def test_no_divergence_no_mark(make_run):
    run = make_run()
    assert plots.last_finite_step(run) is None
    _, ax = plots.plot_losses(run)
    assert not [l for l in ax.lines if l.get_gid() == plots.LAST_FINITE_GID]


@pytest.mark.parametrize("plot", TIMESERIES)
def test_single_step_run(make_run, finding, plot):
    run = make_run(steps=1, snapshots=1)
    _, ax = plot(run, [finding("divergence", 0, 0)])
    assert len(_spans(ax)) == 1
    assert any(len(l.get_xdata()) == 1 for l in ax.lines)


def test_samples_points_scatter_over_reals():
    rng = np.random.default_rng(0)
    fake, real = rng.normal(size=(100, 2)), rng.normal(size=(300, 2))
    _, ax = plots.plot_samples(fake, real, title="step 5")
    cols = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert [c.get_label() for c in cols] == ["real", "fake"]
    assert len(cols[1].get_offsets()) == 100
    assert not ax.images and ax.get_title() == "step 5"


def test_samples_images_grid_of_at_most_64():
    imgs = np.tanh(np.random.default_rng(0).normal(size=(100, 1, 8, 8)))
    _, ax = plots.plot_samples(imgs)
    (im,) = ax.images
    assert isinstance(im, AxesImage)
    assert not [c for c in ax.collections if isinstance(c, PathCollection)]
    assert im.get_array().shape == (8 * 9 + 1, 8 * 9 + 1)  # 8x8 tiles with 1-pixel gaps
    _, ax = plots.plot_samples(imgs[:5, :1].repeat(3, axis=1))
    assert ax.images[0].get_array().shape == (2 * 9 + 1, 3 * 9 + 1, 3)  # 5 images: 2 rows of 3


def test_samples_vectors_use_principal_components_of_real():
    rng = np.random.default_rng(0)
    real = np.zeros((200, 5))
    real[:, 3] = rng.normal(0, 10, 200)
    real[:, 4] = rng.normal(0, 1, 200)
    fake = real[:50] + 1.0
    _, ax = plots.plot_samples(fake, real)
    assert ax.get_xlabel() == "PC 1"
    offsets = [c for c in ax.collections if c.get_label() == "fake"][0].get_offsets()
    # PC 1 is dim 3 (up to sign), so the fakes' first coordinate tracks it.
    assert abs(np.corrcoef(offsets[:, 0], fake[:, 3])[0, 1]) > 0.99


def test_samples_bad_shape_is_an_error():
    with pytest.raises(ValueError, match="Expected samples of shape"):
        plots.plot_samples(np.zeros((2, 1, 2, 2, 2)))


def test_overlay_one_line_per_run(make_run):
    runs = [make_run("a", loss="ns", seed=0), make_run("b", loss="ns", seed=1), make_run("c", loss="wgan", seed=0)]
    _, ax = plots.plot_overlay(runs, schema.LOSS_G)
    assert [l.get_label() for l in ax.lines] == ["ns seed=0", "ns seed=1", "wgan seed=0"]
    assert ax.lines[0].get_color() == ax.lines[1].get_color() != ax.lines[2].get_color()
    _, ax = plots.plot_overlay(runs, schema.GRAD_NORM_G)
    assert ax.get_yscale() == "log"
    _, ax = plots.plot_overlay(runs, schema.DIV_COVERAGE)
    assert not ax.lines and any(plots.NOT_RECORDED in t.get_text() for t in ax.texts)


def test_loss_panels_go_symlog_only_when_the_runs_scales_differ_tenfold(make_run):
    # A WGAN critic's losses in the hundreds next to BCE losses near 1.
    bce, critic = make_run("ns", loss="ns"), make_run("wg", loss="wgan", loss_scale=300.0)
    _, ax = plots.plot_overlay([bce, critic], schema.LOSS_D)
    assert ax.get_yscale() == "symlog" and ax.get_ylabel() == "loss_d (symlog)"
    # linear up to the smaller run's 90th-percentile |loss| (~1.5 for loss_d here)
    assert 1.3 < ax.yaxis.get_transform().linthresh < 1.8
    _, ax = plots.plot_overlay([bce, make_run("x", loss="x", loss_scale=3.0)], schema.LOSS_D)
    assert ax.get_yscale() == "linear" and ax.get_ylabel() == "loss_d"
    _, ax = plots.plot_overlay([critic], schema.LOSS_G)
    assert ax.get_yscale() == "linear"


def test_no_global_matplotlib_state_changed(make_run, finding):
    import matplotlib.pyplot as plt

    before = dict(matplotlib.rcParams)
    run = make_run(samples="images")
    for plot in TIMESERIES:
        plot(run, [finding("oscillation", 10, 20)])
    plots.plot_samples(run.load_samples(0))
    plots.plot_overlay([run], schema.LOSS_D)
    assert dict(matplotlib.rcParams) == before
    assert plt.get_fignums() == []


def test_mode_shift_is_drawn_when_recorded(make_run):
    run = make_run(steps=100)
    shift = pd.Series([0.1, 0.6, 0.4], index=[20, 40, 60])
    run.metrics.loc[shift.index, schema.DIV_MODE_SHIFT] = shift
    _, ax = plots.plot_diversity(run)
    (line,) = [l for l in ax.lines if l.get_label() == "mode shift"]
    assert list(line.get_ydata()) == pytest.approx([0.1, 0.6, 0.4])
    assert "mode shift" not in _legend_texts(plots.plot_diversity(make_run("other", steps=100))[1])
