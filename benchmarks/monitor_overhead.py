"""What the Monitor costs per step: the same small GAN loop, bare and monitored.

Run it from the repository root::

    PYTHONPATH=. python benchmarks/monitor_overhead.py                  # CPU, 1 thread
    PYTHONPATH=. python benchmarks/monitor_overhead.py --device cuda    # when a GPU is there

The loop is the one ``gandiag run`` trains by default, written out as a plain
PyTorch loop: G and D from :func:`gandiag.models.build_models` at the default
:class:`~gandiag.models.ModelConfig` (on ring8: MLPs 256 wide, 2 hidden layers,
z of size 2), Adam at :class:`~gandiag.train.TrainConfig`'s learning rates and
betas, its batch size, one D step per G step, the nonsaturating loss.
``--width`` makes the networks smaller or larger and ``--data`` picks another
registered data set (``digits`` gets the conv nets). It runs in three variants
that are interleaved in blocks so that
machine drift hits them alike: ``bare`` (no Monitor), ``core`` (the Monitor at
its default config, without ``real=``/``fake=``, so no diversity metrics) and
``full`` (with ``real=``/``fake=``, as the README's three lines record: a
diversity evaluation every 200 steps and a snapshot every 500). Each variant
trains its own copy of the networks. A block is 200 steps by default, so each
holds four flushes and one diversity evaluation. On the CPU each block is timed
in process time, because time spent descheduled on a shared machine is not the
Monitor's. On CUDA it is timed in wall time after a synchronize. Progress goes
to stderr. The result goes to stdout (``--json`` for JSON), for example::

    device cpu, 1 thread(s), process_time, ring8, width 256, 20 x 200 steps per variant
      bare     4800.0 us/step
      core     4900.0 us/step   monitored/bare = 1.021 (lower quartiles: 1.020)
      full     4950.0 us/step   monitored/bare = 1.031 (lower quartiles: 1.030)

How to read it:

* ``us/step`` is each variant's median over its blocks.
* ``monitored/bare`` is the headline number: the median, over rounds, of the
  block's time over the bare block's time in the same round. The target is
  <= 1.05 for ``full`` at the default cadence.
* ``lower quartiles`` is the ratio of each variant's fastest quarter of
  blocks. Other processes only ever add time, so on a busy machine this is the
  nearer estimate of the Monitor's own cost. When the two ratios disagree by
  more than a few percent, the machine was too noisy: run it again, or raise
  ``--repeats``.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gandiag.data import DataError, load_dataset
from gandiag.models import ModelConfig, build_models
from gandiag.monitor import Monitor, MonitorConfig
from gandiag.train import TrainConfig

VARIANTS = ("bare", "core", "full")


class Loop:
    """One variant's networks, optimizers and (for core/full) Monitor."""

    def __init__(self, variant: str, G: nn.Module, D: nn.Module, args, run_dir: Path):
        self.variant = variant
        self.G, self.D = copy.deepcopy(G), copy.deepcopy(D)
        train = TrainConfig()
        self.opt_g = torch.optim.Adam(self.G.parameters(), train.lr_g, betas=train.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), train.lr_d, betas=train.betas)
        self.batch, self.z_dim = args.batch, G.latent_dim
        self.device = torch.device(args.device)
        self.mon = None
        if variant != "bare":
            self.mon = Monitor(self.G, self.D, run_dir / variant, d_output="logits", config=MonitorConfig())
        self.with_data = variant == "full"

    def run(self, data: torch.Tensor, steps: int) -> None:
        G, D, mon, b = self.G, self.D, self.mon, self.batch
        for _ in range(steps):
            x = data[torch.randint(0, data.shape[0], (b,), device=self.device)]
            fake = G(torch.randn(b, self.z_dim, device=self.device))
            d_real, d_fake = D(x), D(fake.detach())
            loss_d = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            if mon is not None:
                mon.discriminator_step(loss=loss_d, real_out=d_real, fake_out=d_fake, real=x if self.with_data else None)
            self.opt_d.step()

            d_gen = D(fake)
            loss_g = F.softplus(-d_gen).mean()
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            if mon is not None:
                mon.generator_step(loss=loss_g, fake_out=d_gen, fake=fake if self.with_data else None)
            self.opt_g.step()

    def close(self) -> None:
        if self.mon is not None:
            self.mon.close()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for every variant (default 1)")
    p.add_argument("--block", type=int, default=200,
                   help="steps per timed block (default 200: four flushes, one diversity evaluation)")
    p.add_argument("--repeats", type=int, default=20, help="timed blocks per variant (default 20)")
    p.add_argument("--batch", type=int, default=TrainConfig().batch_size,
                   help="batch size (default: gandiag run's, %(default)s)")
    p.add_argument("--width", type=int, default=ModelConfig().width,
                   help="hidden width of the networks (default: gandiag run's, %(default)s)")
    p.add_argument("--data", default="ring8", help="a registered data set (default ring8)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {VARIANTS}")
    p.add_argument("--wall", action="store_true", help="time the CPU by wall clock, not process time")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    for name in ("threads", "block", "repeats", "batch", "width"):
        if getattr(args, name) < 1:
            p.error(f"Expected --{name} to be an integer >= 1 but got {getattr(args, name)}")
    cadence = MonitorConfig()
    if args.block < max(cadence.flush_every, cadence.diversity_every):
        # A block that holds no flush or no diversity evaluation leaves their cost out of its timing.
        print(f"warning: --block {args.block} is shorter than the Monitor's flush ({cadence.flush_every} steps) or "
              f"diversity ({cadence.diversity_every} steps) cadence, so some blocks time neither", file=sys.stderr)
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or "bare" not in variants:
        p.error(f"Expected --variants from {VARIANTS}, including bare, but got {args.variants!r}")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        p.error(f"Expected --device cpu or cuda (cuda:N) but got {args.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("Expected a CUDA device for --device cuda but torch sees none")
    try:
        dataset = load_dataset(args.data)
        model = ModelConfig(width=args.width)
    except (DataError, ValueError) as e:
        p.error(str(e))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    G, D = (net.to(device) for net in build_models(dataset, model))
    data = dataset.data.to(device)

    # On the CPU, process time: on a shared machine, time spent descheduled is not
    # the Monitor's cost. On CUDA, wall time, since the GPU runs asynchronously.
    clock = time.process_time if device.type == "cpu" and not args.wall else time.perf_counter
    times: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        loops = {v: Loop(v, G, D, args, Path(tmp)) for v in variants}
        for v in variants:  # warm-up: allocator, first diversity evaluator, lazy inits
            loops[v].run(data, args.block)
        sync(device)
        for r in range(args.repeats):
            # Rotate the order each round so no variant always runs first.
            order = variants[r % len(variants):] + variants[: r % len(variants)]
            for v in order:
                sync(device)
                t0 = clock()
                loops[v].run(data, args.block)
                sync(device)
                times[v].append((clock() - t0) / args.block)
            print(f"round {r + 1}/{args.repeats}: " + ", ".join(f"{v} {times[v][-1] * 1e6:.0f} us" for v in variants),
                  file=sys.stderr)
        for lp in loops.values():
            lp.close()

    med = {v: statistics.median(t) for v, t in times.items()}
    # Ratio per round (paired blocks), then the median: robust to slow rounds.
    paired = {v: statistics.median(a / b for a, b in zip(times[v], times["bare"])) for v in variants if v != "bare"}
    # On a shared machine other processes only ever add time, so the fastest
    # quarter of each variant's blocks is the nearest to its own cost.
    fast = {v: statistics.quantiles(t, n=4)[0] if len(t) >= 4 else min(t) for v, t in times.items()}
    quartile = {v: fast[v] / fast["bare"] for v in paired}
    result = {
        "device": str(device), "threads": args.threads, "data": args.data, "width": args.width, "clock": clock.__name__, "block": args.block,
        "repeats": args.repeats, "us_per_step": {v: round(m * 1e6, 1) for v, m in med.items()},
        "ratio_to_bare": {v: round(r, 4) for v, r in paired.items()},
        "ratio_to_bare_lower_quartile": {v: round(r, 4) for v, r in quartile.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"device {device}, {args.threads} thread(s), {clock.__name__}, {args.data}, width {args.width}, "
              f"{args.repeats} x {args.block} steps per variant")
        for v in variants:
            extra = f"   monitored/bare = {paired[v]:.3f} (lower quartiles: {quartile[v]:.3f})" if v in paired else ""
            print(f"  {v:5s} {med[v] * 1e6:8.1f} us/step{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
