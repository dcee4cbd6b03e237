"""Data sets: the built-in toys, the sklearn digits and a user's ``.npy``/``.npz`` file.

A data set is held whole in memory as one float32 CPU tensor; every data set
gandiag targets (2-D mixtures, 8x8 digits, small user arrays) fits easily, and
sampling rows from one tensor is the cheapest loader there is.

Try it::

    python -c "from gandiag.data import load_dataset; print(load_dataset('ring8'))"
"""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

if TYPE_CHECKING:  # imported lazily at run time: metrics import this module
    from gandiag.metrics.diversity import DiversityEvaluator

KINDS = ("vector", "image")
DEFAULT_N = 10_000  # enough that 25 modes each get ~400 points; cheap to hold
FILE_SUFFIXES = (".npy", ".npz")
NPZ_PREFERRED_KEYS = ("x", "data", "arr_0")
IMAGE_CHANNELS = (1, 3, 4)  # grey, RGB, RGBA

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class DataError(ValueError):
    """Input data cannot be turned into a gandiag :class:`Dataset`."""


@dataclass(frozen=True, eq=False)  # eq on tensors is ambiguous; identity is enough
class Dataset:
    """Real samples held in memory, with what the diversity metrics need to know.

    Attributes:
        name: Registered name, or the file name for a user's file.
        data: float32 CPU tensor, ``[N, D]`` for vectors or ``[N, C, H, W]`` for images.
        kind: ``"vector"`` or ``"image"``.
        modes: ``[M, D]`` mode centres for Gaussian mixtures, else ``None``.
        mode_std: Per-coordinate standard deviation of each mixture component.

    Example:
        >>> ds = load_dataset("ring8", n=100)
        >>> ds.sample(4, torch.Generator().manual_seed(0)).shape
        torch.Size([4, 2])
    """

    name: str
    data: torch.Tensor
    kind: str
    modes: torch.Tensor | None = None
    mode_std: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DataError(f"Expected kind in {KINDS} but got {self.kind!r}")
        if not isinstance(self.data, torch.Tensor) or self.data.dtype != torch.float32:
            got = self.data.dtype if isinstance(self.data, torch.Tensor) else type(self.data).__name__
            raise DataError(f"Expected data as a float32 tensor but got {got}")
        want_ndim = 2 if self.kind == "vector" else 4
        if self.data.ndim != want_ndim:
            raise DataError(
                f"Expected {want_ndim}-D data for kind {self.kind!r} but got shape {tuple(self.data.shape)}"
            )
        if self.data.shape[0] < 2:
            raise DataError(f"Expected at least 2 samples but got {self.data.shape[0]}")
        if (self.modes is None) != (self.mode_std is None):
            raise DataError("Expected modes and mode_std both set or both None but got only one")
        if self.modes is not None:
            if self.modes.ndim != 2 or self.modes.shape[1] != self.dim:
                raise DataError(
                    f"Expected modes of shape [M, {self.dim}] but got {tuple(self.modes.shape)}"
                )
            if not self.mode_std > 0:
                raise DataError(f"Expected mode_std > 0 but got {self.mode_std}")

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample, ``data.shape[1:]``."""
        return tuple(self.data.shape[1:])

    @property
    def dim(self) -> int:
        """Number of values in one flattened sample."""
        return math.prod(self.sample_shape)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Draws ``n`` rows uniformly with replacement.

        Args:
            n: Number of rows.
            generator: Source of randomness; the same seed gives the same rows.

        Returns:
            Tensor of shape ``[n, *sample_shape]``.
        """
        _check_positive_int("n", n)
        idx = torch.randint(0, self.data.shape[0], (n,), generator=generator)
        return self.data[idx]

    def evaluator(self, n_real: int = 1000, seed: int = 0) -> "DiversityEvaluator":
        """Builds the diversity evaluator that suits this data set.

        Mixtures get mode statistics, ``digits`` gets classifier statistics and
        a Fréchet distance, anything else gets the generic metrics.

        Args:
            n_real: Real samples the evaluator compares against (and the cap on fakes).
            seed: Seed of the evaluator's deterministic subsampling.

        Returns:
            A :class:`~gandiag.metrics.diversity.DiversityEvaluator`.
        """
        from gandiag.metrics.diversity import DiversityEvaluator

        _check_positive_int("n_real", n_real)
        classifier = None
        if self.name == "digits":
            from gandiag.metrics.digit_classifier import load_digit_classifier

            classifier = load_digit_classifier()
        return DiversityEvaluator(
            self.data,
            modes=self.modes,
            mode_std=self.mode_std,
            classifier=classifier,
            max_samples=n_real,
            seed=seed,
        )


DatasetFactory = Callable[[int, int], Dataset]
DATASETS: dict[str, DatasetFactory] = {}


def register_dataset(name: str, factory: DatasetFactory) -> None:
    """Adds a data set factory to :data:`DATASETS`.

    Args:
        name: Lower-case identifier (letters, digits, ``_``; starts with a letter).
        factory: Callable ``(n, seed) -> Dataset``.

    Raises:
        TypeError: ``name`` is not a string or ``factory`` is not callable.
        ValueError: ``name`` is malformed or already registered.

    Example:
        >>> register_dataset("ring8_wide", lambda n, seed: mixture_dataset(
        ...     "ring8_wide", ring_modes(8, 2.0), 0.1, n, seed))
    """
    if not isinstance(name, str):
        raise TypeError(f"Expected the data set name to be a str but got {type(name).__name__}")
    if not _NAME_RE.match(name):
        raise ValueError(
            f"Expected a lower-case identifier such as 'ring8' as the data set name but got {name!r}"
        )
    if name in DATASETS:
        raise ValueError(f"Expected a new data set name but got {name!r}, which is already registered")
    if not callable(factory):
        raise TypeError(f"Expected a callable factory (n, seed) -> Dataset but got {type(factory).__name__}")
    DATASETS[name] = factory


def ring_modes(count: int, radius: float) -> torch.Tensor:
    """Returns ``count`` points evenly spaced on a circle, shape ``[count, 2]``."""
    angles = torch.arange(count, dtype=torch.float64) * (2 * math.pi / count)
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


def grid_modes(coords: tuple[float, ...]) -> torch.Tensor:
    """Returns the Cartesian grid ``coords x coords``, shape ``[len(coords)**2, 2]``."""
    return torch.tensor(list(itertools.product(coords, coords)), dtype=torch.float32)


def mixture_dataset(name: str, modes: torch.Tensor, std: float, n: int, seed: int) -> Dataset:
    """Draws ``n`` points from an equal-weight isotropic Gaussian mixture.

    Args:
        name: Name the data set carries.
        modes: ``[M, D]`` component centres.
        std: Per-coordinate standard deviation of every component.
        n: Number of points.
        seed: Seed; the same seed gives the same points.

    Returns:
        A vector :class:`Dataset` with ``modes`` and ``mode_std`` set.
    """
    _check_positive_int("n", n)
    gen = torch.Generator().manual_seed(seed)
    which = torch.randint(0, modes.shape[0], (n,), generator=gen)
    noise = torch.randn(n, modes.shape[1], generator=gen)
    return Dataset(name=name, data=modes[which] + std * noise, kind="vector", modes=modes, mode_std=std)


DIGITS_MAX_PIXEL = 16.0  # sklearn's digits are 4-bit intensity counts, 0..16


def load_sklearn_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """Loads scikit-learn's bundled 8x8 digits (no download).

    Pixels are mapped from 0..16 to [-1, 1], the range of a tanh generator.

    Returns:
        ``(images, labels)``: float32 ``[1797, 1, 8, 8]`` and int64 ``[1797]``.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().unsqueeze(1)
    images = images * (2.0 / DIGITS_MAX_PIXEL) - 1.0
    return images, torch.from_numpy(bunch.target).long()


def _digits(n: int, seed: int) -> Dataset:
    # n and seed are ignored: the real set is small, and metrics need all of it.
    images, _ = load_sklearn_digits()
    return Dataset(name="digits", data=images, kind="image")


register_dataset("ring8", lambda n, seed: mixture_dataset("ring8", ring_modes(8, 2.0), 0.02, n, seed))
register_dataset(
    "grid25", lambda n, seed: mixture_dataset("grid25", grid_modes((-4.0, -2.0, 0.0, 2.0, 4.0)), 0.05, n, seed)
)
register_dataset("digits", _digits)


def load_dataset(name_or_path: str, *, n: int = DEFAULT_N, seed: int = 0) -> Dataset:
    """Loads a registered data set or a user's ``.npy``/``.npz`` file.

    File arrays are read by shape: ``N x D`` is a vector set; ``N x H x W`` is a
    grey image set; ``N x H x W x C`` (C in 1, 3, 4) is a channels-last image set
    and is converted to ``[N, C, H, W]``; ``N x C x H x W`` with C in 1, 3, 4 is
    taken as already channels-first when the last axis is not a channel count.
    Images are rescaled from their global min/max to [-1, 1] because generators
    end in tanh; a GAN cannot match data outside its output range. Vectors are
    kept as they are.

    Args:
        name_or_path: A key of :data:`DATASETS`, or a path to a ``.npy``/``.npz`` file.
        n: Samples to draw for synthetic data sets (ignored for fixed ones and files).
        seed: Seed for synthetic data sets.

    Returns:
        The :class:`Dataset`.

    Raises:
        DataError: The name is unknown, or the file is missing or unusable.

    Example:
        >>> load_dataset("grid25", n=500).data.shape
        torch.Size([500, 2])
    """
    _check_positive_int("n", n)
    if name_or_path in DATASETS:
        return DATASETS[name_or_path](n, seed)
    path = Path(name_or_path)
    if path.suffix.lower() in FILE_SUFFIXES:
        if not path.is_file():
            raise DataError(f"Expected an existing {path.suffix} file but got missing path {str(path)!r}")
        return _dataset_from_array(path.name, _read_array(path))
    if path.is_file():
        raise DataError(f"Expected a file ending in .npy or .npz but got {str(path)!r}")
    raise DataError(
        f"Expected a data set name in {sorted(DATASETS)} or a path to a .npy/.npz file "
        f"but got {name_or_path!r}"
    )


def _read_array(path: Path) -> np.ndarray:
    try:
        # allow_pickle=False: a data file must never be able to run code.
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises several types for a bad file
        # numpy's own text (e.g. about pickled data) would point the user the wrong way.
        raise DataError(f"Expected a numeric array saved with numpy in {str(path)!r} but it could not be read "
                        f"({type(exc).__name__})") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        keys = list(loaded.files)
        if len(keys) == 1:
            return loaded[keys[0]]
        for key in NPZ_PREFERRED_KEYS:
            if key in keys:
                return loaded[key]
    raise DataError(
        f"Expected a .npz with one array or an array named one of {list(NPZ_PREFERRED_KEYS)} "
        f"but got keys {keys}"
    )


def _dataset_from_array(name: str, array: np.ndarray) -> Dataset:
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise DataError(f"Expected a real numeric (integer or float) array but got dtype {array.dtype}")
    if array.ndim < 2 or array.ndim > 4:
        raise DataError(
            f"Expected an array of shape N x D, N x H x W or N x H x W x C but got shape {array.shape}"
        )
    if array.shape[0] < 2:
        raise DataError(f"Expected at least 2 samples but got {array.shape[0]}")
    if 0 in array.shape:
        raise DataError(f"Expected non-empty samples but got shape {array.shape}")
    data = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if not torch.isfinite(data).all():
        bad = int((~torch.isfinite(data)).sum())
        raise DataError(f"Expected only finite values but got {bad} NaN or Inf values")
    if data.ndim == 2:
        return Dataset(name=name, data=data, kind="vector")
    if data.ndim == 3:
        data = data.unsqueeze(1)
    elif data.shape[-1] in IMAGE_CHANNELS:
        data = data.permute(0, 3, 1, 2).contiguous()
    elif data.shape[1] not in IMAGE_CHANNELS:
        raise DataError(
            f"Expected a 4-D image array with {IMAGE_CHANNELS} channels on the last (or second) axis "
            f"but got shape {array.shape}"
        )
    return Dataset(name=name, data=_scale_to_unit_range(data), kind="image")


def _scale_to_unit_range(images: torch.Tensor) -> torch.Tensor:
    # One global min/max (not per image or channel) keeps relative brightness.
    lo, hi = images.min(), images.max()
    if hi <= lo:
        raise DataError(f"Expected images with at least two distinct values but got all {float(lo)}")
    return (images - lo) * (2.0 / (hi - lo)) - 1.0


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataError(f"Expected {name} to be a positive int but got {value!r}")
