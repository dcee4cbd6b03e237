import math

import pytest
import torch

from gandiag.data import load_sklearn_digits
from gandiag.metrics import digit_classifier as dc
from gandiag.metrics.diversity import DiversityEvaluator, class_stats
from gandiag.schema import DIV_FRECHET, DIV_MODE_KL, DIV_MODES_COVERED, DIV_RECALL


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("gandiag-cache")


@pytest.fixture(scope="module")
def clf(cache_dir):
    return dc.load_digit_classifier(cache_dir)  # trains once (a few seconds) and caches


def test_held_out_accuracy(clf):
    _, _, x_test, y_test = dc.digits_split()
    acc = dc.accuracy(clf, x_test, y_test)
    assert acc >= 0.95
    assert acc == pytest.approx(clf.held_out_accuracy)


def test_split_sizes_and_determinism():
    a, b = dc.digits_split(), dc.digits_split()
    assert len(a[0]) + len(a[2]) == 1797 and len(a[2]) == round(0.2 * 1797)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert sorted(torch.cat([a[1], a[3]]).tolist()) == sorted(load_sklearn_digits()[1].tolist())


def test_real_digits_cover_all_classes(clf):
    images, _ = load_sklearn_digits()
    stats = class_stats(clf.probs(images))
    assert stats[DIV_MODES_COVERED] == 10 and stats[DIV_MODE_KL] < 0.05


def test_shapes_and_no_grad(clf):
    x = torch.zeros(3, 1, 8, 8, requires_grad=True)
    p, f = clf.probs(x), clf.features(x)
    assert p.shape == (3, 10) and f.shape == (3, dc.FEATURE_DIM)
    assert torch.allclose(p.sum(dim=1), torch.ones(3))
    assert not p.requires_grad and not f.requires_grad and not clf.training
    with pytest.raises(ValueError, match=r"Expected digit images of shape \[n, 1, 8, 8\]"):
        clf.probs(torch.zeros(3, 64))


def test_cache_round_trip(clf, cache_dir):
    assert (cache_dir / dc.CACHE_FILE).is_file()
    assert dc.VERSION in dc.CACHE_FILE
    again = dc.load_digit_classifier(cache_dir)
    images, _ = load_sklearn_digits()
    assert torch.equal(again.probs(images[:100]), clf.probs(images[:100]))
    assert again.held_out_accuracy == clf.held_out_accuracy
    assert not list(cache_dir.glob("*.tmp"))


def test_corrupt_cache_is_replaced(clf, tmp_path, monkeypatch):
    (tmp_path / dc.CACHE_FILE).write_bytes(b"torn")
    monkeypatch.setattr(dc, "train_digit_classifier", lambda: clf)  # skip a second training
    with pytest.warns(UserWarning, match="unreadable"):
        got = dc.load_digit_classifier(tmp_path)
    assert got is clf
    assert torch.equal(dc.load_digit_classifier(tmp_path).probs(torch.zeros(1, 1, 8, 8)), clf.probs(torch.zeros(1, 1, 8, 8)))


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert dc.default_cache_dir() == tmp_path / "gandiag"


def test_training_leaves_global_rng_alone(monkeypatch):
    monkeypatch.setattr(dc, "EPOCHS", 1)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    dc.train_digit_classifier()
    assert torch.equal(torch.rand(3), expected)


def test_digit_evaluator(clf):
    images, _ = load_sklearn_digits()
    ev = DiversityEvaluator(images, classifier=clf)
    real = ev(images[torch.randperm(1797, generator=torch.Generator().manual_seed(1))])
    assert real[DIV_MODES_COVERED] == 10 and real[DIV_RECALL] > 0.85
    collapsed = ev(images[:1].repeat(200, 1, 1, 1) + 0.01 * torch.randn(200, 1, 8, 8))
    assert collapsed[DIV_MODES_COVERED] == 1 and collapsed[DIV_FRECHET] > 10 * real[DIV_FRECHET]
    assert math.isfinite(real[DIV_FRECHET])


def test_dataset_evaluator_uses_classifier(clf, cache_dir, monkeypatch):
    from gandiag.data import load_dataset

    monkeypatch.setattr(dc, "default_cache_dir", lambda: cache_dir)
    ev = load_dataset("digits").evaluator(n_real=500)
    assert ev.classifier is not None and DIV_FRECHET in ev.keys
