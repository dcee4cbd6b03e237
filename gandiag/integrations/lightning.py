"""Record a PyTorch Lightning GAN with gandiag's Monitor.

A GAN in Lightning uses manual optimization: ``training_step`` calls
``self.manual_backward(loss)`` and then ``opt.step()`` for each network, and
the Monitor's step calls belong between the two. :class:`GandiagCallback` owns a
Monitor for the length of ``trainer.fit`` (opened at ``on_fit_start``, closed
at ``on_fit_end``, marked interrupted on an exception) and offers its two step
calls. Three lines go into the LightningModule (marked ``# gandiag``)::

    import lightning as L
    from gandiag.integrations.lightning import GandiagCallback

    class GAN(L.LightningModule):
        def __init__(self, G, D):
            super().__init__()
            self.automatic_optimization = False
            self.G, self.D = G, D
            self.gandiag = GandiagCallback(G, D, run_dir="runs/lightning-gan")  # gandiag

        def configure_callbacks(self):
            return [self.gandiag]  # gandiag

        def training_step(self, x, batch_idx):
            opt_g, opt_d = self.optimizers()
            fake = self.G(torch.randn(len(x), 16, device=self.device))
            d_real, d_fake = self.D(x), self.D(fake.detach())
            loss_d = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
            opt_d.zero_grad()
            self.manual_backward(loss_d)
            self.gandiag.discriminator_step(loss=loss_d, real_out=d_real, fake_out=d_fake, real=x)  # gandiag
            opt_d.step()
            d_gen = self.D(fake)
            loss_g = F.softplus(-d_gen).mean()
            opt_g.zero_grad()
            self.manual_backward(loss_g)
            self.gandiag.generator_step(loss=loss_g, fake_out=d_gen, fake=fake)  # gandiag
            opt_g.step()

        def configure_optimizers(self):
            return torch.optim.Adam(self.G.parameters(), 2e-4), torch.optim.Adam(self.D.parameters(), 2e-4)

    L.Trainer(max_steps=2000).fit(GAN(G, D), loader)

Under ``precision="16-mixed"`` the callback hands the trainer's GradScaler to
the Monitor, so norms are recorded unscaled and skipped steps as skipped. Under
a DDP strategy, rank 0 writes the run (see :mod:`gandiag.monitor`). A second
``fit`` needs a new ``run_dir`` (or ``overwrite=True``).

Run the test that trains a tiny GAN this way::

    PYTHONPATH=. python -m pytest tests/integrations/test_lightning.py -q
"""
from __future__ import annotations

import os
from typing import Any, Callable, Mapping

from torch import Tensor, nn

try:
    from lightning.pytorch import LightningModule, Trainer
    from lightning.pytorch.callbacks import Callback
except ImportError:  # the older package name
    from pytorch_lightning import LightningModule, Trainer
    from pytorch_lightning.callbacks import Callback

from gandiag.monitor import Monitor, MonitorConfig, MonitorUsageError, check_arguments


class GandiagCallback(Callback):
    """A Lightning callback that records a manual-optimization GAN through a Monitor.

    Args:
        generator: G, a submodule of the LightningModule.
        discriminator: D, a submodule of the LightningModule.
        run_dir: where the run is written (by rank 0 under DDP).
        d_output: ``"logits"``, ``"probs"`` or ``"critic"``, as for :class:`gandiag.monitor.Monitor`.
        config: the Monitor's cadence settings.
        run_config: anything describing the run, stored in ``meta.json``.
        evaluator: a callable ``fake -> dict`` of diversity metrics.
        overwrite: replace a run already in ``run_dir``.
        sampler: optional ``() -> samples`` from the current G (e.g.
            ``lambda: self.G(self.z_fixed)``), on which diversity is measured, as
            for :class:`gandiag.monitor.Monitor`. It runs under ``torch.no_grad``.

    Example:
        >>> self.gandiag = GandiagCallback(self.G, self.D, run_dir="runs/gan")  # in __init__
        >>> return [self.gandiag]                                              # in configure_callbacks
        >>> self.gandiag.generator_step(loss=loss_g, fake_out=d_gen)           # in training_step
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        run_dir: str | os.PathLike,
        d_output: str = "logits",
        *,
        config: MonitorConfig | None = None,
        run_config: Mapping[str, Any] | None = None,
        evaluator: Callable[[Tensor], Mapping[str, float]] | None = None,
        overwrite: bool = False,
        sampler: Callable[[], Tensor] | None = None,
    ):
        check_arguments(generator, discriminator, run_dir, d_output, config=config, evaluator=evaluator,
                        sampler=sampler, run_config=run_config)
        # Kept as given and handed to the Monitor that on_fit_start opens.
        self._monitor_args = dict(
            generator=generator, discriminator=discriminator, run_dir=run_dir, d_output=d_output, config=config,
            run_config={"source": "lightning", **dict(run_config or {})}, evaluator=evaluator, overwrite=overwrite,
            sampler=sampler,
        )
        self._monitor: Monitor | None = None

    @property
    def monitor(self) -> Monitor:
        """The Monitor of the running ``fit``."""
        if self._monitor is None:
            raise MonitorUsageError(
                "Expected a running trainer.fit (the Monitor opens at on_fit_start) but there is none; "
                "return this callback from configure_callbacks() or pass it to Trainer(callbacks=...)"
            )
        return self._monitor

    def discriminator_step(self, *, loss: Tensor, real_out: Tensor, fake_out: Tensor, real: Tensor | None = None) -> None:
        """:meth:`Monitor.discriminator_step`: after ``manual_backward(loss_d)``, before ``opt_d.step()``."""
        self.monitor.discriminator_step(loss=loss, real_out=real_out, fake_out=fake_out, real=real)

    def generator_step(self, *, loss: Tensor, fake_out: Tensor, fake: Tensor | None = None) -> None:
        """:meth:`Monitor.generator_step`: after ``manual_backward(loss_g)``, before ``opt_g.step()``."""
        self.monitor.generator_step(loss=loss, fake_out=fake_out, fake=fake)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if pl_module.automatic_optimization:
            raise MonitorUsageError(
                f"Expected a LightningModule with manual optimization (self.automatic_optimization = False) "
                f"but {type(pl_module).__name__} optimizes automatically; the Monitor's calls go between "
                "manual_backward() and opt.step()"
            )
        # "16-mixed" scales the losses; the Monitor has to know by how much.
        scaler = getattr(getattr(trainer, "precision_plugin", None), "scaler", None)
        self._monitor = Monitor(**self._monitor_args, grad_scaler=scaler)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._close(None)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._close("interrupted")

    def _close(self, status: str | None) -> None:
        if self._monitor is not None:
            monitor, self._monitor = self._monitor, None
            monitor.close(status)
