"""A plain PyTorch DCGAN on scikit-learn's 8x8 digits, recorded by gandiag.

Run it, then read the report::

    python examples/dcgan_digits.py --steps 300 --out runs/example-dcgan
    gandiag report runs/example-dcgan

The loop is an ordinary DCGAN loop (BCE with logits, Adam, one D step per G
step). The lines gandiag adds are marked ``# gandiag``: the import, opening the
Monitor, and one call after each ``backward()``. About 10 s on one CPU core.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn

from gandiag.monitor import Monitor  # gandiag
from gandiag.rundir import META_FILE

LATENT = 32


class Generator(nn.Module):
    """z -> 64x2x2 -> 32x4x4 -> 1x8x8 in [-1, 1]."""

    def __init__(self, latent: int = LATENT):
        super().__init__()
        self.project = nn.Sequential(nn.Linear(latent, 64 * 2 * 2), nn.BatchNorm1d(64 * 2 * 2), nn.ReLU())
        self.up = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.up(self.project(z).view(-1, 64, 2, 2))


class Discriminator(nn.Module):
    """1x8x8 -> 32x4x4 -> 64x2x2 -> one logit per image."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.BatchNorm2d(64), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(64 * 2 * 2, 1), nn.Flatten(0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def load_images() -> torch.Tensor:
    """The 1,797 digits as ``[N, 1, 8, 8]`` floats in [-1, 1] (pixels are 0..16)."""
    images = torch.tensor(load_digits().images, dtype=torch.float32)
    return (images / 8.0 - 1.0).unsqueeze(1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="DCGAN on 8x8 digits, recorded by gandiag")
    p.add_argument("--steps", type=int, default=300, help="generator steps (default 300)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/example-dcgan", help="run directory (default runs/example-dcgan)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    # Convolutions this small gain nothing from more threads, and one thread never
    # oversubscribes a shared CPU.
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    args = p.parse_args(argv)
    if (Path(args.out) / META_FILE).exists() and not args.overwrite:
        p.error(f"--out {args.out} already holds a run: pass --overwrite to replace it, or choose another --out")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = load_images()
    G, D = Generator(), Discriminator()
    opt_g = torch.optim.Adam(G.parameters(), args.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), args.lr, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()

    with Monitor(G, D, args.out, d_output="logits", overwrite=args.overwrite) as mon:  # gandiag
        for step in range(args.steps):
            x = data[torch.randint(0, len(data), (args.batch,))]
            ones, zeros = torch.ones(args.batch), torch.zeros(args.batch)

            fake = G(torch.randn(args.batch, LATENT))
            d_real, d_fake = D(x), D(fake.detach())
            loss_d = bce(d_real, ones) + bce(d_fake, zeros)
            opt_d.zero_grad()
            loss_d.backward()
            mon.discriminator_step(loss=loss_d, real_out=d_real, fake_out=d_fake, real=x)  # gandiag
            opt_d.step()

            d_gen = D(fake)
            loss_g = bce(d_gen, ones)  # the non-saturating generator loss
            opt_g.zero_grad()
            loss_g.backward()
            mon.generator_step(loss=loss_g, fake_out=d_gen, fake=fake)  # gandiag
            opt_g.step()

            if step % 100 == 0:
                print(f"step {step}: loss_d {loss_d.item():.3f} loss_g {loss_g.item():.3f}", file=sys.stderr)
    print(mon.run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
