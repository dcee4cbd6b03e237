"""The Monitor: the one recording path, for gandiag's trainer and for your own loop.

Attach it to an existing loop with three calls::

    mon = gandiag.Monitor(generator=G, discriminator=D, run_dir="runs/my-gan", d_output="logits")
    # after loss_d.backward(), before opt_d.step():
    mon.discriminator_step(loss=loss_d, real_out=d_real, fake_out=d_fake, real=x)
    # after loss_g.backward(), before opt_g.step():
    mon.generator_step(loss=loss_g, fake_out=d_fake_for_g, fake=fake)
    mon.close()

Per step, everything is computed on the device and kept there; numbers reach the
host only every ``flush_every`` steps, in one transfer, so a CUDA loop is not
synchronised per step. Diversity and sample snapshots run on their own cadence.
"""
from __future__ import annotations

import math
import os
import weakref
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from gandiag import schema as S
from gandiag.metrics.gradients import GradNorms, params_fingerprint
from gandiag.rundir import LOCK_FILE, RunWriter


class MonitorUsageError(TypeError):
    """A Monitor method was called with arguments it cannot use."""


@dataclass(frozen=True)
class MonitorConfig:
    """When the Monitor measures what. One source of defaults for API and CLI."""

    flush_every: int = 50        # host transfers and writes; a killed run loses at most this many steps
    diversity_every: int = 100   # diversity costs k-NN searches over ~1,000 samples, so not every step
    n_eval: int = 1000           # samples per diversity evaluation: enough for 25 modes and k=5 PRDC
    samples_every: int = 500     # sample snapshots kept for the report
    n_snapshot: int = 512        # samples per snapshot (the report shows at most this many)
    n_real: int = 1000           # real samples kept as the diversity reference in a user's loop
    layer_norms: bool = True     # per-layer norms cost nothing extra: they come from the same fused reduction

    def __post_init__(self):
        for name in ("flush_every", "diversity_every", "n_eval", "samples_every", "n_snapshot", "n_real"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Expected MonitorConfig.{name} to be an int >= 1 but got {v!r}")


# Column layouts of the per-step device vectors. Aggregation over the D steps of
# one iteration: mean, except where named below.
_D_COLS = (S.LOSS_D, S.GRAD_NORM_D, S.D_REAL, S.D_FAKE, S.D_ACC, S.D_OUT_MIN, S.D_OUT_MAX,
           S.D_PROB_SATURATED, S.D_MOVED_IN_G_STEP, "_nonfinite_d")
_D_MIN = (S.D_OUT_MIN,)
_D_MAX = (S.D_OUT_MAX, S.D_MOVED_IN_G_STEP, "_nonfinite_d")
_G_COLS = (S.LOSS_G, S.GRAD_NORM_G, S.LOGIT_GRAD_G, S.D_FAKE_G, S.G_HAS_GRAD, "_nonfinite_g")
# Columns that are NaN by design when they cannot be measured (a critic has no
# saturated probabilities; no hook fired; no G step yet to compare D against).
_OPTIONAL = (S.D_PROB_SATURATED, S.D_MOVED_IN_G_STEP, S.LOGIT_GRAD_G)


def _check_tensor(name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, Tensor):
        raise MonitorUsageError(f"Expected {name}= to be a torch.Tensor but got {type(value).__name__}")


def _release_lock(path: Path) -> None:
    try:
        if path.read_text().strip() == str(os.getpid()):
            path.unlink()
    except OSError:
        pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Monitor:
    """Records a GAN's training into a run directory that ``gandiag report`` reads.

    Args:
        generator: G. Its gradient norms are read at each :meth:`generator_step`.
        discriminator: D. Its gradient norms are read at each
            :meth:`discriminator_step`; a forward hook on it captures the gradient
            that the generator's loss sends back through D's output.
        run_dir: where to write. Must not already hold a run (unless ``overwrite``).
        d_output: ``"logits"`` (raw, before a sigmoid), ``"probs"`` (D ends in a
            sigmoid) or ``"critic"`` (unbounded scores, e.g. WGAN).
        config: cadence settings; defaults work.
        run_config: anything describing the run (loss name, seed, ...), stored in
            ``meta.json`` for the report.
        evaluator: a callable ``fake -> dict`` of diversity metrics; by default one
            is built from the ``real=`` batches you pass.
        overwrite: replace a run already in ``run_dir``.

    Example:
        >>> with gandiag.Monitor(G, D, "runs/my-gan") as mon:
        ...     for x in loader:
        ...         ...  # D step: backward, then
        ...         mon.discriminator_step(loss=loss_d, real_out=d_real, fake_out=d_fake, real=x)
        ...         ...  # G step: backward, then
        ...         mon.generator_step(loss=loss_g, fake_out=d_gen, fake=fake)
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
    ):
        for name, mod in (("generator", generator), ("discriminator", discriminator)):
            if not isinstance(mod, nn.Module):
                raise MonitorUsageError(f"Expected {name}= to be a torch.nn.Module but got {type(mod).__name__}")
        if d_output not in S.D_OUTPUTS:
            raise MonitorUsageError(f"Expected d_output in {S.D_OUTPUTS} but got {d_output!r}")
        if config is None:
            config = MonitorConfig()
        elif not isinstance(config, MonitorConfig):
            raise MonitorUsageError(f"Expected config= to be a MonitorConfig but got {type(config).__name__}")
        if run_dir is None or not isinstance(run_dir, (str, os.PathLike)):
            raise MonitorUsageError(f"Expected run_dir= to be a path but got {type(run_dir).__name__}")
        self.config = config
        self.d_output = d_output
        self.generator = generator
        self.discriminator = discriminator
        self._g_norms = GradNorms(generator)
        self._d_norms = GradNorms(discriminator)
        self._d_params = self._d_norms.params

        path = Path(run_dir)
        self._lock = path / LOCK_FILE
        self._take_lock(path)
        try:
            self._writer = RunWriter(path, {
                "d_output": d_output,
                "config": dict(run_config or {}),
                "monitor": asdict(config),
                "layers_g": self._g_norms.layers,
                "layers_d": self._d_norms.layers,
            }, overwrite=overwrite)
        except Exception:
            _release_lock(self._lock)
            raise
        self._finalizer = weakref.finalize(self, _release_lock, self._lock)

        self.run_dir = path
        self.step = 0                      # generator steps recorded so far
        self.diverged_at: int | None = None
        self._closed = False
        self._pending_d: list[Tensor] = []  # D-step vectors of the current iteration
        self._buffer: list[tuple[int, Tensor]] = []  # finished iterations not yet flushed
        self._div_rows: dict[int, dict] = {}
        self._fp_after_g: Tensor | None = None
        self._out_grad: list[Tensor] = []
        self._evaluator = evaluator
        self._reals: list[Tensor] = []
        self._n_reals = 0
        self._real_saved = False
        self._fakes: deque[Tensor] = deque()
        self._n_fakes = 0
        self._last_fake: Tensor | None = None
        self._hook = discriminator.register_forward_hook(self._on_d_forward)

    # -- set-up -------------------------------------------------------------
    def _take_lock(self, path: Path) -> None:
        if self._lock.exists():
            try:
                pid = int(self._lock.read_text().strip())
            except (OSError, ValueError):
                pid = -1
            if pid > 0 and _pid_alive(pid):
                raise MonitorUsageError(
                    f"Expected a run directory no live monitor holds but {path} is held by process {pid}; "
                    "close that Monitor or choose another run_dir"
                )
        path.mkdir(parents=True, exist_ok=True)
        self._lock.write_text(str(os.getpid()))

    def _on_d_forward(self, module, inputs, out):
        # Capture d loss / d output during backward without asking the user to
        # call retain_grad(). Only outputs that take part in a backward pass count.
        if isinstance(out, Tensor) and out.requires_grad and torch.is_grad_enabled():
            detached = out.detach()

            def on_grad(grad: Tensor, out=detached) -> None:
                g = grad.detach().float()
                if self.d_output == "probs":
                    p = out.float()
                    g = g * p * (1 - p)  # chain rule back through the sigmoid to the logit
                # Under a mean-reduced loss, the sum over the batch is the per-sample mean.
                self._out_grad.append(g.abs().sum())

            out.register_hook(on_grad)

    # -- conversions ----------------------------------------------------------
    def _probs(self, out: Tensor) -> Tensor:
        out = out.detach().float()
        if self.d_output == "logits":
            return torch.sigmoid(out)
        return out

    def _confidence(self, real_out: Tensor, fake_out: Tensor) -> tuple[Tensor, ...]:
        r, f = self._probs(real_out).flatten(), self._probs(fake_out).flatten()
        if self.d_output == "critic":
            # No fixed decision threshold for a critic: use the midpoint of the two means.
            t = (r.mean() + f.mean()) / 2
        else:
            t = 0.5
        acc = ((r > t).float().sum() + (f < t).float().sum()) / (r.numel() + f.numel())
        if self.d_output == "critic":
            sat = torch.tensor(float("nan"), device=r.device)
        else:
            both = torch.cat([r, f])
            sat = ((both == 0) | (both == 1)).float().mean()
        raw = torch.cat([real_out.detach().float().flatten(), fake_out.detach().float().flatten()])
        return r.mean(), f.mean(), acc, raw.min(), raw.max(), sat

    # -- the two step calls ---------------------------------------------------
    def discriminator_step(self, *, loss: Tensor, real_out: Tensor, fake_out: Tensor, real: Tensor | None = None) -> None:
        """Record one D update. Call after ``loss_d.backward()``, before ``opt_d.step()``.

        Args:
            loss: D's loss (a scalar tensor).
            real_out: D's outputs on the real batch.
            fake_out: D's outputs on the fake batch.
            real: the real batch itself (optional; feeds the diversity metrics).
        """
        self._check_open()
        _check_tensor("loss", loss)
        _check_tensor("real_out", real_out)
        _check_tensor("fake_out", fake_out)
        _check_tensor("real", real, optional=True)
        if not self._d_norms.has_grad() and not self._g_norms.has_grad():
            raise MonitorUsageError(
                "Expected gradients on the discriminator at discriminator_step but neither network has any; "
                "call it after loss_d.backward() and before opt_d.step()"
            )
        self._out_grad.clear()
        dev = loss.device
        total, per_layer = self._d_norms()
        d_real, d_fake, acc, omin, omax, sat = self._confidence(real_out, fake_out)
        fp = params_fingerprint(self._d_params)
        if self._fp_after_g is not None and self._fp_after_g.shape == fp.shape:
            moved = (fp != self._fp_after_g).any().float()
        else:
            moved = torch.tensor(float("nan"), device=fp.device)
        self._fp_after_g = None
        loss_v = loss.detach().float().reshape(())
        nonfinite = (~torch.isfinite(loss_v) | ~torch.isfinite(total)).float()
        vec = torch.stack([loss_v, total, d_real, d_fake, acc, omin, omax, sat.to(dev), moved.to(dev), nonfinite.to(dev)])
        if self.config.layer_norms:
            vec = torch.cat([vec, per_layer.to(dev)])
        self._pending_d.append(vec)
        if real is not None:
            self._keep_real(real)

    def generator_step(self, *, loss: Tensor, fake_out: Tensor, fake: Tensor | None = None) -> None:
        """Record one G update and close the iteration. Call after
        ``loss_g.backward()``, before ``opt_g.step()``.

        Args:
            loss: G's loss (a scalar tensor).
            fake_out: D's outputs on the fakes, as used in G's loss.
            fake: the generated batch (optional; feeds diversity and snapshots).
        """
        self._check_open()
        _check_tensor("loss", loss)
        _check_tensor("fake_out", fake_out)
        _check_tensor("fake", fake, optional=True)
        g_has = self._g_norms.has_grad()
        if not g_has and not self._d_norms.has_grad():
            raise MonitorUsageError(
                "Expected gradients at generator_step but neither network has any; "
                "call it after loss_g.backward() and before opt_g.step()"
            )
        dev = loss.device
        total, per_layer = self._g_norms()
        if self._out_grad:
            logit_grad = torch.stack(self._out_grad).sum()
        else:
            logit_grad = torch.tensor(float("nan"), device=dev)
        self._out_grad.clear()
        loss_v = loss.detach().float().reshape(())
        has = (total > 0).float() if g_has else torch.zeros((), device=dev)
        nonfinite = (~torch.isfinite(loss_v) | ~torch.isfinite(total)).float()
        gvec = torch.stack([loss_v, total, logit_grad.to(dev), self._probs(fake_out).mean().to(dev), has.to(dev), nonfinite.to(dev)])
        if self.config.layer_norms:
            gvec = torch.cat([gvec, per_layer.to(dev)])
        # D's weights now, to tell at the next D step whether anything but opt_d moved them.
        self._fp_after_g = params_fingerprint(self._d_params)
        self._finish_iteration(gvec)
        if fake is not None:
            self._keep_fake(fake)
            self._cadence(self.step)
        self.step += 1
        if self.step % self.config.flush_every == 0:
            self.flush()

    # -- aggregation and writing ------------------------------------------------
    def _aggregate_d(self, dev) -> Tensor:
        n_d = len(_D_COLS) + (len(self._d_norms.layers) if self.config.layer_norms else 0)
        if not self._pending_d:
            return torch.full((n_d + 1,), float("nan"), device=dev)
        m = torch.stack([v.to(dev) for v in self._pending_d])
        agg = m.nanmean(0) if m.shape[0] > 1 else m[0].clone()
        if m.shape[0] > 1:
            for c in _D_MIN:
                i = _D_COLS.index(c)
                agg[i] = m[:, i].min()
            for c in _D_MAX:
                i = _D_COLS.index(c)
                agg[i] = m[:, i].nan_to_num(0.0).max()
        count = torch.tensor([float(m.shape[0])], device=dev)
        self._pending_d.clear()
        return torch.cat([count, agg])

    def _finish_iteration(self, gvec: Tensor) -> None:
        row = torch.cat([self._aggregate_d(gvec.device), gvec])
        self._buffer.append((self.step, row))

    def _columns(self) -> list[str]:
        cols = [S.D_STEPS, *_D_COLS]
        if self.config.layer_norms:
            cols += [S.GRAD_NORM_D_LAYER + n for n in self._d_norms.layers]
        cols += list(_G_COLS)
        if self.config.layer_norms:
            cols += [S.GRAD_NORM_G_LAYER + n for n in self._g_norms.layers]
        return cols

    def flush(self) -> None:
        """Move buffered numbers to the host and append them to the run directory."""
        if not self._buffer and not self._div_rows:
            return
        cols = self._columns()
        rows = []
        if self._buffer:
            steps = [s for s, _ in self._buffer]
            values = torch.stack([r for _, r in self._buffer]).cpu().tolist()  # the one sync per flush
            self._buffer.clear()
            d_cols, g_cols = set(_D_COLS) | {S.D_STEPS}, set(_G_COLS)
            for step, vals in zip(steps, values):
                d = dict(zip(cols, vals))
                has_d = not math.isnan(d[S.D_STEPS])
                has_g = not math.isnan(d[S.G_HAS_GRAD])
                row = {S.STEP: step}
                for c, v in d.items():
                    if c.startswith("_"):
                        continue
                    in_d = c in d_cols or c.startswith(S.GRAD_NORM_D_LAYER)
                    if not (has_d if in_d else has_g):
                        continue
                    # NaN is kept where it means a blown-up value, dropped where it means "not measured".
                    if math.isnan(v) and c in _OPTIONAL:
                        continue
                    row[c] = v
                flags = [d[k] for k, present in (("_nonfinite_d", has_d), ("_nonfinite_g", has_g)) if present]
                bad = float(max(flags)) if flags else 0.0
                row[S.NONFINITE] = bad
                if bad and self.diverged_at is None:
                    self.diverged_at = step
                row.update(self._div_rows.pop(step, {}))
                rows.append(row)
        for step in sorted(self._div_rows):
            rows.append({S.STEP: step, **self._div_rows.pop(step)})
        self._writer.append(rows)

    # -- samples and diversity ----------------------------------------------------
    def _keep_real(self, real: Tensor) -> None:
        if self._n_reals >= self.config.n_real:
            return
        self._reals.append(real.detach())
        self._n_reals += real.shape[0]
        if self._n_reals >= min(self.config.n_real, self.config.n_snapshot) and not self._real_saved:
            reals = torch.cat(self._reals)
            self._writer.save_real(reals[: self.config.n_snapshot].float().cpu().numpy())
            self._real_saved = True

    def _keep_fake(self, fake: Tensor) -> None:
        f = fake.detach()
        self._last_fake = f
        self._fakes.append(f)
        self._n_fakes += f.shape[0]
        while self._fakes and self._n_fakes - self._fakes[0].shape[0] >= self.config.n_eval:
            self._n_fakes -= self._fakes.popleft().shape[0]

    def _cadence(self, step: int) -> None:
        cfg = self.config
        if step % cfg.samples_every == 0:
            self._snapshot(step)
        if step % cfg.diversity_every == 0:
            self._evaluate(step)

    def _snapshot(self, step: int) -> None:
        if self._last_fake is None:
            return
        fakes = torch.cat(list(self._fakes))[-self.config.n_snapshot:]
        self._writer.save_samples(step, fakes.float().cpu().numpy())

    def _evaluate(self, step: int) -> None:
        evaluator = self._get_evaluator()
        if evaluator is None or not self._fakes:
            return
        fakes = torch.cat(list(self._fakes))[-self.config.n_eval:].float()
        if not torch.isfinite(fakes).all():
            return
        self._div_rows[step] = {k: float(v) for k, v in evaluator(fakes).items()}

    def _get_evaluator(self):
        if self._evaluator is None and self._n_reals >= min(self.config.n_real, 2 * self.config.n_eval // 4):
            from gandiag.metrics.diversity import DiversityEvaluator

            self._evaluator = DiversityEvaluator(torch.cat(self._reals).float().cpu())
        return self._evaluator

    # -- life cycle -----------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise MonitorUsageError("Expected an open Monitor but this one is closed")

    def close(self, status: str | None = None) -> None:
        """Flush everything and mark the run finished (``completed``, or
        ``diverged`` when a NaN/Inf was recorded). Safe to call twice."""
        if self._closed:
            return
        if self._pending_d:
            # D steps with no G step after them: still a row, with G's columns empty.
            n_g = len(_G_COLS) + (len(self._g_norms.layers) if self.config.layer_norms else 0)
            dev = self._pending_d[0].device
            self._finish_iteration(torch.full((n_g,), float("nan"), device=dev))
            self.step += 1
        last = self.step - 1
        if self._last_fake is not None and last >= 0:
            self._snapshot(last)
        self.flush()
        if self.diverged_at is not None:
            status = "diverged"
        elif status is None:
            status = "completed"
        extra = {"steps_recorded": self.step}
        if self.diverged_at is not None:
            extra["diverged_at"] = self.diverged_at
        self._writer.close(status, **extra)
        self._hook.remove()
        self._closed = True
        self._finalizer()

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close("interrupted" if exc_type is not None else None)
