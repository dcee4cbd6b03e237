import math

import numpy as np
import pytest
import torch

from gandiag.data import DATASETS, DataError, Dataset, load_dataset, register_dataset


def test_ring8_points_lie_near_radius_two():
    ds = load_dataset("ring8", n=2000, seed=1)
    assert ds.kind == "vector" and ds.data.shape == (2000, 2) and ds.data.dtype == torch.float32
    assert ds.modes.shape == (8, 2) and ds.mode_std == 0.02
    radius = ds.data.norm(dim=1)
    assert (radius - 2.0).abs().max() < 0.15  # > 5 std away has negligible probability
    assert torch.allclose(ds.modes.norm(dim=1), torch.full((8,), 2.0))


def test_grid25_modes_and_spread():
    ds = load_dataset("grid25", n=5000)
    assert ds.modes.shape == (25, 2) and ds.mode_std == 0.05
    assert set(ds.modes.flatten().tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    nearest = torch.cdist(ds.data, ds.modes).min(dim=1).values
    assert nearest.max() < 0.35


def test_mixture_seed_decides_points():
    assert torch.equal(load_dataset("ring8", n=50, seed=3).data, load_dataset("ring8", n=50, seed=3).data)
    assert not torch.equal(load_dataset("ring8", n=50, seed=3).data, load_dataset("ring8", n=50, seed=4).data)


def test_digits_shape_and_range():
    ds = load_dataset("digits", n=10)  # n is ignored: all real images
    assert ds.kind == "image" and ds.data.shape == (1797, 1, 8, 8)
    assert ds.sample_shape == (1, 8, 8) and ds.dim == 64
    assert float(ds.data.min()) == -1.0 and float(ds.data.max()) == 1.0
    assert ds.modes is None


def test_sample_is_deterministic_given_generator():
    ds = load_dataset("ring8", n=100)
    a = ds.sample(64, torch.Generator().manual_seed(7))
    b = ds.sample(64, torch.Generator().manual_seed(7))
    c = ds.sample(64, torch.Generator().manual_seed(8))
    assert a.shape == (64, 2) and torch.equal(a, b) and not torch.equal(a, c)
    # every sampled row is a row of the data
    assert (a.unsqueeze(1) == ds.data.unsqueeze(0)).all(dim=2).any(dim=1).all()


def test_npy_vectors_kept_as_is(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 3)) * 10
    np.save(tmp_path / "v.npy", x)
    ds = load_dataset(str(tmp_path / "v.npy"))
    assert ds.kind == "vector" and ds.name == "v.npy"
    assert np.allclose(ds.data.numpy(), x.astype(np.float32))


def test_npy_grey_images_scaled(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, size=(20, 12, 12)).astype(np.uint8)
    np.save(tmp_path / "g.npy", x)
    ds = load_dataset(tmp_path / "g.npy")
    assert ds.kind == "image" and ds.data.shape == (20, 1, 12, 12)
    assert float(ds.data.min()) == -1.0 and float(ds.data.max()) == 1.0
    lo, hi = x.min(), x.max()
    assert torch.allclose(ds.data[:, 0], torch.from_numpy((x - lo) / (hi - lo) * 2 - 1).float(), atol=1e-6)


def test_npy_channels_last_converted(tmp_path):
    x = np.random.default_rng(0).random((10, 8, 8, 3))
    x[:, :, :, 1] = 5.0  # a marker channel survives the transpose
    np.save(tmp_path / "rgb.npy", x)
    ds = load_dataset(str(tmp_path / "rgb.npy"))
    assert ds.data.shape == (10, 3, 8, 8)
    assert (ds.data[:, 1] == 1.0).all() and (ds.data[:, 0] < 1.0).all()


def test_npz_single_and_named_arrays(tmp_path):
    x = np.random.default_rng(0).normal(size=(30, 4))
    np.savez(tmp_path / "one.npz", whatever=x)
    np.savez(tmp_path / "named.npz", labels=np.arange(30), x=x)
    for name in ("one.npz", "named.npz"):
        assert np.allclose(load_dataset(str(tmp_path / name)).data.numpy(), x.astype(np.float32))


@pytest.mark.parametrize(
    "array, match",
    [
        (np.zeros(10), "shape N x D"),
        (np.zeros((4, 2, 2, 2, 2)), "shape N x D"),
        (np.zeros((1, 3)), "at least 2 samples"),
        (np.array([[0.0, 1.0], [np.nan, 2.0]]), "finite"),
        (np.array([["a", "b"], ["c", "d"]]), "numeric"),
        (np.full((5, 4, 4), 3.0), "two distinct values"),
        (np.zeros((5, 5, 6, 7)), "channels"),
    ],
)
def test_bad_arrays_raise(tmp_path, array, match):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(DataError, match=match):
        load_dataset(str(tmp_path / "bad.npy"))


def test_bad_paths_and_names_raise(tmp_path):
    with pytest.raises(DataError, match=r"Expected a data set name in \['digits', 'grid25', 'ring8'"):
        load_dataset("ring9")
    with pytest.raises(DataError, match="npy/.npz file"):
        load_dataset("ring9")
    with pytest.raises(DataError, match="missing path"):
        load_dataset(str(tmp_path / "nope.npy"))
    (tmp_path / "data.csv").write_text("1,2\n3,4\n")
    with pytest.raises(DataError, match="ending in .npy or .npz"):
        load_dataset(str(tmp_path / "data.csv"))
    (tmp_path / "torn.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match="Expected a numeric array saved with numpy in .* but it could not be read"):
        load_dataset(str(tmp_path / "torn.npy"))
    np.savez(tmp_path / "many.npz", a=np.zeros((3, 2)), b=np.zeros((3, 2)))
    with pytest.raises(DataError, match=r"got keys \['a', 'b'\]"):
        load_dataset(str(tmp_path / "many.npz"))
    with pytest.raises(DataError, match="positive int"):
        load_dataset("ring8", n=0)


def test_register_dataset_validates(monkeypatch):
    monkeypatch.setattr("gandiag.data.DATASETS", dict(DATASETS))
    from gandiag import data

    def factory(n, seed):
        return Dataset("tiny", torch.zeros(n, 2) + torch.arange(n).unsqueeze(1).float(), "vector")

    register_dataset("tiny_2", factory)
    assert load_dataset("tiny_2", n=5).data.shape == (5, 2)
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("tiny_2", factory)
    for bad in ("", "Ring", "2ring", "ring-8", "a b"):
        with pytest.raises(ValueError, match="lower-case identifier"):
            register_dataset(bad, factory)
    with pytest.raises(TypeError, match="Expected the data set name to be a str"):
        register_dataset(3, factory)
    with pytest.raises(TypeError, match="callable factory"):
        register_dataset("tiny_3", "not callable")
    assert "tiny_2" not in DATASETS and "tiny_2" in data.DATASETS


def test_dataset_validates_fields():
    with pytest.raises(DataError, match="Expected kind in"):
        Dataset("x", torch.zeros(4, 2), "audio")
    with pytest.raises(DataError, match="float32"):
        Dataset("x", torch.zeros(4, 2, dtype=torch.float64), "vector")
    with pytest.raises(DataError, match="4-D data for kind 'image'"):
        Dataset("x", torch.zeros(4, 2), "image")


def test_evaluator_matches_dataset_kind():
    ds = load_dataset("ring8", n=500)
    scores = ds.evaluator(n_real=300)(ds.data[:300])
    assert scores["div/modes_total"] == 8.0 and math.isclose(scores["div/diversity_ratio"], 1.0, rel_tol=0.1)
