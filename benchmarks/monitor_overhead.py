"""What the Monitor costs per step: one small GAN loop, bare and monitored, side by side.

Run it from the repository root::

    PYTHONPATH=. python benchmarks/monitor_overhead.py                  # CPU, 1 thread
    PYTHONPATH=. python benchmarks/monitor_overhead.py --device cuda    # when a GPU is there

The loop is the one ``gandiag run`` trains by default, written out as a plain
PyTorch loop: G and D from :func:`gandiag.models.build_models` at the default
:class:`~gandiag.models.ModelConfig` (on ring8: MLPs 256 wide, 2 hidden layers,
z of size 2), Adam at :class:`~gandiag.train.TrainConfig`'s learning rates and
betas, its batch size, one D step per G step, the nonsaturating loss.
``--width`` makes the networks smaller or larger and ``--data`` picks another
registered data set (``digits`` gets the conv nets).

There is one set of networks and optimizers. Each variant is a way of running
the same training step on them:

* ``bare``: no Monitor;
* ``bare-2``: no Monitor either. Its ratio to ``bare`` is the benchmark's own
  noise floor: what two identical loops differ by here;
* ``core``: a Monitor at its default config (every 2nd iteration recorded;
  ``--record-every 1`` records each), without ``real=``/``fake=`` (so no
  diversity metrics);
* ``full``: a second Monitor, with ``real=``/``fake=`` as the README's three
  lines record them: a diversity evaluation every 200 steps of its own and a
  snapshot every 500.

The variants take turns in short blocks of ``--block`` steps, so that the
machine's drift (on a shared VM the step time moves by 20% over seconds) hits
them alike; each round goes in a new random order, so that no variant always
follows the same one and pays for what it left in the caches. Each Monitor
still sees its own unbroken run of steps: its flushes and diversity
evaluations fall inside its own blocks. Sharing the networks keeps the
comparison free of differences between copies (where each copy's tensors sit
in memory, how its training went).
On the CPU a block is timed in process time: time spent descheduled is not the
Monitor's. On CUDA it is wall time between synchronizations. Progress goes to
stderr, the result to stdout (``--json`` for JSON), for example::

    device cpu, 1 thread(s), process_time, ring8, width 256, 3000 steps per variant in blocks of 10, record_every 2
      bare      6641.9 us/step
      bare-2    6604.8 us/step   ratio 0.994 (the noise floor: no Monitor in either)
      core      6834.9 us/step   ratio 1.029 (+193 us/step; 200-step chunks: middle half 0.996-1.061)
      full      6923.0 us/step   ratio 1.042 (+281 us/step; 200-step chunks: middle half 1.017-1.061)

``ratio`` is the variant's total time over ``bare``'s. The target is <= 1.05
for ``full`` at the default cadence. The chunk range is the spread of the same
ratio over consecutive 200-step stretches (each holds four flushes and one
diversity evaluation): when ``bare-2`` is far from 1 or the ranges are wide,
the machine was busy; run it again or raise ``--steps``.
"""
from __future__ import annotations

import argparse
import json
import random
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

VARIANTS = ("bare", "bare-2", "core", "full")
CHUNK = 200  # steps per chunk of the spread: one diversity evaluation and four flushes


class Loop:
    """The networks, their optimizers and one training step, with or without a Monitor."""

    def __init__(self, G: nn.Module, D: nn.Module, data: torch.Tensor, batch: int, device: torch.device):
        self.G, self.D, self.data, self.batch, self.device = G, D, data, batch, device
        train = TrainConfig()
        self.opt_g = torch.optim.Adam(G.parameters(), train.lr_g, betas=train.betas)
        self.opt_d = torch.optim.Adam(D.parameters(), train.lr_d, betas=train.betas)

    def run(self, steps: int, mon: Monitor | None, with_data: bool) -> None:
        G, D, b = self.G, self.D, self.batch
        for _ in range(steps):
            x = self.data[torch.randint(0, self.data.shape[0], (b,), device=self.device)]
            fake = G(torch.randn(b, G.latent_dim, device=self.device))
            d_real, d_fake = D(x), D(fake.detach())
            loss_d = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            if mon is not None:
                mon.discriminator_step(loss=loss_d, real_out=d_real, fake_out=d_fake, real=x if with_data else None)
            self.opt_d.step()

            d_gen = D(fake)
            loss_g = F.softplus(-d_gen).mean()
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            if mon is not None:
                mon.generator_step(loss=loss_g, fake_out=d_gen, fake=fake if with_data else None)
            self.opt_g.step()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def parse(argv) -> tuple[argparse.Namespace, list[str], torch.device]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--steps", type=int, default=3000, help="timed steps per variant (default 3000)")
    p.add_argument("--block", type=int, default=10, help="steps per turn of a variant (default 10)")
    p.add_argument("--batch", type=int, default=TrainConfig().batch_size,
                   help="batch size (default: gandiag run's, %(default)s)")
    p.add_argument("--width", type=int, default=ModelConfig().width,
                   help="hidden width of the networks (default: gandiag run's, %(default)s)")
    p.add_argument("--data", default="ring8", help="a registered data set (default ring8)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {VARIANTS}")
    p.add_argument("--record-every", type=int, default=MonitorConfig().record_every,
                   help="the Monitors' MonitorConfig.record_every (default: the default, %(default)s)")
    p.add_argument("--wall", action="store_true", help="time the CPU by wall clock, not process time")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    for name in ("threads", "steps", "block", "batch", "width", "record_every"):
        if getattr(args, name) < 1:
            p.error(f"Expected --{name.replace('_', '-')} to be an integer >= 1 but got {getattr(args, name)}")
    if args.steps < CHUNK or args.block > CHUNK or CHUNK % args.block:
        p.error(f"Expected --steps >= {CHUNK} and a --block that divides {CHUNK} but got "
                f"--steps {args.steps} --block {args.block}")
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or "bare" not in variants or len(set(variants)) != len(variants):
        p.error(f"Expected --variants from {VARIANTS}, each once, including bare, but got {args.variants!r}")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        p.error(f"Expected --device cpu or cuda (cuda:N) but got {args.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("Expected a CUDA device for --device cuda but torch sees none")
    return args, variants, device


def main(argv=None) -> int:
    args, variants, device = parse(argv)
    try:
        dataset = load_dataset(args.data)
        model = ModelConfig(width=args.width)
    except (DataError, ValueError) as e:
        print(f"monitor_overhead.py: error: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    G, D = (net.to(device) for net in build_models(dataset, model))
    loop = Loop(G, D, dataset.data.to(device), args.batch, device)

    # On the CPU, process time: on a shared machine, time spent descheduled is not
    # the Monitor's cost. On CUDA, wall time, since the GPU runs asynchronously.
    clock = time.process_time if device.type == "cpu" and not args.wall else time.perf_counter
    times: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        mons = {v: Monitor(G, D, Path(tmp) / v, d_output="logits", config=MonitorConfig(record_every=args.record_every))
                for v in variants if v in ("core", "full")}
        for v in variants:  # warm-up: allocator, the full Monitor's diversity evaluator, lazy inits
            loop.run(CHUNK, mons.get(v), v == "full")
        turns = args.steps // args.block
        rng = random.Random(0)
        for r in range(turns):
            order = rng.sample(variants, len(variants))
            for v in order:
                sync(device)
                t0 = clock()
                loop.run(args.block, mons.get(v), v == "full")
                sync(device)
                times[v].append(clock() - t0)
            if (r + 1) % (CHUNK // args.block) == 0:
                done = (r + 1) * args.block
                print(f"{done}/{turns * args.block} steps: " + ", ".join(
                    f"{v} {sum(times[v][-CHUNK // args.block:]) / CHUNK * 1e6:.0f} us" for v in variants),
                    file=sys.stderr)
        for mon in mons.values():
            mon.close()

    steps = turns * args.block
    total = {v: sum(t) for v, t in times.items()}
    per = CHUNK // args.block
    chunks = {v: [sum(t[i:i + per]) for i in range(0, len(t) - per + 1, per)] for v, t in times.items()}
    result = {
        "device": str(device), "threads": args.threads, "data": args.data, "width": args.width,
        "clock": clock.__name__, "steps": steps, "block": args.block, "record_every": args.record_every,
        "us_per_step": {v: round(total[v] / steps * 1e6, 1) for v in variants},
        "ratio_to_bare": {}, "chunk_ratio_quartiles": {},
    }
    for v in variants:
        if v == "bare":
            continue
        result["ratio_to_bare"][v] = round(total[v] / total["bare"], 4)
        ratios = [a / b for a, b in zip(chunks[v], chunks["bare"])]
        q = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else ratios * 3
        result["chunk_ratio_quartiles"][v] = [round(q[0], 4), round(q[2], 4)]
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"device {device}, {args.threads} thread(s), {clock.__name__}, {args.data}, width {args.width}, "
          f"{steps} steps per variant in blocks of {args.block}, record_every {args.record_every}")
    for v in variants:
        line = f"  {v:7s} {result['us_per_step'][v]:8.1f} us/step"
        if v == "bare-2":
            line += f"   ratio {result['ratio_to_bare'][v]:.3f} (the noise floor: no Monitor in either)"
        elif v != "bare":
            lo, hi = result["chunk_ratio_quartiles"][v]
            extra = (total[v] - total["bare"]) / steps * 1e6
            line += (f"   ratio {result['ratio_to_bare'][v]:.3f} ({extra:+.0f} us/step; {CHUNK}-step chunks: "
                     f"middle half {lo:.3f}-{hi:.3f})")
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
