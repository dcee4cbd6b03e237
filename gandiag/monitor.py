"""The Monitor: the one recording path, for gandiag's trainer and for your own loop.

Attach it to an existing loop with three calls::

    mon = gandiag.Monitor(generator=G, discriminator=D, run_dir="runs/my-gan", d_output="logits")
    # after loss_d.backward(), before opt_d.step():
    mon.discriminator_step(loss=loss_d, real_out=d_real, fake_out=d_fake, real=x)
    # after loss_g.backward(), before opt_g.step():
    mon.generator_step(loss=loss_g, fake_out=d_fake_for_g, fake=fake)
    mon.close()

Every ``record_every``-th iteration (a G step and the D steps before it;
every 2nd by default) is recorded; the calls of the others are checked and
counted, nothing more. In a recorded step the Monitor only reads what will be
gone by the next step (the per-parameter gradient norms, in one fused
``_foreach_norm``, and the gradient reaching D's output) and keeps references
to the rest; about every ``fingerprint_every``-th step it also takes a
fingerprint of D's weights.
Every ``flush_every`` steps (or after ``flush_seconds``, if sooner) it turns
the buffered steps into metrics with a few batched reductions and moves them to
the host in one transfer, so a CUDA loop is never synchronised per step.
Diversity and sample snapshots run on their own cadence.

Mixed precision: pass the ``torch.amp.GradScaler`` your loop uses as
``grad_scaler=``. Gradient norms and the logit gradient are then recorded
unscaled, and steps the scaler skips for inf/NaN gradients are recorded in
``skipped_g``/``skipped_d`` instead of as divergence::

    scaler.scale(loss_d).backward()
    mon.discriminator_step(loss=loss_d, ...)   # the unscaled loss
    scaler.step(opt_d); scaler.update()

Calling ``scaler.unscale_(opt_d)`` before the Monitor call (to clip, say) is
fine too: the scaler's per-optimizer state says the gradients are unscaled
already. One scaler serves both networks, as in PyTorch's recipe for several
optimizers. The scale is read from the scaler's device tensor, without a sync;
an object that only has GradScaler's methods is asked ``get_scale()`` instead,
which reads the host.

Gradient accumulation: call each step method once, after the last micro-batch's
backward. Norms are those of the accumulated ``.grad``. Divide each micro-batch
loss by the number of micro-batches (so the accumulated gradient is that of the
full-batch mean loss) and pass their sum as ``loss=``; the logit gradient is
then the per-sample mean over the full batch. ``fake_out=`` may be the
concatenation of the micro-batches' outputs.

DistributedDataParallel: create the Monitor on every rank after
``torch.distributed.init_process_group``, with the same arguments, and call it
on every rank, the same number of times (including ``close()``). Each flush
all-gathers the buffered rows in one collective: means across ranks, min/max
for ``d_out_min``/``d_out_max``, the worst rank for flags. Only rank 0 touches
the file system (run directory, lock, samples) and computes diversity.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import time
import warnings
import weakref
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from gandiag import schema as S
from gandiag.metrics.gradients import GradNorms
from gandiag.output_capture import OutputTap, SwitchableHook
from gandiag.rundir import LOCK_FILE, STATUSES, RunDirError, RunWriter, describe_os_error, jsonable

try:
    import fcntl
except ImportError:  # Windows: fall back to a pid file without an OS lock
    fcntl = None


class MonitorUsageError(TypeError):
    """A Monitor method was called with arguments it cannot use."""


@dataclass(frozen=True)
class MonitorConfig:
    """When the Monitor measures what. One source of defaults for API and CLI."""

    # Every record_every-th iteration (a G step and the D steps before it) is
    # recorded whole; the others are checked at the call and otherwise only
    # counted, except that an iteration is recorded after all when its D step
    # would otherwise be the first in record_every iterations to go unrecorded
    # (a loop that steps D every 2nd iteration). Every 2nd about halves what the
    # Monitor costs per step (on the CPU ~5% of a 5 ms loop when every step is
    # recorded: reading each gradient, keeping D's outputs, the hook), and the
    # full zoo's confusion counts came out the same as with every step. A NaN
    # shows at most record_every - 1 steps late (it stays: the weights have it),
    # or at close() when the loop stopped on it.
    record_every: int = 2
    flush_every: int = 50        # host transfers and writes; a killed run loses at most this many steps
    # ... or sooner, once the buffered steps took this many seconds of their own
    # (the iterations since the first of them times the shortest one; not under DDP,
    # where every rank must flush at the same step). On the CPU each buffered
    # step's small tensors sit among the big ones the next steps allocate and free,
    # and keep the allocator from reusing that memory: 50 steps of a 2048-wide MLP
    # at batch 512 (0.5 s a step) grew the process by 1.1 GB, 10 steps by 0.1 GB.
    # A small loop (5 ms a step) still flushes every 50 steps, where a flush's own
    # ~1.3 ms is what counts.
    flush_seconds: float = 1.0
    # Diversity costs k-NN searches over n_eval samples (~8-12 ms on one CPU core
    # at 1,000). Every 200 steps that is ~2% of a small CPU loop; every 100 it was
    # ~4%, too much for the 5% budget with the per-step recording. 200 still gives
    # the detectors 10 evaluations in a 2,000-step run (they need about 8), at the
    # price of a collapse being seen up to 200 steps later.
    diversity_every: int = 200
    n_eval: int = 1000           # samples per diversity evaluation: enough for 25 modes and k=5 PRDC
    samples_every: int = 500     # sample snapshots kept for the report
    n_snapshot: int = 512        # samples per snapshot (the report shows at most this many)
    n_real: int = 1000           # real samples kept as the diversity reference in a user's loop
    layer_norms: bool = True     # per-layer norms cost nothing extra: they come from the same fused reduction
    # D's weights are compared across every fingerprint_every-th G step: a shared
    # optimizer moves D on every G step, so sampling loses nothing and saves two
    # reads of all of D's weights on the other steps (at every 5th step the reads
    # still cost ~0.3% of a small CPU loop). The finding needs 3 compared steps.
    fingerprint_every: int = 10

    def __post_init__(self):
        for name in ("record_every", "flush_every", "diversity_every", "n_eval", "samples_every", "n_snapshot",
                     "n_real", "fingerprint_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Expected MonitorConfig.{name} to be an int >= 1 but got {v!r}")
        if isinstance(self.flush_seconds, bool) or not isinstance(self.flush_seconds, (int, float)) \
                or not self.flush_seconds > 0:
            raise ValueError(f"Expected MonitorConfig.flush_seconds to be a number > 0 but got {self.flush_seconds!r}")
        if not isinstance(self.layer_norms, bool):
            raise ValueError(f"Expected MonitorConfig.layer_norms to be a bool but got {self.layer_norms!r}")


# Column layouts of the per-row matrix built at each flush. Aggregation over the
# D steps of one iteration: mean, except where named below.
_D_COLS = (S.LOSS_D, S.GRAD_NORM_D, S.D_REAL, S.D_FAKE, S.D_ACC, S.D_OUT_MIN, S.D_OUT_MAX,
           S.D_PROB_SATURATED, S.D_MOVED_IN_G_STEP, S.SKIPPED_D, "_nonfinite_d")
_D_MEAN = (S.LOSS_D, S.D_REAL, S.D_FAKE, S.D_ACC, S.D_PROB_SATURATED)
_G_COLS = (S.LOSS_G, S.GRAD_NORM_G, S.LOGIT_GRAD_G, S.D_FAKE_G, S.G_HAS_GRAD, S.SKIPPED_G, "_nonfinite_g")
# Across ranks (DDP): mean, except these. A flag is raised if any rank raised it;
# g_has_grad is lowered if any rank lacked G's gradient.
_RANK_MIN = (S.D_OUT_MIN, S.G_HAS_GRAD)
_RANK_MAX = (S.D_OUT_MAX, S.D_MOVED_IN_G_STEP, S.SKIPPED_D, S.SKIPPED_G, S.D_STEPS, "_nonfinite_d", "_nonfinite_g")
# Columns that are NaN by design when they cannot be measured (a critic has no
# saturated probabilities; no hook fired; D not compared on this step; no scaler).
_OPTIONAL = (S.D_PROB_SATURATED, S.D_MOVED_IN_G_STEP, S.LOGIT_GRAD_G, S.SKIPPED_D, S.SKIPPED_G)

_NAN = float("nan")


def _check_tensor(name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, Tensor):
        raise MonitorUsageError(f"Expected {name}= to be a torch.Tensor but got {type(value).__name__}")


def _check_scalar(value: Any) -> None:
    _check_tensor("loss", value)
    if value.numel() != 1:
        raise MonitorUsageError(f"Expected loss= to be a scalar tensor but got shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise MonitorUsageError(f"Expected loss= to be a floating-point scalar, the loss you call backward() "
                                f"on, but got {value.dtype}")


def _check_outputs_float(**outputs: Tensor) -> None:
    for name, t in outputs.items():
        if not t.is_floating_point():
            raise MonitorUsageError(f"Expected {name}= to be D's raw output (floating point) but got {t.dtype}; "
                                    "pass D's scores, not decisions made from them")


_SCALER_METHODS = ("scale", "unscale_", "step", "update", "get_scale")


def _check_scaler(scaler: Any) -> None:
    missing = [m for m in _SCALER_METHODS if not callable(getattr(scaler, m, None))]
    if missing:
        raise MonitorUsageError(
            f"Expected grad_scaler= to be a torch.amp.GradScaler (or an object with its "
            f"{'/'.join(_SCALER_METHODS)} methods) but got {type(scaler).__name__}"
        )


def check_arguments(generator: Any, discriminator: Any, run_dir: Any, d_output: Any, *, config: Any = None,
                    evaluator: Any = None, grad_scaler: Any = None, sampler: Any = None,
                    run_config: Any = None) -> None:
    """Raise :class:`MonitorUsageError` for arguments a :class:`Monitor` cannot
    use; integrations call it where they take the Monitor's arguments."""
    for name, mod in (("generator", generator), ("discriminator", discriminator)):
        if not isinstance(mod, nn.Module):
            raise MonitorUsageError(f"Expected {name}= to be a torch.nn.Module but got {type(mod).__name__}")
    if d_output not in S.D_OUTPUTS:
        raise MonitorUsageError(f"Expected d_output in {S.D_OUTPUTS} but got {d_output!r}")
    if config is not None and not isinstance(config, MonitorConfig):
        raise MonitorUsageError(f"Expected config= to be a MonitorConfig but got {type(config).__name__}")
    if run_dir is None or not isinstance(run_dir, (str, os.PathLike)):
        raise MonitorUsageError(f"Expected run_dir= to be a path but got {type(run_dir).__name__}")
    if not str(os.fspath(run_dir)).strip():
        raise MonitorUsageError("Expected run_dir= to name a directory but got an empty path")
    if evaluator is not None and not callable(evaluator):
        raise MonitorUsageError(f"Expected evaluator= to be callable but got {type(evaluator).__name__}")
    if sampler is not None and not callable(sampler):
        raise MonitorUsageError(f"Expected sampler= to be callable but got {type(sampler).__name__}")
    if grad_scaler is not None:
        _check_scaler(grad_scaler)
    if run_config is not None:
        _check_run_config(run_config)


def _check_run_config(run_config: Any) -> None:
    # It goes into meta.json: say which entry JSON cannot hold now, not at the first write.
    if not isinstance(run_config, Mapping):
        raise MonitorUsageError(f"Expected run_config= to be a mapping but got {type(run_config).__name__}")
    bad = _unjsonable(dict(run_config), "run_config")
    if bad is not None:
        where, value = bad
        raise MonitorUsageError(
            f"Expected run_config= values that JSON can store (numbers, strings, lists, dicts) but "
            f"{where} is of type {type(value).__name__}; store its name instead, e.g. str(value)"
        )


def _unjsonable(value: Any, where: str) -> tuple[str, Any] | None:
    """The first place in ``value`` that JSON cannot hold, as ``(path, value)``."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            found = _unjsonable(v, f"{where}[{k!r}]")
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _unjsonable(v, f"{where}[{i}]")
            if found:
                return found
        return None
    try:
        json.dumps(jsonable(value))
    except (TypeError, ValueError):
        return where, value
    return None



def _unwrap(module: nn.Module) -> nn.Module:
    # DDP and DataParallel own the real network as .module; naming layers and
    # hooking the forward on it keeps layer names free of the "module." prefix.
    from torch.nn.parallel import DataParallel, DistributedDataParallel

    while isinstance(module, (DataParallel, DistributedDataParallel)):
        module = module.module
    return module


# -- the run-directory lock ----------------------------------------------------
class _Lock:
    """An exclusive hold on a run directory, across threads and processes.

    With ``fcntl`` the hold is an OS file lock, which the kernel drops when the
    holding process dies, so a killed run never leaves the directory held. The
    file names the holder's pid for the error message.
    """

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        self._pid = os.getpid()

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            self._acquire_pid_file()
            return
        for _ in range(5):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                self._refuse()
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder unlinked it between our open and our lock: try again
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            self._fd, self._pid = fd, os.getpid()
            return
        self._refuse()

    def _acquire_pid_file(self) -> None:
        if self.path.exists():
            pid = self._holder()
            if pid is not None and _pid_alive(pid):
                self._refuse()
        self.path.write_text(str(os.getpid()))

    def _holder(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None

    def _refuse(self) -> None:
        pid = self._holder()
        who = f"process {pid}" if pid is not None else "another process"
        raise MonitorUsageError(
            f"Expected a run directory no live monitor holds but {self.path.parent} is held by {who}; "
            "close that Monitor or choose another run_dir"
        )

    def release(self) -> None:
        if fcntl is None:
            if self._holder() == os.getpid():
                self.path.unlink(missing_ok=True)
            return
        if self._fd is None or os.getpid() != self._pid:
            return  # a forked child (a DataLoader worker, say) must not drop its parent's hold
        try:
            self.path.unlink(missing_ok=True)  # unlink while still holding, so no one locks a dead file
        finally:
            os.close(self._fd)
            self._fd = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- what one step call keeps until the next flush -------------------------------
class _DStep:
    __slots__ = ("row", "norms", "scale", "loss", "real_out", "fake_out", "fp_d", "fp_before", "fp_now")

    def __init__(self, row, norms, scale, loss, real_out, fake_out, fp, fp_now):
        self.row, self.norms, self.scale, self.loss = row, norms, scale, loss
        self.real_out, self.fake_out, self.fp_now = real_out, fake_out, fp_now
        # D's weights at the D step before the G step, and after that G step
        self.fp_d, self.fp_before = fp if fp is not None else (None, None)


class _GStep:
    __slots__ = ("row", "norms", "scale", "out_scale", "loss", "fake_out", "out_grads", "has_grad")

    def __init__(self, row, norms, scale, out_scale, loss, fake_out, out_grads, has_grad):
        self.row, self.norms, self.scale, self.out_scale, self.loss = row, norms, scale, out_scale, loss
        self.fake_out, self.out_grads, self.has_grad = fake_out, out_grads, has_grad


def _join(join: Callable, parts: list[Tensor], dev: torch.device) -> Tensor:
    """``join(parts)`` (torch.stack or torch.cat) on ``dev``."""
    try:
        return join(parts).to(dev)
    except RuntimeError:  # parts on several devices (a network spread over GPUs)
        return join([p.to(dev) for p in parts])


def _stack_rows(lists: list[list[Tensor]], dev: torch.device) -> Tensor:
    """``[len(lists), len(lists[0])]`` from lists of 0-d tensors."""
    return _join(torch.stack, list(itertools.chain.from_iterable(lists)), dev).view(len(lists), -1)


def _scalars(tensors: list[Tensor], dev: torch.device) -> Tensor:
    """``[len(tensors)]`` from one-element tensors."""
    return _join(torch.stack, [t if t.ndim == 0 else t.reshape(()) for t in tensors], dev)


class _Pieces:
    """Several tensors' elements as one float array, with per-tensor reductions.

    Tensors of one size (a fixed batch size: the usual case) are joined into
    ``[n, size]`` and reduced along dim 1; otherwise they are concatenated and
    reduced by segment index, which costs more.
    """

    def __init__(self, tensors: list[Tensor], dev: torch.device):
        self.n = len(tensors)
        if tensors[0].ndim and len({t.shape for t in tensors}) == 1:
            # One shape: a single cat, then a view. Flattening each tensor first
            # costs a reshape per tensor, several times the cat itself.
            size = tensors[0].numel()
            self.sizes, self.uniform = [size] * self.n, True
            flat = _join(torch.cat, tensors, dev).view(self.n, size)
        else:
            parts = [t.reshape(-1) for t in tensors]
            self.sizes = [p.numel() for p in parts]
            self.uniform = len(set(self.sizes)) == 1
            flat = _join(torch.stack if self.uniform else torch.cat, parts, dev)
        self.values = flat.float()
        if not self.uniform:
            sizes = torch.tensor(self.sizes, device=dev)
            self._seg = torch.repeat_interleave(torch.arange(self.n, device=dev), sizes)

    def sum(self, v: Tensor) -> Tensor:
        if self.uniform:
            return v.sum(1)
        return torch.zeros(self.n, device=v.device, dtype=v.dtype).index_add_(0, self._seg, v)

    def amin(self, v: Tensor) -> Tensor:
        return v.amin(1) if self.uniform else self._scatter(v, "amin")

    def amax(self, v: Tensor) -> Tensor:
        return v.amax(1) if self.uniform else self._scatter(v, "amax")

    def spread(self, per_piece: Tensor) -> Tensor:
        """A value per tensor, broadcast to the elements."""
        return per_piece[:, None] if self.uniform else per_piece[self._seg]

    def _scatter(self, v: Tensor, how: str) -> Tensor:
        out = torch.full((self.n,), _NAN, device=v.device, dtype=v.dtype)
        return out.scatter_reduce_(0, self._seg, v, how, include_self=False)


class _Transfer:
    """Device tensors gathered during a flush and brought to the host in one copy."""

    def __init__(self, dev: torch.device):
        self.dev = dev
        self._parts: list[Tensor] = []

    def add(self, t: Tensor) -> int:
        self._parts.append(t)
        return len(self._parts) - 1

    def fetch(self) -> list[np.ndarray]:
        if not self._parts:
            return []
        flat = torch.cat([t.reshape(-1).to(self.dev, torch.float32) for t in self._parts])
        host = flat.cpu().numpy().astype(np.float64)  # the one sync per flush
        out, i = [], 0
        for t in self._parts:
            out.append(host[i:i + t.numel()].reshape(t.shape))
            i += t.numel()
        return out


def _differs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, whether two fingerprints differ (a NaN equals a NaN)."""
    return (~((a == b) | (np.isnan(a) & np.isnan(b)))).any(1)


def _grew(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, whether some tensor's norm grew from ``a`` to ``b`` (or turned NaN)."""
    return ((b > a) | (np.isnan(b) & ~np.isnan(a))).any(1)


def _per_row(values: np.ndarray, rows: np.ndarray, n: int, how: str) -> np.ndarray:
    """Aggregate per-step values into ``n`` rows: ``sum``, ``min`` or ``max``."""
    ufunc, start = {"sum": (np.add, 0.0), "min": (np.minimum, math.inf), "max": (np.maximum, -math.inf)}[how]
    out = np.full((n, *values.shape[1:]), start)
    ufunc.at(out, rows, values)
    return out


class Monitor:
    """Records a GAN's training into a run directory that ``gandiag report`` reads.

    Args:
        generator: G. Its gradient norms are read at each recorded :meth:`generator_step`.
        discriminator: D. Its gradient norms are read at each recorded
            :meth:`discriminator_step`; a forward hook on it captures the gradient
            that the generator's loss sends back through D's output (on forwards
            whose input carries a gradient: G's fakes). DDP or DataParallel
            wrappers are looked through.
        run_dir: where to write. Must not already hold a run (unless ``overwrite``).
        d_output: ``"logits"`` (raw, before a sigmoid), ``"probs"`` (D ends in a
            sigmoid) or ``"critic"`` (unbounded scores, e.g. WGAN). A D that
            scores several patches per sample (``[B, 1, H, W]``) is fine: each
            score counts as one output, so D's means and accuracy and the logit
            gradient are over every patch of every sample.
        config: cadence settings; defaults work.
        run_config: anything describing the run (loss name, seed, ...), stored in
            ``meta.json`` for the report.
        evaluator: a callable ``fake -> dict`` of diversity metrics; by default one
            is built from the ``real=`` batches you pass.
        overwrite: replace a run already in ``run_dir``.
        grad_scaler: the ``torch.amp.GradScaler`` that scales both losses, if
            the loop uses mixed precision. Every recorded backward must then be
            on ``scaler.scale(loss)``.
        sampler: optional ``() -> samples`` that draws fresh samples from the
            current G (e.g. ``lambda: G(z_fixed)``). When given, the diversity
            metrics are measured on its output, one G, instead of on the last
            ``fake=`` batches, which mix several recent G's: a G that hops
            between modes from step to step looks diverse in the mixture.
            It is called under ``torch.no_grad`` at each diversity evaluation
            (every ``diversity_every`` steps, and at :meth:`close` in a run too
            short for a second one) and must return a float batch shaped like
            the ``fake=`` batches.

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
        grad_scaler: Any = None,
        sampler: Callable[[], Tensor] | None = None,
    ):
        check_arguments(generator, discriminator, run_dir, d_output, config=config, evaluator=evaluator,
                        grad_scaler=grad_scaler, sampler=sampler, run_config=run_config)
        self._sampler = sampler
        config = config or MonitorConfig()
        generator, discriminator = _unwrap(generator), _unwrap(discriminator)
        self.config = config
        self.d_output = d_output
        self.generator = generator
        self.discriminator = discriminator
        self.grad_scaler = grad_scaler
        enabled = getattr(grad_scaler, "is_enabled", None)
        self._scaler = grad_scaler if grad_scaler is not None and (enabled is None or enabled()) else None
        self._g = GradNorms(generator)
        self._d = GradNorms(discriminator)
        self._cols = self._columns()
        self._n_d = 1 + len(_D_COLS) + (len(self._d.layers) if config.layer_norms else 0)
        # Masks over the columns, for the rows built at flush: which are D's (the
        # others are G's), which may be dropped where NaN, which are never written.
        self._is_d = np.array([c in _D_COLS or c == S.D_STEPS or c.startswith(S.GRAD_NORM_D_LAYER) for c in self._cols])
        self._optional = np.array([c in _OPTIONAL for c in self._cols])
        self._public = np.array([not c.startswith("_") for c in self._cols])
        self._i = {c: self._cols.index(c) for c in (S.D_STEPS, S.G_HAS_GRAD, "_nonfinite_d", "_nonfinite_g")}
        # The columns whose presence varies from row to row, given the rest.
        self._varying = np.flatnonzero(self._optional).tolist() + [self._i[S.D_STEPS], self._i[S.G_HAS_GRAD]]

        self.rank, self.world_size, self._group = _distributed()
        self.run_dir = Path(run_dir).expanduser()
        self._writer: RunWriter | None = None
        self._lock: _Lock | None = None
        self._finalizer = None
        if self.rank == 0:
            self._open_run_dir(run_config, overwrite)

        # The buffered steps are also due by time (not under DDP: by step only). A
        # step's time is the shortest interval between two G steps since the last
        # flush: it does not count time the loop spends elsewhere (an evaluation,
        # or other loops taking turns, as in the overhead benchmark).
        self._last_g_call = math.nan
        self._step_seconds = math.inf
        self.step = 0                      # generator steps seen so far
        self._recording = True             # whether the iteration under way is recorded
        self._last_d_row = -(1 << 62)      # the iteration of the latest recorded D step
        self._unrecorded: dict[str, Any] = {}  # the latest unrecorded iteration's step and losses
        self._rows_written = 0
        self.diverged_at: int | None = None
        self._closed = False
        self._rows: list[int] = []          # steps of the buffered iterations
        self._d_steps: list[_DStep] = []    # buffered D steps, across iterations
        self._g_steps: list[_GStep] = []
        self._div_rows: dict[int, dict] = {}
        # D's weights at the last D step before a G step and at that G step, to be
        # compared with them at the next D step; (None, list) when that iteration had no D step.
        self._fp_after_g: tuple[list[Tensor] | None, list[Tensor]] | None = None
        self._fp_at_d: list[Tensor] | None = None
        self._scale_src: Tensor | None = None
        self._scale_copy: tuple[int, Tensor] | None = None
        self._evaluator = evaluator
        self._reals: list[Tensor] = []
        self._n_reals = 0
        self._real_saved = False
        self._fakes: deque[Tensor] = deque()
        self._n_fakes = 0
        self._last_fake: Tensor | None = None
        self._sample_shape: torch.Size | None = None  # per sample, of the first real=/fake= batch seen
        self._sample_source = ""                       # which of the two that was
        self._evaluated_at: int | None = None  # the step of the latest diversity evaluation
        self._n_evaluations = 0
        # A forward hook adds a few microseconds to every call of D, so it is on only
        # while the forward it exists for (G's step) can come: from a D step to the
        # next G step (for good, once a loop shows two G steps in a row).
        self._tap = OutputTap()
        self._hook = SwitchableHook(self.discriminator, self._tap)
        self._warned_uncaptured = False
        self._hook_always = False

    # -- set-up -------------------------------------------------------------
    def _open_run_dir(self, run_config, overwrite: bool) -> None:
        try:
            self._create_run_dir(run_config, overwrite)
        except OSError as e:
            raise RunDirError(
                f"Expected a directory gandiag can write at run_dir={str(self.run_dir)!r} but got "
                f"{describe_os_error(e)}"
            ) from None

    def _create_run_dir(self, run_config, overwrite: bool) -> None:
        lock = _Lock(self.run_dir / LOCK_FILE)
        lock.acquire()
        try:
            self._writer = RunWriter(self.run_dir, {
                "d_output": self.d_output,
                "config": dict(run_config or {}),
                "monitor": asdict(self.config),
                "layers_g": self._g.layers,
                "layers_d": self._d.layers,
                "grad_scaler": self._scaler is not None,
                "world_size": self.world_size,
            }, overwrite=overwrite)
        except Exception:
            lock.release()
            raise
        self._lock = lock
        self._finalizer = weakref.finalize(self, lock.release)

    def _scale(self) -> tuple[Tensor | None, bool]:
        """The scaler's current scale as a device tensor of its own (None: nothing
        is scaled yet), and whether the user already unscaled the gradients.
        Only called with a scaler."""
        sc = self._scaler
        src = getattr(sc, "_scale", None)
        if not isinstance(src, Tensor):
            if hasattr(sc, "_scale"):  # a GradScaler that has not scaled anything yet
                return None, False
            # Not torch's GradScaler: ask it, at the cost of a host read.
            src = torch.tensor(float(sc.get_scale()))
        # update() changes the scale in place after our call, so keep a copy; one
        # per scale change (its version counter says when), not one per step.
        cached = self._scale_copy
        if cached is None or self._scale_src is not src or cached[0] != src._version:
            self._scale_src = src
            cached = self._scale_copy = (src._version, src.detach().clone())
        states = getattr(sc, "_per_optimizer_states", None) or {}
        unscaled = any(getattr(st.get("stage"), "name", None) == "UNSCALED"
                       for st in states.values() if isinstance(st, dict))
        return cached[1], unscaled

    # -- the two step calls ---------------------------------------------------
    def discriminator_step(self, *, loss: Tensor, real_out: Tensor, fake_out: Tensor, real: Tensor | None = None) -> None:
        """Record one D update. Call after ``loss_d.backward()``, before ``opt_d.step()``.

        Args:
            loss: D's loss (a scalar tensor; unscaled under a GradScaler).
            real_out: D's outputs on the real batch.
            fake_out: D's outputs on the fake batch.
            real: the real batch itself (optional; feeds the diversity metrics).
        """
        if not self._recording and (self._fp_after_g is not None
                                    or self.step - self._last_d_row >= self.config.record_every):
            # Recorded after all: a D-weight fingerprint waits to be compared here, or
            # no D step was recorded for record_every iterations (a loop whose D steps
            # all fall on iterations that are not recorded, D every 2nd step say).
            self._recording = True
        if self._recording:
            # The hook goes on first, also for a call refused below: G's next step then
            # still has its signal recorded, and is not taken for a second G step in a
            # row (which would leave the hook on for good). Outputs of forwards before
            # this D step (D's own) are not G's signal.
            self._tap.clear()
            self._hook.switch(True)
        # One expression for the arguments of a correct call: per-step checks cost
        # the loop's time, and each extra line costs about a microsecond in a small loop.
        if not (isinstance(loss, Tensor) and isinstance(real_out, Tensor) and isinstance(fake_out, Tensor)
                and loss.numel() == 1 and loss.is_floating_point() and real_out.numel() and fake_out.numel()
                and real_out.is_floating_point() and fake_out.is_floating_point()
                and real_out.shape[1:] == fake_out.shape[1:] and not self._closed
                and (real is None or (isinstance(real, Tensor) and real.shape[1:] == self._sample_shape
                                      and real.is_floating_point()))):
            self._check_d_step(loss, real_out, fake_out, real)
        norms, d_has = self._d.read() if self._recording else (None, self._d.has_grad())
        if not d_has and not self._g.has_grad():
            raise MonitorUsageError(
                "Expected gradients on the discriminator at discriminator_step but neither network has any; "
                "call it after loss_d.backward() and before opt_d.step()"
            )
        if real is not None and self._n_reals < self.config.n_real and self._writer is not None:
            self._keep_real(real)
        if norms is None:  # not recorded
            if self._fp_due(self.step):
                self._fp_at_d = self._d.fingerprint()
            self._unrecorded = {"step": self.step, S.LOSS_D: loss.detach()}
            return
        self._last_d_row = self.step
        self._unrecorded = {}
        scale, unscaled = self._scale() if self._scaler is not None else (None, False)
        fp_before, fp_now = self._fp_after_g, None
        if fp_before is not None:
            fp_now = self._d.fingerprint()
            self._fp_after_g = None
        if self._fp_due(self.step):
            self._fp_at_d = fp_now if fp_now is not None else self._d.fingerprint()
        self._d_steps.append(_DStep(len(self._rows), norms, None if unscaled else scale, loss.detach(),
                                    real_out.detach(), fake_out.detach(), fp_before, fp_now))

    def generator_step(self, *, loss: Tensor, fake_out: Tensor, fake: Tensor | None = None) -> None:
        """Record one G update and close the iteration. Call after
        ``loss_g.backward()``, before ``opt_g.step()``.

        Args:
            loss: G's loss (a scalar tensor; unscaled under a GradScaler).
            fake_out: D's outputs on the fakes, as used in G's loss.
            fake: the generated batch (optional; feeds diversity and snapshots).
        """
        if not (isinstance(loss, Tensor) and isinstance(fake_out, Tensor) and loss.numel() == 1
                and loss.is_floating_point() and fake_out.numel() and fake_out.is_floating_point() and not self._closed
                and (fake is None or (isinstance(fake, Tensor) and fake.shape[1:] == self._sample_shape
                                      and fake.is_floating_point()))):
            self._check_g_step(loss, fake_out, fake)
        norms, g_has = self._g.read() if self._recording else (None, self._g.has_grad())
        if not g_has and not self._d.has_grad():
            raise MonitorUsageError(
                "Expected gradients at generator_step but neither network has any; "
                "call it after loss_g.backward() and before opt_g.step()"
            )
        if norms is None:  # not recorded
            self._tap.clear()  # a hook on for good kept this step's outputs: not the next recorded step's
            if self._unrecorded.get("step") != self.step:
                self._unrecorded = {"step": self.step}
            self._unrecorded[S.LOSS_G] = loss.detach()
            self._next_iteration(fake)
            return
        self._unrecorded = {}
        scale, unscaled = self._scale() if self._scaler is not None else (None, False)
        # The gradient that reached each hooked output of D, with the output for
        # "probs" (to take it back through the sigmoid); None where no backward came.
        probs = self.d_output == "probs"
        out_grads = []
        for o in self._tap.take(fake_out):
            g = o.grad
            if g is not None:
                # After a backward with create_graph=True the gradient carries a
                # graph: keeping it as it is would keep that graph until the flush.
                out_grads.append((g.detach() if g.requires_grad else g, o.detach() if probs else None))
        if not out_grads and g_has and self._hook.on and not self._warned_uncaptured:
            self._warn_uncaptured()
        if not self._hook.on:
            # Two G steps with no D step between: the hook must stay on for them.
            self._hook_always = True
            self._hook.switch(True)
        elif not self._hook_always:
            self._hook.switch(False)
        self._g_steps.append(_GStep(len(self._rows), norms, None if unscaled else scale, scale, loss.detach(),
                                    fake_out.detach(), out_grads, g_has))
        self._rows.append(self.step)
        self._next_iteration(fake)

    def _next_iteration(self, fake: Tensor | None) -> None:
        """What closes every iteration, recorded or not: the D-weight fingerprint,
        samples and diversity on their cadence, the step count, the flush."""
        j, cfg = self.step, self.config
        # D's weights now, so that the next D step (recorded for it) tells whether
        # anything but opt_d moved them. Kept through G steps with no D step between:
        # whatever moves D before the next D step is not opt_d.
        if self._fp_after_g is None and self._fp_due(j):
            self._fp_after_g = (self._fp_at_d, self._d.fingerprint())
        self._fp_at_d = None
        if fake is not None and self._writer is not None:
            self._keep_fake(fake)
            self._cadence(j)
        self.step = j + 1
        self._recording = self.step % cfg.record_every == 0
        if self.world_size == 1:
            now = time.perf_counter()
            # The first interval is NaN (no call before it), and min(x, NaN) keeps x.
            self._step_seconds = min(self._step_seconds, now - self._last_g_call)
            self._last_g_call = now
        if self.step % cfg.flush_every == 0 or (
                self._step_seconds < math.inf and self._rows
                and (self.step - self._rows[0]) * self._step_seconds > cfg.flush_seconds):
            self.flush()

    def _fp_due(self, j: int) -> bool:
        """Whether iteration j's G step fingerprints D: about every fingerprint_every
        steps, where the next iteration is recorded anyway (exactly every
        fingerprint_every-th when every step is recorded)."""
        k = self.config.record_every
        return (j + 1) % k == 0 and j % self.config.fingerprint_every < k

    def _warn_uncaptured(self) -> None:
        self._warned_uncaptured = True
        warnings.warn(
            f"gandiag.Monitor({str(self.run_dir)!r}): G got a gradient but no D output of this G step was "
            "captured, so logit_grad_g (the signal reaching G through D) is not recorded for it. The G "
            "step's forward through D must come after discriminator_step (not before it, as in a loop that "
            "runs every forward first), and a D that returns a tuple or dict needs its score (or the "
            "micro-batches' scores concatenated) as fake_out. Said once per Monitor.",
            stacklevel=3,
        )

    # The step calls' slow path: for a call their one-expression check does not
    # pass. A wrong call gets its error here; a right one returns (the first call
    # with samples comes here, and its batch's shape becomes the one to match).
    def _check_d_step(self, loss, real_out, fake_out, real) -> None:
        self._check_open()
        _check_scalar(loss)
        _check_tensor("real_out", real_out)
        _check_tensor("fake_out", fake_out)
        _check_tensor("real", real, optional=True)
        if not real_out.numel() or not fake_out.numel():
            raise MonitorUsageError(
                f"Expected D's outputs on a non-empty batch but got real_out of shape {tuple(real_out.shape)} "
                f"and fake_out of shape {tuple(fake_out.shape)}"
            )
        _check_outputs_float(real_out=real_out, fake_out=fake_out)
        if real_out.shape[1:] != fake_out.shape[1:]:
            raise MonitorUsageError(
                f"Expected real_out and fake_out with the same shape per sample but got {tuple(real_out.shape)} "
                f"and {tuple(fake_out.shape)}"
            )
        if real is not None:
            self._check_sample_batch("real", real)

    def _check_g_step(self, loss, fake_out, fake) -> None:
        self._check_open()
        _check_scalar(loss)
        _check_tensor("fake_out", fake_out)
        _check_tensor("fake", fake, optional=True)
        if not fake_out.numel():
            raise MonitorUsageError(f"Expected D's outputs on a non-empty batch but got fake_out of shape "
                                    f"{tuple(fake_out.shape)}")
        _check_outputs_float(fake_out=fake_out)
        if fake is not None:
            self._check_sample_batch("fake", fake)

    def _check_sample_batch(self, name: str, x: Tensor) -> None:
        # At the call, not at the first diversity evaluation hundreds of steps later.
        if not x.is_floating_point():
            raise MonitorUsageError(
                f"Expected {name}= to be a floating-point batch, as D sees it, but got {x.dtype}; "
                "pass it after converting and scaling it like the other side"
            )
        if x.ndim < 2:
            raise MonitorUsageError(
                f"Expected {name}= to be a batch [n, ...] with a dimension per sample but got shape "
                f"{list(x.shape)}; pass 1-D data as x[:, None]"
            )
        if self._sample_shape is None:
            self._sample_shape, self._sample_source = x.shape[1:], name
        elif x.shape[1:] != self._sample_shape:
            first, shape = self._sample_source, self._sample_shape
            raise MonitorUsageError(
                f"Expected {name}= samples of shape [n, {', '.join(map(str, shape))}] like the {first}= batches "
                f"but got {list(x.shape)}; pass real and fake samples in the same shape"
            )

    # -- turning buffered steps into rows ---------------------------------------
    def _columns(self) -> list[str]:
        cols = [S.D_STEPS, *_D_COLS]
        if self.config.layer_norms:
            cols += [S.GRAD_NORM_D_LAYER + n for n in self._d.layers]
        cols += list(_G_COLS)
        if self.config.layer_norms:
            cols += [S.GRAD_NORM_G_LAYER + n for n in self._g.layers]
        return cols

    def _device(self) -> torch.device:
        for rec in itertools.chain(self._d_steps, self._g_steps):
            return rec.loss.device
        return self._d.params[0].device

    # Device side: per-step reductions whose results are small; everything after
    # that is bookkeeping over a few dozen numbers per step, done on the host.
    def _send_common(self, net: GradNorms, recs: list, t: _Transfer) -> dict:
        dev = t.dev
        h = {"norms": t.add(_stack_rows([r.norms for r in recs], dev)),
             "loss": t.add(_scalars([r.loss for r in recs], dev))}
        h["scaled"] = [i for i, r in enumerate(recs) if r.scale is not None]
        if h["scaled"]:
            h["scale"] = t.add(torch.stack([recs[i].scale.to(dev) for i in h["scaled"]]))
        return h

    def _send_d(self, t: _Transfer) -> dict:
        recs, dev = self._d_steps, t.dev
        h = self._send_common(self._d, recs, t)
        # Pieces alternate real, fake: pieces 2i and 2i+1 are D step i's.
        out = _Pieces([o for r in recs for o in (r.real_out, r.fake_out)], dev)
        v = out.values
        p = torch.sigmoid(v) if self.d_output == "logits" else v
        psum = out.sum(p)
        if self.d_output == "critic":
            # No fixed decision threshold for a critic: use the midpoint of the two means.
            mean = psum / torch.tensor(out.sizes, device=dev)
            thr = out.spread(((mean[0::2] + mean[1::2]) / 2).repeat_interleave(2))
            n_sat = torch.zeros_like(psum)
        else:
            thr = 0.5
            n_sat = out.sum(((p == 0) | (p == 1)).float())
        stats = [psum, n_sat, out.sum((p > thr).float()), out.sum((p < thr).float()), out.amin(v), out.amax(v)]
        h["out"], h["sizes"] = t.add(torch.stack(stats, 1)), out.sizes
        h["pairs"] = [i for i, r in enumerate(recs) if r.fp_now is not None]
        if h["pairs"]:
            h["fp_before"] = t.add(_stack_rows([recs[i].fp_before for i in h["pairs"]], dev))
            h["fp_now"] = t.add(_stack_rows([recs[i].fp_now for i in h["pairs"]], dev))
            h["with_d"] = [j for j, i in enumerate(h["pairs"]) if recs[i].fp_d is not None]
            if h["with_d"]:
                h["fp_d"] = t.add(_stack_rows([recs[h["pairs"][j]].fp_d for j in h["with_d"]], dev))
        return h

    def _send_g(self, t: _Transfer) -> dict:
        recs, dev = self._g_steps, t.dev
        h = self._send_common(self._g, recs, t)
        out = _Pieces([r.fake_out for r in recs], dev)
        h["fake"], h["sizes"] = t.add(out.sum(torch.sigmoid(out.values) if self.d_output == "logits" else out.values)), out.sizes
        # Logit gradient: sum of |d loss / d output| over every backward through D
        # since the D step. Under a mean-reduced loss that sum is the per-sample mean.
        hooked = [i for i, r in enumerate(recs) if r.out_grads]
        h["hooked"] = hooked
        if hooked:
            grads = _Pieces([g for i in hooked for g, _ in recs[i].out_grads], dev)
            g = grads.values
            if self.d_output == "probs":
                prob = _Pieces([o for i in hooked for _, o in recs[i].out_grads], dev).values
                g = g * prob * (1 - prob)  # chain rule back through the sigmoid to the logit
            h["grad_sums"] = t.add(grads.sum(g.abs()))
            h["grad_owner"] = [j for j, i in enumerate(hooked) for _ in recs[i].out_grads]
            h["out_scaled"] = [j for j, i in enumerate(hooked) if recs[i].out_scale is not None]
            if h["out_scaled"]:
                h["out_scale"] = t.add(torch.stack([recs[hooked[j]].out_scale.to(dev) for j in h["out_scaled"]]))
        return h

    # Host side.
    def _host_common(self, net: GradNorms, h: dict, host: list, k: int):
        """Unscaled total and per-layer norms, loss, skip flags (None without a
        scaler) and the non-finite flag of each step."""
        sq = host[h["norms"]] ** 2
        total = np.sqrt(sq.sum(1))
        per_layer = np.zeros((len(net.layers), k))
        np.add.at(per_layer, net.index, sq.T)
        per_layer = np.sqrt(per_layer.T)
        if h["scaled"]:
            scale = np.ones(k)
            scale[h["scaled"]] = host[h["scale"]]
            total, per_layer = total / scale, per_layer / scale[:, None]
        loss = host[h["loss"]]
        skipped = None
        if self._scaler is not None:
            # The scaler skips a step whose gradients hold an inf/NaN: that is
            # recorded as skipped, not as divergence. A NaN/Inf loss is not the
            # scaler's: the forward blew up (NaN weights are skipped for good).
            skipped = ~np.isfinite(total)
            bad = ~np.isfinite(loss)
        else:
            bad = ~np.isfinite(loss) | ~np.isfinite(total)
        return total, per_layer, loss, skipped, bad

    def _d_rows(self, h: dict, host: list, n: int) -> np.ndarray:
        """Per-row D columns ``[n, 1 + len(_D_COLS) + layers]``, NaN on rows without D steps."""
        recs = self._d_steps
        k = len(recs)
        total, per_layer, loss, skipped, bad = self._host_common(self._d, h, host, k)
        st, size = host[h["out"]], np.asarray(h["sizes"], dtype=np.float64)
        count = size[0::2] + size[1::2]
        sat = np.full(k, _NAN) if self.d_output == "critic" else (st[0::2, 1] + st[1::2, 1]) / count
        moved = np.full(k, _NAN)
        if h["pairs"]:
            before, now = host[h["fp_before"]], host[h["fp_now"]]
            # A norm that grew: an optimizer step moves some norms up, while what loops
            # do to D between the steps on purpose (WGAN's weight clipping before the
            # critic's forward) only shrinks them. And only where D had moved between
            # its D step and the G step (opt_d stepped first, as in an alternating
            # loop): a loop that calls both steps before both updates moves D by opt_d
            # between the G step and the next D step.
            stepped = np.ones(len(h["pairs"]), dtype=bool)
            if h["with_d"]:
                at_d = host[h["fp_d"]]
                stepped[h["with_d"]] = _differs(at_d, before[h["with_d"]])
            moved[h["pairs"]] = _grew(before, now) & stepped
        applied = np.ones(k, dtype=bool) if skipped is None else ~skipped
        grads = np.column_stack([total, per_layer]) if self.config.layer_norms else total[:, None]
        cols = {
            S.LOSS_D: loss, S.D_REAL: st[0::2, 0] / size[0::2], S.D_FAKE: st[1::2, 0] / size[1::2],
            S.D_ACC: (st[0::2, 2] + st[1::2, 3]) / count, S.D_PROB_SATURATED: sat,
            S.D_OUT_MIN: np.minimum(st[0::2, 4], st[1::2, 4]), S.D_OUT_MAX: np.maximum(st[0::2, 5], st[1::2, 5]),
            S.D_MOVED_IN_G_STEP: moved, S.SKIPPED_D: np.full(k, _NAN) if skipped is None else skipped.astype(float),
            "_nonfinite_d": bad.astype(float),
        }
        rows = np.array([r.row for r in recs])
        if k == n and (rows == np.arange(n)).all():
            # One D step per iteration (the common loop): the steps are the rows.
            grads = np.where(applied[:, None], grads, _NAN)  # a skipped step's gradient was never applied
            cols[S.GRAD_NORM_D] = grads[:, 0]
            return np.column_stack([np.ones(k)] + [cols[c] for c in _D_COLS] + [grads[:, 1:]])

        n_steps = _per_row(np.ones(k), rows, n, "sum")
        mean = {c: _per_row(cols[c], rows, n, "sum") / n_steps for c in _D_MEAN}
        # Gradient columns average only the steps the scaler applied.
        grad_mean = _per_row(np.where(applied[:, None], grads, 0.0), rows, n, "sum")
        grad_mean /= _per_row(applied.astype(float), rows, n, "sum")[:, None]
        mean[S.GRAD_NORM_D] = grad_mean[:, 0]
        mean[S.D_OUT_MIN] = _per_row(cols[S.D_OUT_MIN], rows, n, "min")
        mean[S.D_OUT_MAX] = _per_row(cols[S.D_OUT_MAX], rows, n, "max")
        mean["_nonfinite_d"] = _per_row(cols["_nonfinite_d"], rows, n, "max")
        mean[S.SKIPPED_D] = _per_row(cols[S.SKIPPED_D], rows, n, "sum")  # NaN (not measured) without a scaler
        # Moved: the largest among the D steps where it was measured.
        m = _per_row(np.nan_to_num(moved, nan=-math.inf), rows, n, "max")
        mean[S.D_MOVED_IN_G_STEP] = np.where(m == -math.inf, _NAN, m)
        block = np.column_stack([n_steps] + [mean[c] for c in _D_COLS] + [grad_mean[:, 1:]])
        return np.where((n_steps > 0)[:, None], block, _NAN)

    def _g_rows(self, h: dict, host: list, n: int) -> np.ndarray:
        """Per-row G columns ``[n, len(_G_COLS) + layers]``, NaN on rows without a G step."""
        recs = self._g_steps
        k = len(recs)
        total, per_layer, loss, skipped, bad = self._host_common(self._g, h, host, k)
        logit_grad = np.full(k, _NAN)
        if h["hooked"]:
            summed = _per_row(host[h["grad_sums"]], np.asarray(h["grad_owner"]), len(h["hooked"]), "sum")
            if h["out_scaled"]:
                summed[h["out_scaled"]] /= host[h["out_scale"]]
            logit_grad[h["hooked"]] = summed
        has = (total > 0) & np.array([r.has_grad for r in recs])
        if skipped is not None:  # a skipped step's gradient was never applied (as for D)
            total, per_layer = np.where(skipped, _NAN, total), np.where(skipped[:, None], _NAN, per_layer)
        cols = [loss, total, logit_grad, host[h["fake"]] / np.asarray(h["sizes"], dtype=np.float64),
                has.astype(float), np.full(k, _NAN) if skipped is None else skipped.astype(float), bad.astype(float)]
        if self.config.layer_norms:
            cols.append(per_layer)
        out = np.full((n, len(self._cols) - self._n_d), _NAN)
        out[[r.row for r in recs]] = np.column_stack(cols)
        return out

    def _matrix(self) -> np.ndarray:
        """The buffered iterations as a ``[rows, columns]`` host array (see :meth:`_columns`)."""
        n = len(self._rows)
        t = _Transfer(self._device())
        hd = self._send_d(t) if self._d_steps else None
        hg = self._send_g(t) if self._g_steps else None
        host = t.fetch()
        with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 is NaN: "not measured"
            d = self._d_rows(hd, host, n) if hd else np.full((n, self._n_d), _NAN)
            g = self._g_rows(hg, host, n) if hg else np.full((n, len(self._cols) - self._n_d), _NAN)
        self._d_steps.clear()
        self._g_steps.clear()
        return np.concatenate([d, g], 1)

    def _reduce_ranks(self, m: np.ndarray) -> np.ndarray:
        import torch.distributed as dist

        backend = dist.get_backend(self._group)
        dev = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
        local = torch.from_numpy(np.ascontiguousarray(m)).to(dev)
        gathered = local.new_empty((self.world_size * local.shape[0], *local.shape[1:]))
        gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor  # renamed in torch 2.10+
        gather(gathered, local, group=self._group)  # the one collective per flush
        g = gathered.cpu().numpy().reshape(self.world_size, *m.shape)
        out = g.mean(0)
        for names, how in ((_RANK_MIN, np.min), (_RANK_MAX, np.max)):
            idx = [self._cols.index(c) for c in names]
            out[:, idx] = how(g[:, :, idx], 0)
        return out

    def _row_dicts(self, m: np.ndarray, steps: list[int]) -> list[dict]:
        """One dict per row of ``m``: the D columns where the row had a D step, the
        G columns where it had a G step, optional columns only where measured."""
        i = self._i
        has_d, has_g = ~np.isnan(m[:, i[S.D_STEPS]]), ~np.isnan(m[:, i[S.G_HAS_GRAD]])
        # NaN is kept where it means a blown-up value, dropped where it means "not measured".
        keep = np.where(self._is_d, has_d[:, None], has_g[:, None]) & self._public
        keep &= ~(self._optional & np.isnan(m))
        bad = np.fmax(np.where(has_d, m[:, i["_nonfinite_d"]], 0.0), np.where(has_g, m[:, i["_nonfinite_g"]], 0.0))
        if self.diverged_at is None and bad.any():
            self.diverged_at = steps[int(np.flatnonzero(bad)[0])]
        # Rows share a handful of column sets (e.g. every fingerprint_every-th row
        # has d_moved_in_g_step): build each set's dicts with zip, not per value.
        # A set is fixed by has_d, has_g and the optional columns kept: code those as bits.
        varying = keep[:, self._varying]
        code = varying @ (1 << np.arange(varying.shape[1]))
        rows: list[dict] = [{}] * len(steps)
        bad_list, div = bad.tolist(), self._div_rows
        for value in np.unique(code).tolist():
            idx = np.flatnonzero(code == value)
            cols = np.flatnonzero(keep[idx[0]])
            names = [self._cols[c] for c in cols]
            for j, vals in zip(idx.tolist(), m[np.ix_(idx, cols)].tolist()):
                row = {S.STEP: steps[j]}
                row.update(zip(names, vals))
                row[S.NONFINITE] = bad_list[j]
                if div:
                    row.update(div.pop(steps[j], {}))
                rows[j] = row
        return rows

    def flush(self) -> None:
        """Turn the buffered steps into rows, move them to the host and append them
        to the run directory. Under DDP, every rank must call it (the Monitor does,
        every ``flush_every`` steps and at :meth:`close`)."""
        self._step_seconds = math.inf
        if not self._rows and not self._div_rows:
            return
        rows = []
        if self._rows:
            # D steps of an iteration whose G step has not come yet wait for it (a
            # G-first loop flushed by hand between its D and G steps).
            n = len(self._rows)
            waiting = [r for r in self._d_steps if r.row == n]
            if waiting:
                self._d_steps[:] = [r for r in self._d_steps if r.row != n]
            m = self._matrix()
            if self.world_size > 1:
                m = self._reduce_ranks(m)
            steps = list(self._rows)
            self._rows.clear()
            self._rows_written += len(steps)
            rows = self._row_dicts(m, steps)
            for r in waiting:
                r.row = 0
            self._d_steps.extend(waiting)
        for step in sorted(self._div_rows):
            rows.append({S.STEP: step, **self._div_rows.pop(step)})
        if self._writer is not None:
            self._writer.append(rows)

    # -- samples and diversity (rank 0 only) ----------------------------------------
    def _keep_real(self, real: Tensor) -> None:
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
        if self._sampler is not None:
            with torch.no_grad():
                fakes = self._sampled(evaluator)
        else:
            fakes = torch.cat(list(self._fakes))[-self.config.n_eval:].float()
        self._evaluated_at = step
        self._n_evaluations += 1
        if not torch.isfinite(fakes).all():
            return
        self._div_rows.setdefault(step, {}).update((k, float(v)) for k, v in evaluator(fakes).items())

    def _sampled(self, evaluator) -> Tensor:
        out = self._sampler()
        k = getattr(evaluator, "k", 0)
        shape = self._sample_shape
        if (not isinstance(out, Tensor) or not out.is_floating_point() or out.ndim < 2 or out.shape[0] <= k
                or (shape is not None and out.shape[1:] != shape)):
            got = (f"a {out.dtype} tensor of shape {list(out.shape)}" if isinstance(out, Tensor)
                   else type(out).__name__)
            want = f"[n > {k}, {', '.join(map(str, shape))}]" if shape is not None else f"[n > {k}, ...]"
            raise MonitorUsageError(f"Expected sampler= to return a floating-point batch {want} like the fake= "
                                    f"batches but got {got}")
        return out.detach().float()

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
        ended = tuple(st for st in STATUSES if st != "running")
        if status is not None and status not in ended:
            raise MonitorUsageError(f"Expected status in {ended} (or None) but got {status!r}")
        self._closed = True
        self._hook.remove()
        try:
            if self._d_steps and self._d_steps[-1].row == len(self._rows):
                # D steps with no G step after them: still a row, with G's columns empty.
                self._rows.append(self.step)
                self.step += 1
            self._check_unrecorded()
            last = self.step - 1
            if self._writer is not None and self._last_fake is not None and last >= 0:
                self._snapshot(last)
                if self._n_evaluations < 2 and self._evaluated_at != last:
                    # A run that never reached a second evaluation (shorter than
                    # diversity_every) would otherwise show only its untrained G. Longer
                    # runs keep the evenly spaced series the detectors were calibrated on.
                    self._evaluate(last)
            self.flush()
        except BaseException:
            status = "interrupted"
            raise
        finally:
            if self._writer is not None:
                if self.diverged_at is not None:
                    status = "diverged"
                elif status is None:
                    status = "completed"
                extra = {"steps_seen": self.step, "steps_recorded": self._rows_written}
                if self.diverged_at is not None:
                    extra["diverged_at"] = self.diverged_at
                self._writer.close(status, **extra)
            if self._finalizer is not None:
                self._finalizer()

    def _check_unrecorded(self) -> None:
        """A NaN/Inf loss in the iterations after the last recorded one (a loop that
        stopped on it) still marks the run diverged, with a row of those losses."""
        u = self._unrecorded
        if not u:
            return
        losses = {name: float(t) for name, t in u.items() if name != "step"}  # host reads, once, at close
        if not all(map(math.isfinite, losses.values())):
            self._div_rows.setdefault(u["step"], {}).update(losses, **{S.NONFINITE: 1.0})
            if self.diverged_at is None:
                self.diverged_at = u["step"]
            if u["step"] == self.step:  # D steps with no G step after them: a row, as when recorded
                self.step += 1

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close("interrupted" if exc_type is not None else None)


def _distributed() -> tuple[int, int, Any]:
    """``(rank, world_size, group)`` of the default process group, or ``(0, 1, None)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), dist.group.WORLD
    return 0, 1, None
