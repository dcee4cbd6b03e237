"""The Dirac-GAN (Mescheder et al. 2018, "Which Training Methods for GANs do
actually Converge?"), simulated and recorded through the Monitor.

G is a point mass at θ, the data a point mass at 0, and D(x) = ψ·x. With
f(t) = −log(1 + e^(−t)) the game is L(θ, ψ) = f(ψθ) + f(0): G lowers L, D
raises it, and the only equilibrium is θ = ψ = 0. In the paper's convention D
scores fakes high, so the logit "x is real" that the Monitor reads is −ψ·x.
Then D's loss −L is exactly the binary cross-entropy of
:mod:`gandiag.losses` and G's loss L − f(0) is the minimax loss, so the
recorded run is an ordinary ``minimax`` run with ``d_output="logits"``.

Three update schemes, step size h (0.2), start θ = ψ = 1:

- ``simultaneous``: both players step from the same point. The radius
  √(θ² + ψ²) grows (≈1.96 after 100 steps, ≈3.10 after 500): an outward spiral.
- ``alternating``: D steps, then G steps against the new ψ. The radius stays
  ≈1.4 for ever: a cycle that neither grows nor dies. (G first gives the same
  picture; D first is the order of gandiag's trainer.)
- ``simultaneous`` with the R1 penalty γ/2·ψ² on D (γ = 0.3): the radius
  falls below 1e-2 by step 200: convergence.

Run it::

    python -m gandiag.zoo.dirac runs/dirac
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from gandiag.losses import get_loss
from gandiag.monitor import Monitor, MonitorConfig

SCHEMES = ("simultaneous", "alternating")


@dataclass(frozen=True)
class DiracConfig:
    """One Dirac-GAN run. The defaults are the paper's reference setting."""

    scheme: str = "simultaneous"
    steps: int = 500
    step_size: float = 0.2     # h in the paper's figures
    r1_gamma: float = 0.0      # weight γ of the R1 penalty γ/2·ψ²; 0 for none
    theta0: float = 1.0
    psi0: float = 1.0

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ValueError(f"Expected scheme in {SCHEMES} but got {self.scheme!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"Expected steps to be an int >= 1 but got {self.steps!r}")
        if not (isinstance(self.step_size, (int, float)) and math.isfinite(self.step_size) and self.step_size > 0):
            raise ValueError(f"Expected step_size to be a positive number but got {self.step_size!r}")
        if not (isinstance(self.r1_gamma, (int, float)) and math.isfinite(self.r1_gamma) and self.r1_gamma >= 0):
            raise ValueError(f"Expected r1_gamma to be a number >= 0 but got {self.r1_gamma!r}")
        for name in ("theta0", "psi0"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise ValueError(f"Expected {name} to be a finite number but got {v!r}")


class DiracGenerator(nn.Module):
    """G(z) = θ for every z: a point mass."""

    def __init__(self, theta: float):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([float(theta)], dtype=torch.float64))

    def forward(self, n: int) -> torch.Tensor:
        return self.theta.expand(n, 1)


class DiracDiscriminator(nn.Module):
    """The realness logit −ψ·x (the paper's D(x) = ψ·x scores fakes high)."""

    def __init__(self, psi: float):
        super().__init__()
        self.psi = nn.Parameter(torch.tensor([float(psi)], dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -(self.psi * x).squeeze(1)


def radius_after(config: DiracConfig) -> list[float]:
    """√(θ² + ψ²) after each step, from the closed-form gradients (no autograd,
    no Monitor): the reference the recorded runs are checked against.

    ∂L/∂θ = f'(ψθ)·ψ and ∂L/∂ψ = f'(ψθ)·θ, with f'(t) = 1 / (1 + e^t).
    """
    h, g = config.step_size, config.r1_gamma
    th, ps = float(config.theta0), float(config.psi0)

    def fprime(t: float) -> float:
        return 1.0 / (1.0 + math.exp(t)) if t < 700 else 0.0

    out = []
    for _ in range(config.steps):
        if config.scheme == "simultaneous":
            d = fprime(ps * th)
            th, ps = th - h * d * ps, ps + h * (d * th - g * ps)
        else:
            ps = ps + h * (fprime(ps * th) * th - g * ps)
            th = th - h * fprime(ps * th) * ps
        out.append(math.hypot(th, ps))
    return out


def record_dirac(config: DiracConfig, run_dir: str | os.PathLike, *, monitor: MonitorConfig | None = None,
                 overwrite: bool = False) -> Path:
    """Play the Dirac-GAN with autograd and plain gradient steps, recording
    every step through a :class:`~gandiag.Monitor` into ``run_dir``.

    Each iteration records one D step, then one G step, as any training loop
    does. Under ``simultaneous`` G's gradient is taken at the ψ from before D's
    step (ψ is set back for G's forward and backward only), so both players
    step from the same point, and D's weights at the G step are already those
    of the next D step, as the Monitor expects of separate optimizers.

    Returns:
        The run directory, with ``meta.json`` holding the final θ, ψ and radius.

    Example:
        >>> record_dirac(DiracConfig(scheme="alternating"), "runs/dirac-alt")  # doctest: +SKIP
    """
    if not isinstance(config, DiracConfig):
        raise TypeError(f"Expected a DiracConfig but got {type(config).__name__}")
    variant = get_loss("minimax")
    G, D = DiracGenerator(config.theta0), DiracDiscriminator(config.psi0)
    opt_g = torch.optim.SGD(G.parameters(), lr=config.step_size)
    opt_d = torch.optim.SGD(D.parameters(), lr=config.step_size)
    real = torch.zeros(1, 1, dtype=torch.float64)
    run_config = {**asdict(config), "source": "gandiag.zoo.dirac", "loss": "minimax", "data": "dirac"}
    with Monitor(G, D, run_dir, d_output=variant.d_output, config=monitor or MonitorConfig(),
                 run_config=run_config, overwrite=overwrite) as mon:
        for _ in range(config.steps):
            psi_before = D.psi.detach().clone()
            d_real, d_fake = D(real), D(G(1).detach())
            loss_d = variant.d_loss(d_real, d_fake)
            if config.r1_gamma:
                # R1 = γ/2·E_data|∇x D(x)|²; for a linear D that is γ/2·ψ².
                loss_d = loss_d + config.r1_gamma / 2 * D.psi.square().sum()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            mon.discriminator_step(loss=loss_d, real_out=d_real, fake_out=d_fake, real=real)
            opt_d.step()

            psi_after = D.psi.detach().clone()
            if config.scheme == "simultaneous":
                with torch.no_grad():
                    D.psi.copy_(psi_before)
            d_gen = D(G(1))
            loss_g = variant.g_loss(d_gen, d_gen.detach())
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            with torch.no_grad():
                D.psi.copy_(psi_after)
            mon.generator_step(loss=loss_g, fake_out=d_gen)
            opt_g.step()
    theta, psi = G.theta.item(), D.psi.item()
    meta_path = Path(run_dir)
    from gandiag.rundir import META_FILE, load_run, write_json

    meta = load_run(meta_path).meta
    meta["dirac"] = {"theta": theta, "psi": psi, "radius": math.hypot(theta, psi)}
    write_json(meta_path / META_FILE, meta)
    return meta_path


def reference_runs() -> dict[str, DiracConfig]:
    """The three runs of the reference, by the verdict they should get."""
    return {
        "diverging": DiracConfig(scheme="simultaneous"),
        "oscillating": DiracConfig(scheme="alternating"),
        "converged": DiracConfig(scheme="simultaneous", r1_gamma=0.3),
    }


if __name__ == "__main__":
    from gandiag.detectors import analyze

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/dirac")
    for verdict, cfg in reference_runs().items():
        rd = record_dirac(cfg, out / verdict)
        r = radius_after(cfg)
        print(f"{verdict:12s} radius@100 {r[99]:.3f} @200 {r[199]:.3g} @500 {r[-1]:.3g}  findings:",
              [f.kind for f in analyze(rd)])
