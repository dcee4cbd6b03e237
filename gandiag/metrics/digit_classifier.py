"""A tiny CNN trained on sklearn's 8x8 digits: the feature space for digit metrics.

It plays the part Inception plays for FID on natural images: class
probabilities give mode statistics, penultimate activations give PRDC and the
Fréchet distance. It trains in a few seconds on a CPU from bundled data, so
nothing is downloaded; the weights are cached after the first use.

Try it::

    python -m gandiag.metrics.digit_classifier
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from gandiag.data import load_sklearn_digits

# Bump when the architecture, training recipe or data scaling changes, so that
# stale cached weights are never loaded into a different network.
VERSION = "v1"
CACHE_FILE = f"digit_classifier_{VERSION}.pt"
SEED = 0
HELD_OUT_SHARE = 0.2  # 360 of 1,797 images: enough to pin accuracy to about +-1%
EPOCHS = 30  # held-out accuracy plateaus (~98%) well before this
BATCH_SIZE = 64
LEARNING_RATE = 2e-3
IMAGE_SHAPE = (1, 8, 8)
N_CLASSES = 10
FEATURE_DIM = 64


class DigitClassifier(nn.Module):
    """Two convolutions and two linear layers over ``[n, 1, 8, 8]`` digits in [-1, 1].

    ``forward`` returns logits and is for training; :meth:`probs` and
    :meth:`features` run without gradients. The network has no dropout or
    normalisation, so outputs do not depend on the batch they come in.

    Attributes:
        held_out_accuracy: Accuracy on the held-out split of :func:`digits_split`.

    Example:
        >>> clf = load_digit_classifier()
        >>> clf.probs(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, FEATURE_DIM),
        )
        # Features are taken before this ReLU: units that a ReLU leaves dead
        # would be constant and make the feature covariance singular.
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(FEATURE_DIM, N_CLASSES))
        self.held_out_accuracy = float("nan")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    @torch.no_grad()
    def probs(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``[n, 10]`` of images ``[n, 1, 8, 8]``."""
        return torch.softmax(self.head(self.body(self._check(x))), dim=1)

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer pre-activations ``[n, 64]`` of images ``[n, 1, 8, 8]``."""
        return self.body(self._check(x))

    @staticmethod
    def _check(x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(f"Expected digit images of shape [n, 1, 8, 8] but got {tuple(getattr(x, 'shape', ()))}")
        return x.detach().to("cpu", torch.float32)


def digits_split(seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Splits the digits into a training and a held-out part, reproducibly.

    Args:
        seed: Seed of the shuffling permutation.

    Returns:
        ``(x_train, y_train, x_test, y_test)``; images are ``[n, 1, 8, 8]`` in [-1, 1].
    """
    images, labels = load_sklearn_digits()
    order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))
    n_test = round(HELD_OUT_SHARE * images.shape[0])
    test, train = order[:n_test], order[n_test:]
    return images[train], labels[train], images[test], labels[test]


def accuracy(model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of ``images`` whose most probable class is the label."""
    return float((model.probs(images).argmax(dim=1) == labels).double().mean())


def train_digit_classifier(seed: int = SEED) -> DigitClassifier:
    """Trains a :class:`DigitClassifier` on the training split (a few seconds on CPU).

    The global torch RNG is left as it was, so calling this inside a seeded
    training run does not change that run.

    Args:
        seed: Seed of initialisation, split and batch order.

    Returns:
        The trained classifier in eval mode, with ``held_out_accuracy`` set.
    """
    x_train, y_train, x_test, y_test = digits_split(seed)
    # One thread: batches this small gain nothing from intra-op parallelism,
    # and extra threads slow to a crawl when the cores are shared.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = _fit(x_train, y_train, seed)
    finally:
        torch.set_num_threads(threads)
    model.eval().requires_grad_(False)
    model.held_out_accuracy = accuracy(model, x_test, y_test)
    return model


def _fit(x_train: torch.Tensor, y_train: torch.Tensor, seed: int) -> DigitClassifier:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitClassifier()
        optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        gen = torch.Generator().manual_seed(seed)
        loss_fn = nn.CrossEntropyLoss()
        for _ in range(EPOCHS):
            for batch in torch.randperm(x_train.shape[0], generator=gen).split(BATCH_SIZE):
                optimiser.zero_grad(set_to_none=True)
                loss_fn(model(x_train[batch]), y_train[batch]).backward()
                optimiser.step()
    return model


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/gandiag``, else ``~/.cache/gandiag``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gandiag"


def load_digit_classifier(cache_dir: str | os.PathLike | None = None) -> DigitClassifier:
    """Loads the cached digit classifier, training and caching it on first use.

    Args:
        cache_dir: Folder of the cached weights; defaults to :func:`default_cache_dir`.
            It is created only when weights are written.

    Returns:
        The classifier in eval mode.

    Example:
        >>> clf = load_digit_classifier("/tmp/gandiag-cache")
        >>> clf.held_out_accuracy > 0.95
        True
    """
    folder = default_cache_dir() if cache_dir is None else Path(cache_dir)
    path = folder / CACHE_FILE
    if path.is_file():
        try:
            return _load(path)
        except Exception as exc:  # a torn or foreign file: retrain rather than fail
            warnings.warn(f"Ignoring unreadable digit classifier cache {path} ({exc}); retraining", stacklevel=2)
    model = train_digit_classifier()
    try:
        _save(model, path)
    except OSError as exc:  # the cache only saves time; metrics still work without it
        warnings.warn(f"Could not cache the digit classifier at {path} ({exc})", stacklevel=2)
    return model


def _load(path: Path) -> DigitClassifier:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("version") != VERSION:
        raise ValueError(f"Expected cache version {VERSION} but got {blob.get('version')!r}")
    model = DigitClassifier()
    model.load_state_dict(blob["state_dict"])
    model.eval().requires_grad_(False)
    model.held_out_accuracy = float(blob["held_out_accuracy"])
    return model


def _save(model: DigitClassifier, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"version": VERSION, "state_dict": model.state_dict(), "held_out_accuracy": model.held_out_accuracy}
    # Write beside the target and rename: a concurrent reader sees the old
    # file or the new one, never a half-written one.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(blob, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


if __name__ == "__main__":
    clf = load_digit_classifier()
    print(f"held-out accuracy {clf.held_out_accuracy:.4f} (cache: {default_cache_dir() / CACHE_FILE})")
