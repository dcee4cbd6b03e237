import pytest
import torch

from gandiag.data import Dataset, load_dataset
from gandiag.models import (
    ConvDiscriminator,
    ConvGenerator,
    MLPDiscriminator,
    MLPGenerator,
    ModelConfig,
    build_models,
)


def _image_dataset(channels, height, width):
    data = torch.rand(8, channels, height, width) * 2 - 1
    return Dataset("img", data, "image")


def test_vector_models_shapes():
    g, d = build_models(load_dataset("ring8", n=64), ModelConfig(latent_dim=4))
    assert isinstance(g, MLPGenerator) and isinstance(d, MLPDiscriminator)
    x = g(torch.randn(32, g.latent_dim))
    assert x.shape == (32, 2)
    assert d(x).shape == (32,)
    # hidden layers: depth Linear layers, then the output one
    assert sum(1 for name, _ in g.named_parameters() if name.endswith("weight")) == ModelConfig().depth + 1
    assert "net.0.weight" in dict(d.named_parameters())


def test_default_latent_follows_the_data():
    assert build_models(load_dataset("ring8", n=64), ModelConfig())[0].latent_dim == 2
    assert build_models(load_dataset("digits"), ModelConfig())[0].latent_dim == 16
    assert build_models(load_dataset("ring8", n=64), ModelConfig(latent_dim=5))[0].latent_dim == 5


def test_digit_models_are_conv_and_bounded():
    g, d = build_models(load_dataset("digits"), ModelConfig())
    assert isinstance(g, ConvGenerator) and isinstance(d, ConvDiscriminator)
    x = g(3 * torch.randn(64, 16))
    assert x.shape == (64, 1, 8, 8)
    assert x.min() >= -1 and x.max() <= 1
    out = d(x)
    assert out.shape == (64,)
    assert (out < 0).any() or (out > 1).any() or out.std() > 0  # raw scores, not squashed


@pytest.mark.parametrize("size", [8, 16, 28])
def test_conv_sizes_divisible_by_four(size):
    g, d = build_models(_image_dataset(3, size, size), ModelConfig(latent_dim=8, width=16))
    assert isinstance(g, ConvGenerator)
    x = g(torch.randn(2, 8))
    assert x.shape == (2, 3, size, size) and d(x).shape == (2,)


def test_other_images_fall_back_to_bounded_mlps():
    ds = _image_dataset(1, 10, 10)
    g, d = build_models(ds, ModelConfig(width=32))
    assert isinstance(g, MLPGenerator) and isinstance(d, MLPDiscriminator)
    x = g(10 * torch.randn(5, g.latent_dim))
    assert x.shape == (5, 1, 10, 10) and x.abs().max() <= 1
    assert d(x).shape == (5,)


def test_conv_rejects_bad_size():
    with pytest.raises(ValueError, match="divisible by 4"):
        ConvGenerator(8, 1, 10)
    with pytest.raises(ValueError, match="divisible by 4"):
        ConvDiscriminator(1, 6)


def test_construction_is_deterministic_under_manual_seed():
    ds = load_dataset("digits")
    torch.manual_seed(0)
    g1, d1 = build_models(ds, ModelConfig())
    torch.manual_seed(0)
    g2, d2 = build_models(ds, ModelConfig())
    for a, b in ((g1, g2), (d1, d2)):
        for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
            assert na == nb and torch.equal(pa, pb)


def test_generator_output_does_not_depend_on_batch():
    torch.manual_seed(0)
    g, _ = build_models(load_dataset("digits"), ModelConfig())
    z = torch.randn(16, 16)
    assert torch.allclose(g(z)[:4], g(z[:4]), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"latent_dim": 0}, "latent_dim to be a positive int but got 0"),
        ({"width": -1}, "width to be a positive int"),
        ({"depth": 2.0}, "depth to be a positive int"),
        ({"depth": True}, "depth to be a positive int"),
    ],
)
def test_config_validates(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)


def test_config_is_frozen_and_conv_width_follows_width():
    cfg = ModelConfig(width=40)
    assert cfg.conv_width == 5 and ModelConfig(width=1).conv_width == 1
    with pytest.raises(AttributeError):
        cfg.width = 3


def test_build_models_rejects_non_config():
    with pytest.raises(TypeError, match="Expected a ModelConfig"):
        build_models(load_dataset("ring8", n=10), {"latent_dim": 3})
