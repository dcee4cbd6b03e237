import numpy as np
import pytest
import torch

from gandiag import schema as S
from gandiag.monitor import MonitorConfig
from gandiag.rundir import load_run
from gandiag.train import TrainConfig, sweep, train

FAST = MonitorConfig(record_every=1, diversity_every=50, samples_every=100, flush_every=25)


def test_matched_seeds_same_start_data_and_noise(tmp_path):
    # Same seed: nonsaturating and flipped have identical gradients, so whole runs
    # must coincide; minimax shares the first D step exactly (same weights, batch, noise).
    res = sweep(["nonsaturating", "flipped", "minimax"], ["ring8"], [3],
                TrainConfig(steps=30, monitor=FAST), tmp_path, progress=False)
    ns, fl, mm = (load_run(p).metrics for p in res.run_dirs)
    cols = [S.LOSS_D, S.LOSS_G, S.GRAD_NORM_G, S.GRAD_NORM_D, S.D_REAL, S.D_FAKE]
    np.testing.assert_allclose(ns[cols].to_numpy(), fl[cols].to_numpy(), rtol=1e-4, atol=1e-6)
    for c in (S.LOSS_D, S.GRAD_NORM_D, S.D_REAL, S.D_FAKE):
        assert mm.loc[0, c] == pytest.approx(ns.loc[0, c], rel=1e-6)
    assert mm.loc[5, S.LOSS_G] != pytest.approx(ns.loc[5, S.LOSS_G], rel=1e-3)  # the losses do differ


def test_different_seeds_differ(tmp_path):
    res = sweep(["nonsaturating"], ["ring8"], [0, 1], TrainConfig(steps=5, monitor=FAST), tmp_path, progress=False)
    a, b = (load_run(p).metrics for p in res.run_dirs)
    assert a.loc[0, S.LOSS_D] != b.loc[0, S.LOSS_D]


def test_strong_discriminator_starves_minimax_but_not_nonsaturating(tmp_path):
    """The seed's point: with several D steps per G step on ring8, minimax's
    generator signal is far weaker early on and is flagged; the non-saturating
    forms are not."""
    res = sweep(["minimax", "nonsaturating", "flipped"], ["ring8"], [0],
                TrainConfig(steps=300, d_steps=10, lr_d=2e-3, monitor=FAST), tmp_path, progress=False)
    runs = {p.name.split("-")[1]: load_run(p) for p in res.run_dirs}
    early = {k: r.metrics[S.GRAD_NORM_G].iloc[:60].median() for k, r in runs.items()}
    assert early["minimax"] < early["nonsaturating"] / 4
    kinds = {k: {f["kind"] for f in r.findings()} for k, r in runs.items()}
    assert "vanishing_generator_gradient" in kinds["minimax"]
    assert "vanishing_generator_gradient" not in kinds["nonsaturating"]
    assert "vanishing_generator_gradient" not in kinds["flipped"]


def test_nan_stops_cleanly_and_is_recorded_as_diverged(tmp_path):
    rd = train(TrainConfig(steps=300, lr_g=1e6, lr_d=1e6, loss="wgan-gp", monitor=FAST), tmp_path / "r")
    run = load_run(rd)
    assert run.status == "diverged"
    assert len(run.metrics) < 300 and run.meta["diverged_at"] == run.metrics.index[run.metrics[S.NONFINITE] > 0][0]
    assert "divergence" in {f["kind"] for f in run.findings()}


def test_digits_run_records_classifier_diversity_and_images(tmp_path):
    rd = train(TrainConfig(steps=60, data="digits", batch_size=32, monitor=FAST), tmp_path / "d")
    run = load_run(rd)
    assert run.status == "completed" and len(run.metrics) == 60
    div = run.series(S.DIV_MODES_TOTAL)
    assert len(div) >= 2 and (div == 10).all()
    assert run.series(S.DIV_FRECHET).notna().all()
    snap = run.load_samples(max(run.samples))
    assert snap.shape[1:] == (1, 8, 8) and snap.min() >= -1 and snap.max() <= 1


def test_every_loss_variant_trains_and_records(tmp_path):
    from gandiag.losses import LOSSES

    res = sweep(list(LOSSES), ["ring8"], [0], TrainConfig(steps=20, monitor=FAST), tmp_path, progress=False)
    for p in res.run_dirs:
        m = load_run(p).metrics
        assert len(m) == 20 and m[S.GRAD_NORM_G].gt(0).all() and m[S.GRAD_NORM_D].gt(0).all()


def test_bad_config_is_rejected_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="Expected steps to be an integer >= 1 but got 0"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="Expected a loss in"):
        TrainConfig(loss="nope")
    with pytest.raises(ValueError, match="ring8"):
        sweep(["minimax"], ["nope"], [0], TrainConfig(steps=5), tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_first_steps(tmp_path):
    cpu = load_run(train(TrainConfig(steps=10, device="cpu", monitor=FAST), tmp_path / "c")).metrics
    gpu = load_run(train(TrainConfig(steps=10, device="cuda", monitor=FAST), tmp_path / "g")).metrics
    np.testing.assert_allclose(cpu[S.LOSS_D].to_numpy()[:3], gpu[S.LOSS_D].to_numpy()[:3], rtol=1e-3)


def test_the_progress_bar_counts_every_run_and_opens_only_once_training_starts(tmp_path, capsys):
    sweep(["minimax", "nonsaturating"], ["ring8"], [0], TrainConfig(steps=5, monitor=FAST), tmp_path / "ok")
    err = capsys.readouterr().err
    assert "10/10" in err and "ring8-nonsaturating-s0" in err
    tiny = tmp_path / "tiny.npy"
    np.save(tiny, np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="Expected more than k=5 real samples"):
        sweep(["minimax"], [str(tiny)], [0], TrainConfig(steps=5, monitor=FAST), tmp_path / "bad")
    assert "step" not in capsys.readouterr().err  # no bar before the error
