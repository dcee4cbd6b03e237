"""Small generators and discriminators for the toy and digit data sets.

Discriminators return raw scores of shape ``[B]`` and never apply a sigmoid:
the loss decides how to read them (logits for the standard GAN, critic scores
for WGAN), and the sigmoid is folded into the numerically stable loss.

Try it::

    python -c "from gandiag.data import load_dataset; from gandiag.models import *; \
print(*build_models(load_dataset('digits'), ModelConfig()), sep='\\n')"
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from gandiag.data import Dataset

LEAK = 0.2  # the usual DCGAN slope; keeps D's gradient alive for negative inputs


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the networks :func:`build_models` makes.

    Attributes:
        latent_dim: Size of the noise vector z. ``None`` (the default) takes the
            data's dimension up to 16: on ring8 a 2-D z covered all 8 modes by
            step ~1,250 where a 16-D z still missed two at step 3,000 (same
            seed, nonsaturating, width 256); 16 is ample for 8x8 digits.
        width: Hidden units of the MLPs. The conv nets use ``width // 8`` base
            channels (32 by default), so one knob scales both families; 32 keeps
            a few thousand digit steps at batch 64 to well under a minute on a CPU.
        depth: Hidden layers of the MLPs. The conv nets' depth is fixed by the
            image size (two stride-2 stages), so it does not apply to them.

    Example:
        >>> ModelConfig(latent_dim=8).conv_width
        32
    """

    latent_dim: int | None = None
    # 256 x 2 reached 8/8 ring8 modes in 3,000 steps; 128 x 3 and 128 x 2 stalled at 2-4.
    width: int = 256
    depth: int = 2

    def __post_init__(self) -> None:
        for name in ("latent_dim", "width", "depth"):
            value = getattr(self, name)
            if name == "latent_dim" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Expected {name} to be a positive int but got {value!r}")

    def latent_for(self, dataset: "Dataset") -> int:
        """The size of z for ``dataset``."""
        return self.latent_dim if self.latent_dim is not None else min(dataset.dim, 16)

    @property
    def conv_width(self) -> int:
        """Base channel count of the conv nets (at least 1)."""
        return max(1, self.width // 8)


def _mlp(in_dim: int, width: int, depth: int, out_dim: int, activation: type[nn.Module], **kw) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(in_dim if i == 0 else width, width), activation(**kw)]
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Expected {name} to be a positive int but got {value!r}")


class MLPGenerator(nn.Module):
    """Maps z ``[B, latent_dim]`` to samples through Linear+ReLU layers.

    Args:
        latent_dim: Size of z.
        out_dim: Values in one flattened sample.
        width: Hidden units per layer.
        depth: Hidden layers.
        out_shape: Shape of one sample; defaults to ``(out_dim,)``.
        tanh_output: End in tanh, for data scaled to [-1, 1] (images).

    Example:
        >>> MLPGenerator(16, 2)(torch.randn(5, 16)).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        latent_dim: int,
        out_dim: int,
        width: int = 128,
        depth: int = 3,
        *,
        out_shape: tuple[int, ...] | None = None,
        tanh_output: bool = False,
    ):
        super().__init__()
        _check_sizes(latent_dim=latent_dim, out_dim=out_dim, width=width, depth=depth)
        out_shape = (out_dim,) if out_shape is None else tuple(out_shape)
        if math.prod(out_shape) != out_dim:
            raise ValueError(f"Expected out_shape with {out_dim} values but got {out_shape}")
        self.latent_dim = latent_dim
        self.out_shape = out_shape
        self.tanh_output = tanh_output
        self.net = _mlp(latent_dim, width, depth, out_dim, nn.ReLU)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.net(z)
        if self.tanh_output:
            x = torch.tanh(x)
        return x.view(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
    """Scores samples of any shape (flattened) with Linear+LeakyReLU layers.

    Args:
        in_dim: Values in one flattened sample.
        width: Hidden units per layer.
        depth: Hidden layers.

    Example:
        >>> MLPDiscriminator(2)(torch.randn(5, 2)).shape
        torch.Size([5])
    """

    def __init__(self, in_dim: int, width: int = 128, depth: int = 3):
        super().__init__()
        _check_sizes(in_dim=in_dim, width=width, depth=depth)
        self.net = _mlp(in_dim, width, depth, 1, nn.LeakyReLU, negative_slope=LEAK)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(1)


def _check_image_size(size: int) -> None:
    _check_sizes(size=size)
    if size % 4:
        raise ValueError(f"Expected an image size divisible by 4 (two stride-2 stages) but got {size}")


class ConvGenerator(nn.Module):
    """DCGAN-style generator for small square images, ending in tanh.

    z is projected to ``2*width`` maps of ``size/4`` squared, then two
    stride-2 transposed convolutions double the side twice.

    Args:
        latent_dim: Size of z.
        channels: Image channels.
        size: Image side; must be divisible by 4.
        width: Base channel count.

    Example:
        >>> ConvGenerator(16, 1, 8)(torch.randn(3, 16)).shape
        torch.Size([3, 1, 8, 8])
    """

    # No BatchNorm: it would make one sample's output depend on the rest of
    # its batch, so diversity metrics (taken at a different batch size than
    # training) would not measure the generator that was trained. At 8x8 the
    # net is shallow enough to train without it.

    def __init__(self, latent_dim: int, channels: int, size: int, width: int = 32):
        super().__init__()
        _check_sizes(latent_dim=latent_dim, channels=channels, width=width)
        _check_image_size(size)
        self.latent_dim = latent_dim
        self.out_shape = (channels, size, size)
        self._base = (2 * width, size // 4, size // 4)
        self.project = nn.Linear(latent_dim, math.prod(self._base))
        self.net = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.project(z).view(z.shape[0], *self._base))


class ConvDiscriminator(nn.Module):
    """Two stride-2 convolutions and a linear score; no normalisation layers.

    BatchNorm is left out because it couples samples in a batch, which breaks
    per-sample gradient penalties such as WGAN-GP.

    Args:
        channels: Image channels.
        size: Image side; must be divisible by 4.
        width: Base channel count.

    Example:
        >>> ConvDiscriminator(1, 8)(torch.randn(3, 1, 8, 8)).shape
        torch.Size([3])
    """

    def __init__(self, channels: int, size: int, width: int = 32):
        super().__init__()
        _check_sizes(channels=channels, width=width)
        _check_image_size(size)
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),
            nn.LeakyReLU(LEAK),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
            nn.LeakyReLU(LEAK),
            nn.Flatten(),
            nn.Linear(2 * width * (size // 4) ** 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def build_models(dataset: Dataset, config: ModelConfig) -> tuple[nn.Module, nn.Module]:
    """Makes a (generator, discriminator) pair that fits ``dataset``.

    Square images whose side is divisible by 4 get the conv nets; vectors and
    other images get MLPs (image MLP generators end in tanh and reshape).

    Args:
        dataset: The data the pair will be trained on.
        config: Network sizes.

    Returns:
        ``(G, D)``. ``G.latent_dim`` is the size of z; ``G(z)`` has shape
        ``[B, *dataset.sample_shape]``; ``D(x)`` has shape ``[B]``.

    Example:
        >>> from gandiag.data import load_dataset
        >>> g, d = build_models(load_dataset("ring8", n=64), ModelConfig())
    """
    if not isinstance(config, ModelConfig):
        raise TypeError(f"Expected a ModelConfig but got {type(config).__name__}")
    shape = dataset.sample_shape
    if dataset.kind == "image":
        channels, height, width = shape
        if height == width and height % 4 == 0:
            return (
                ConvGenerator(config.latent_for(dataset), channels, height, config.conv_width),
                ConvDiscriminator(channels, height, config.conv_width),
            )
    generator = MLPGenerator(
        config.latent_for(dataset),
        dataset.dim,
        config.width,
        config.depth,
        out_shape=shape,
        tanh_output=dataset.kind == "image",
    )
    return generator, MLPDiscriminator(dataset.dim, config.width, config.depth)
