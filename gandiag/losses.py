"""GAN loss variants, one registry entry each.

Every loss takes D's raw outputs: logits for the probability losses, scores for
critics. Probabilities are never formed and then logged; softplus and
logsigmoid keep the losses finite where D is confident.

Identities used below, with l a logit and sigma the logistic function:
    -log sigma(l)     = softplus(-l)
    -log(1 - sigma(l)) = softplus(l)
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class LossVariant:
    """A named GAN objective.

    Attributes:
        name: registry key, as given to ``gandiag run --loss``.
        d_loss: ``(real_out, fake_out) -> loss`` minimised by D.
        g_loss: ``(fake_out, real_out) -> loss`` minimised by G. Only the
            relativistic loss reads ``real_out``.
        d_output: what D's raw output means, as the Monitor declares it:
            ``"logits"`` or ``"critic"``.
        description: one line for ``--help`` and reports.
        gradient_penalty: weight of the WGAN-GP penalty (0 for none).
        weight_clip: WGAN's clipping bound on D's weights (None for none).
    """

    name: str
    d_loss: LossFn
    g_loss: LossFn
    d_output: str
    description: str
    gradient_penalty: float = 0.0
    weight_clip: float | None = None


LOSSES: dict[str, LossVariant] = {}

_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


def register_loss(variant: LossVariant) -> LossVariant:
    """Add a loss variant to :data:`LOSSES`, checking its name and fields."""
    if not isinstance(variant, LossVariant):
        raise TypeError(f"Expected a LossVariant but got {type(variant).__name__}")
    if not _NAME.match(variant.name):
        raise ValueError(f"Expected a lower-case name like 'wgan-gp' but got {variant.name!r}")
    if variant.name in LOSSES:
        raise ValueError(f"Expected a new loss name but {variant.name!r} is already registered")
    if variant.d_output not in ("logits", "critic"):
        raise ValueError(f"Expected d_output 'logits' or 'critic' but got {variant.d_output!r}")
    if not (callable(variant.d_loss) and callable(variant.g_loss)):
        raise TypeError(f"Expected callable d_loss and g_loss for loss {variant.name!r}")
    if variant.gradient_penalty < 0:
        raise ValueError(f"Expected gradient_penalty >= 0 but got {variant.gradient_penalty}")
    if variant.weight_clip is not None and variant.weight_clip <= 0:
        raise ValueError(f"Expected weight_clip > 0 or None but got {variant.weight_clip}")
    LOSSES[variant.name] = variant
    return variant


def get_loss(name: str) -> LossVariant:
    """Look up a registered loss, with an error that lists the valid names."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"Expected a loss in {sorted(LOSSES)} but got {name!r}") from None


def _bce_d(real: Tensor, fake: Tensor) -> Tensor:
    # -log D(x) - log(1 - D(G(z)))
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def _minimax_g(fake: Tensor, real: Tensor) -> Tensor:
    # minimise log(1 - D(G(z))) = -softplus(l); d/dl = -sigma(l), which vanishes
    # exactly when D rejects the fakes (Goodfellow et al. 2014).
    return -F.softplus(fake).mean()


def _nonsaturating_g(fake: Tensor, real: Tensor) -> Tensor:
    # maximise log D(G(z)), written as the ascent it is: minimise its negative.
    # d/dl = -(1 - sigma(l)), strong while D rejects the fakes.
    return -(F.logsigmoid(fake).mean())


def _flipped_g(fake: Tensor, real: Tensor) -> Tensor:
    # The practitioner's form: BCE on the fakes with the label flipped to "real".
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def _wgan_d(real: Tensor, fake: Tensor) -> Tensor:
    return fake.mean() - real.mean()


def _wgan_g(fake: Tensor, real: Tensor) -> Tensor:
    return -fake.mean()


def _hinge_d(real: Tensor, fake: Tensor) -> Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def _lsgan_d(real: Tensor, fake: Tensor) -> Tensor:
    # Mao et al. 2017 with the 0/1 coding: D regresses reals to 1 and fakes to 0.
    return 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean()


def _lsgan_g(fake: Tensor, real: Tensor) -> Tensor:
    return 0.5 * ((fake - 1.0) ** 2).mean()


def _rsgan_d(real: Tensor, fake: Tensor) -> Tensor:
    # Jolicoeur-Martineau 2018: D says how much more real x is than G(z).
    return F.softplus(-(real - fake)).mean()


def _rsgan_g(fake: Tensor, real: Tensor) -> Tensor:
    return F.softplus(-(fake - real)).mean()


def gradient_penalty(discriminator: torch.nn.Module, real: Tensor, fake: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """WGAN-GP's penalty E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates
    (Gulrajani et al. 2017). ``generator`` draws the mixing weights, so the
    trainer's data and noise streams stay aligned across loss variants."""
    eps_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(eps_shape, generator=generator, device="cpu").to(real.device, real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    out = discriminator(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


register_loss(LossVariant("minimax", _bce_d, _minimax_g, "logits",
                          "original saturating loss: G minimises log(1 - D(G(z)))"))
register_loss(LossVariant("nonsaturating", _bce_d, _nonsaturating_g, "logits",
                          "G maximises log D(G(z))"))
register_loss(LossVariant("flipped", _bce_d, _flipped_g, "logits",
                          "G uses BCE on fakes labelled real (same gradient as nonsaturating)"))
register_loss(LossVariant("wgan", _wgan_d, _wgan_g, "critic",
                          "Wasserstein critic with weight clipping at 0.01", weight_clip=0.01))
register_loss(LossVariant("wgan-gp", _wgan_d, _wgan_g, "critic",
                          "Wasserstein critic with gradient penalty (lambda 10)", gradient_penalty=10.0))
register_loss(LossVariant("hinge", _hinge_d, _wgan_g, "critic", "hinge loss for D, -D(G(z)) for G"))
register_loss(LossVariant("lsgan", _lsgan_d, _lsgan_g, "critic", "least squares, 0/1 targets"))
register_loss(LossVariant("rsgan", _rsgan_d, _rsgan_g, "critic", "relativistic standard GAN"))
