"""gandiag's own trainer: small GANs under each loss variant, with matched seeds.

The trainer is just one user of :class:`gandiag.Monitor`: it records exactly as
a user's own loop would. Run it with ``gandiag run --loss all --data ring8``.

Matched seeds: for one seed, every loss variant starts from the same G and D
weights and draws the same data batches and the same noise, because each stream
has its own ``torch.Generator`` and none of them depends on the loss. Any
difference between variants then comes from the loss.
"""
from __future__ import annotations

import copy
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from gandiag.data import Dataset, load_dataset
from gandiag.detectors import analyze
from gandiag.losses import LOSSES, LossVariant, get_loss, gradient_penalty
from gandiag.models import ModelConfig, build_models
from gandiag.monitor import Monitor, MonitorConfig
from gandiag.rundir import write_findings


@dataclass(frozen=True)
class TrainConfig:
    """One training run. The CLI's defaults come from here."""

    loss: str = "nonsaturating"
    data: str = "ring8"
    seed: int = 0
    steps: int = 2000          # G updates; ring8 covers its modes in ~1-2k steps with these settings
    batch_size: int = 128
    lr_g: float = 1e-3         # Adam at 1e-3 trains the toy MLPs in minutes on a CPU
    lr_d: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)  # beta1 = 0.5, the usual GAN setting since DCGAN
    d_steps: int = 1           # D updates per G update; raise it to make D stronger
    device: str = "auto"       # "auto" takes CUDA when there is one
    threads: int = 1           # CPU threads while training: these models are tiny, and extra
                               # intra-op threads only contend (10x slower seen on a busy 2-core box)
    model: ModelConfig = field(default_factory=ModelConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    # Arjovsky & Bottou (2017): stop G's updates after this many G steps while D
    # trains on. G's gradient is still computed and recorded as before; only
    # opt_g.step() is skipped. None trains G throughout.
    freeze_g_after: int | None = None

    def __post_init__(self):
        get_loss(self.loss)
        for name in ("steps", "batch_size", "d_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Expected {name} to be an integer >= 1 but got {v!r}")
        for name in ("lr_g", "lr_d"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"Expected {name} to be a positive number but got {v!r}")
        if self.freeze_g_after is not None and (
                not isinstance(self.freeze_g_after, int) or isinstance(self.freeze_g_after, bool)
                or self.freeze_g_after < 0):
            raise ValueError(f"Expected freeze_g_after to be None or an integer >= 0 but got {self.freeze_g_after!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"Expected seed to be an integer >= 0 but got {self.seed!r}")
        if not isinstance(self.threads, int) or isinstance(self.threads, bool) or self.threads < 1:
            raise ValueError(f"Expected threads to be an integer >= 1 but got {self.threads!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"Expected device in ('auto', 'cpu', 'cuda') but got {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("Expected a CUDA device for device='cuda' but torch sees none; use --device cpu or auto")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run_name(config: TrainConfig) -> str:
    data = Path(config.data).stem if os.sep in config.data or config.data.endswith((".npy", ".npz")) else config.data
    return f"{data}-{config.loss}-s{config.seed}"


def initial_models(dataset: Dataset, config: TrainConfig) -> tuple[nn.Module, nn.Module]:
    """G and D as every loss variant of this seed starts them."""
    torch.manual_seed(config.seed)
    return build_models(dataset, config.model)


def train(
    config: TrainConfig,
    run_dir: str | os.PathLike,
    *,
    dataset: Dataset | None = None,
    models: tuple[nn.Module, nn.Module] | None = None,
    on_step: Callable[[int], None] | None = None,
    observer: Callable[[int, nn.Module, nn.Module], None] | None = None,
) -> Path:
    """Train one GAN, recording through a Monitor, then write ``findings.json``.

    A step that produces NaN or Inf ends the run cleanly: the run directory keeps
    everything recorded and its status says ``diverged``.

    Args:
        config: the run's settings.
        run_dir: a new directory to record into.
        dataset: the loaded data (loaded from ``config.data`` when omitted).
        models: initial ``(G, D)``; copied, never trained in place. Pass the same
            pair to several variants to match their starting weights.
        on_step: called after each G step (a progress bar hooks in here).
        observer: called as ``observer(step, G, D)`` after each iteration, with
            the live networks (the zoo measures its ground truth here). It must
            not change them, and its random draws must use its own generator.

    Returns:
        The run directory.
    """
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _train(config, run_dir, dataset, models, on_step, observer)
    finally:
        torch.set_num_threads(previous_threads)


def _train(config, run_dir, dataset, models, on_step, observer=None) -> Path:
    device = resolve_device(config.device)
    if dataset is None:
        dataset = load_dataset(config.data, seed=config.seed)
    if models is None:
        models = initial_models(dataset, config)
    G, D = (copy.deepcopy(m).to(device) for m in models)
    variant: LossVariant = get_loss(config.loss)
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr_g, betas=config.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=config.betas)

    data = dataset.data.to(device)
    # Separate streams, all on the CPU so CUDA and CPU runs draw the same numbers.
    data_gen = torch.Generator().manual_seed(10_000 + config.seed)
    noise_gen = torch.Generator().manual_seed(20_000 + config.seed)
    gp_gen = torch.Generator().manual_seed(30_000 + config.seed)
    latent = G.latent_dim
    bs = config.batch_size

    def batch() -> torch.Tensor:
        idx = torch.randint(0, data.shape[0], (bs,), generator=data_gen)
        return data[idx.to(device)]

    def noise() -> torch.Tensor:
        return torch.randn(bs, latent, generator=noise_gen).to(device)

    run_config = {**asdict(config), "source": "gandiag run", "device": str(device), "variant": variant.description,
                  "data_kind": dataset.kind, "sample_shape": list(dataset.sample_shape)}
    # Diversity is measured on one fixed latent batch through the current G, like
    # the zoo's truth, so a G hopping between modes from batch to batch is seen.
    z_eval = torch.randn(config.monitor.n_eval, latent, generator=torch.Generator().manual_seed(40_000 + config.seed))
    z_eval = z_eval.to(device)
    with Monitor(G, D, run_dir, d_output=variant.d_output, config=config.monitor,
                 run_config=run_config, evaluator=dataset.evaluator(seed=config.seed),
                 sampler=lambda: G(z_eval)) as mon:
        for step in range(config.steps):
            for _ in range(config.d_steps):
                x = batch()
                with torch.no_grad():
                    fake = G(noise())
                d_real, d_fake = D(x), D(fake)
                loss_d = variant.d_loss(d_real, d_fake)
                if variant.gradient_penalty:
                    loss_d = loss_d + variant.gradient_penalty * gradient_penalty(D, x, fake, gp_gen)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                mon.discriminator_step(loss=loss_d, real_out=d_real, fake_out=d_fake, real=x)
                opt_d.step()
                if variant.weight_clip is not None:
                    with torch.no_grad():
                        for p in D.parameters():
                            p.clamp_(-variant.weight_clip, variant.weight_clip)
            fake = G(noise())
            d_gen = D(fake)
            # Only the relativistic loss reads D's real outputs in the G step.
            d_real_g = D(batch()).detach() if variant.name == "rsgan" else d_gen.detach()
            loss_g = variant.g_loss(d_gen, d_real_g)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            mon.generator_step(loss=loss_g, fake_out=d_gen, fake=fake)
            if config.freeze_g_after is None or step < config.freeze_g_after:
                opt_g.step()
            if on_step is not None:
                on_step(step)
            if observer is not None:
                observer(step, G, D)
            if mon.diverged_at is not None:
                break
            # On a CPU a host check costs nothing, so stop at the first bad step; on
            # CUDA the Monitor's flush notices it without a per-step sync.
            if device.type == "cpu" and not (math.isfinite(loss_g.item()) and math.isfinite(loss_d.item())):
                break
    findings = analyze(run_dir)
    write_findings(run_dir, [f.to_dict() for f in findings])
    return Path(run_dir)


@dataclass(frozen=True)
class SweepResult:
    run_dirs: list[Path]
    out: Path


def sweep(
    losses: Sequence[str],
    datasets: Sequence[str],
    seeds: Sequence[int],
    base: TrainConfig,
    out: str | os.PathLike,
    *,
    progress: bool = True,
) -> SweepResult:
    """Train every (data set, loss, seed) combination with matched seeds.

    Runs go to ``out/<data>-<loss>-s<seed>``. Everything is validated before the
    first run starts, so bad input writes nothing.
    """
    for name in losses:
        get_loss(name)
    if not seeds:
        raise ValueError("Expected at least one seed but got none")
    configs = [[replace(base, loss=l, data=d, seed=s) for l in losses] for d in datasets for s in seeds]
    loaded = {d: load_dataset(d, seed=0) for d in datasets}  # fails fast on a bad name or file
    out = Path(out)
    targets = [out / run_name(c) for group in configs for c in group]
    clash = [str(t) for t in targets if t.exists()]
    if clash:
        raise FileExistsError(f"Expected new run directories but these exist: {', '.join(clash[:3])}")
    total = sum(c.steps for group in configs for c in group)
    # The bar opens at the first trained step, so that an error while a run is set up
    # (its data, its Monitor) is the only line printed.
    bar, name, done = None, "", 0

    def tick(_step: int) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=done, desc=name, file=sys.stderr, unit="step", dynamic_ncols=True)
        bar.update(1)

    run_dirs = []
    try:
        for group in configs:
            first = group[0]
            dataset = load_dataset(first.data, seed=first.seed) if first.seed != 0 else loaded[first.data]
            models = initial_models(dataset, first)
            for cfg in group:
                name = run_name(cfg)
                if bar is not None:
                    bar.set_description(name)
                rd = train(cfg, out / name, dataset=dataset, models=models, on_step=tick if progress else None)
                done += cfg.steps
                if bar is not None:  # a diverged run stops early: move the bar past its remaining steps
                    bar.update(done - bar.n)
                run_dirs.append(rd)
    finally:
        if bar is not None:
            bar.close()
    return SweepResult(run_dirs=run_dirs, out=out)
