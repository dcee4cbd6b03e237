"""Ground truth measured on the networks themselves, never on the detectors' output.

A :class:`TruthProbe` rides along a training run (as the trainer's
``observer``) and, every ``every`` steps, measures on *fixed* inputs drawn from
its own random stream, so that successive measurements differ only because the
networks changed:

- G's gradient norm under the run's own G loss, on a fixed batch of latents;
- D's accuracy and mean D(x), D(G(z)) on fresh real samples (held out from
  training batches by construction: drawn from a separate seed) and on G(z)
  of the fixed latents;
- for mixtures and digits: the histogram of G's high-quality samples over the
  modes (digit classes, by the digit classifier) on the fixed latents (which
  modes G covers at each probe, to see mode hopping);
- whether every weight is still finite.

At the end it re-evaluates the final G on ``n_final`` fresh latents: modes
covered and high-quality share by :func:`gandiag.metrics.diversity.mode_stats`
(mixtures) or :func:`~gandiag.metrics.diversity.class_stats` on the digit
classifier (digits). The truth rules in :func:`label` turn these measurements
into finding kinds with thresholds stated here, so what the zoo scores the
detectors against is a measurement, not a detector's verdict.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from gandiag.data import Dataset
from gandiag.losses import LossVariant
from gandiag.metrics.diversity import CONFIDENCE, MIN_SHARE, assign_modes, class_stats, histogram_shift, mode_stats

# -- the truth rules' thresholds (see docs/calibration.md for why each is where it is) --
DIVERGED_WEIGHT_GROWTH = 10.0  # divergence: G's or D's weight norm 10x its initial size (or NaN/Inf)
COLLAPSED_MODE_SHARE = 0.5   # mode_collapse: at most half of the modes covered at the end...
COLLAPSE_MIN_HQ = 0.1        # ...by a G whose samples are data-like (below this, "which modes" is undefined)
HEALTHY_MODE_SHARE = 7 / 8   # healthy: at least 7 of 8 modes (22 of 25, 9 of 10 classes)...
HEALTHY_HQ_SHARE = 0.5       # ...and at least half of the samples near a mode / classified confidently
VANISHED_DECAY = 100.0       # vanishing gradient: fixed-batch G gradient 100x below its peak...
VANISHED_TAIL = 0.25         # ...over the last quarter of the run (median of those probes);
VANISHED_SIGNAL = 0.02       # or G's per-sample signal |dL_G/dlogit| on the fixed batch below 0.02
                             # (a balanced game gives ~0.5)...
SUSTAINED = 0.25             # ...on a stretch of at least a quarter of the probes in a row
STRONG_ACCURACY = 0.99       # D too strong: fresh-sample accuracy at least 0.99...
STRONG_FAKE_PROB = 0.05      # ...with mean D(G(z)) at most 0.05, on a stretch of SUSTAINED of the probes
WEAK_CHANCE = 0.1            # D too weak: fresh-sample accuracy within 0.1 of chance...
WEAK_HQ_SHARE = 0.5          # ...over the last half, while fewer than half the samples are good
# Mode hopping, on the fixed batch's mode histograms over the second half of the probes:
HOP_MAX_COVERAGE = 0.5       # at each probe G covers at most half the modes (median over the probes)...
HOP_MIN_UNION = 0.75         # ...but over the probes together at least 3/4 of them...
HOP_MIN_SHIFT = 0.25         # ...and a quarter of its mass moves to other modes between probes (median
                             # total-variation distance; a collapsed G that stays on its modes gives ~0.05)...
HOP_MIN_HQ = 0.1             # ...while at least 10% of its samples are near a mode (median; as COLLAPSE_MIN_HQ)


@dataclass
class TruthRecord:
    """What a :class:`TruthProbe` measured. Lists are aligned with ``steps``."""

    steps: list = field(default_factory=list)
    g_grad: list = field(default_factory=list)
    g_signal: list = field(default_factory=list)
    d_acc: list = field(default_factory=list)
    d_real: list = field(default_factory=list)
    d_fake: list = field(default_factory=list)
    top_mode: list = field(default_factory=list)
    top_share: list = field(default_factory=list)
    mode_hist: list = field(default_factory=list)  # per probe: share of the fixed batch near each mode/class
    finite: list = field(default_factory=list)
    weight_g: list = field(default_factory=list)
    weight_d: list = field(default_factory=list)
    final: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("steps", "g_grad", "g_signal", "d_acc", "d_real", "d_fake", "top_mode",
                                              "top_share", "mode_hist", "finite", "weight_g", "weight_d", "final")}


class TruthProbe:
    """The trainer's ``observer``: measures the live G and D on fixed inputs.

    Args:
        dataset: the training data (its modes, if any, are used).
        variant: the run's loss variant (its G loss gives the measured gradient).
        d_output: how to read D's output ("logits" or "critic").
        every: measure every this many steps (and at the last step).
        steps: the run's length, to measure at its last step.
        seed: seed of the probe's own stream (never the trainer's).
        n_fixed: size of the fixed latent batch and of the fresh real batch.
    """

    def __init__(self, dataset: Dataset, variant: LossVariant, *, every: int, steps: int, seed: int,
                 n_fixed: int = 512, n_final: int = 5000):
        self.dataset, self.variant, self.every, self.steps = dataset, variant, every, steps
        self.n_final = n_final
        self.seed = seed
        self._gen = torch.Generator().manual_seed(90_000 + seed)
        self._z = None
        self._real = dataset.sample(n_fixed, self._gen)
        self.n_fixed = n_fixed
        self.record = TruthRecord()
        self.G: nn.Module | None = None
        self.D: nn.Module | None = None

    def __call__(self, step: int, G: nn.Module, D: nn.Module) -> None:
        self.G, self.D = G, D
        if step % self.every and step != self.steps - 1:
            return
        if self._z is None:
            self._z = torch.randn(self.n_fixed, G.latent_dim, generator=self._gen)
        device = next(G.parameters()).device
        z, real = self._z.to(device), self._real.to(device)
        rec = self.record
        finite = all(bool(torch.isfinite(p).all()) for p in [*G.parameters(), *D.parameters()])
        rec.steps.append(step)
        rec.finite.append(finite)
        with torch.no_grad():
            for net, into in ((G, rec.weight_g), (D, rec.weight_d)):
                into.append(math.sqrt(sum(float(p.double().square().sum()) for p in net.parameters())))
        fake = G(z)
        out_fake = D(fake)
        loss = self.variant.g_loss(out_fake, D(real).detach())
        params = [p for p in G.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, [out_fake, *params], allow_unused=True)
        norm = math.sqrt(sum(float(g.double().square().sum()) for g in grads[1:] if g is not None))
        rec.g_grad.append(norm)
        # Per-sample |dL_G/dlogit| (the loss is a batch mean, hence the factor n).
        signal = float(grads[0].abs().mean()) * len(out_fake) if grads[0] is not None else math.nan
        rec.g_signal.append(signal if self.variant.d_output != "critic" else math.nan)
        with torch.no_grad():
            out_real, out_fake = D(real).double(), out_fake.detach().double()
            if self.variant.d_output == "critic":
                t = (out_real.mean() + out_fake.mean()) / 2
                pr, pf = out_real, out_fake
            else:
                t, pr, pf = 0.5, torch.sigmoid(out_real), torch.sigmoid(out_fake)
            rec.d_acc.append(float(((pr > t).double().sum() + (pf < t).double().sum()) / (len(pr) + len(pf))))
            rec.d_real.append(float(pr.mean()))
            rec.d_fake.append(float(pf.mean()))
            classes = self._classes(fake) if torch.isfinite(fake).all() else None
            if classes is not None:
                idx, hq, total = classes
                counts = torch.bincount(idx[hq], minlength=total)
                rec.top_mode.append(int(counts.argmax()))
                rec.top_share.append(float(counts.max()) / len(idx))
                rec.mode_hist.append((counts.double() / len(idx)).tolist())
            else:
                rec.top_mode.append(-1)
                rec.top_share.append(math.nan)
                rec.mode_hist.append([])

    def _classes(self, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int] | None:
        """Nearest mode (mixtures) or digit class, high-quality flags and the number of
        modes, for G's fixed-batch samples; None for data with neither."""
        if self.dataset.modes is not None:
            idx, hq = assign_modes(fake.cpu(), self.dataset.modes, self.dataset.mode_std)
            return idx, hq, self.dataset.modes.shape[0]
        if self.dataset.name == "digits":
            from gandiag.metrics.digit_classifier import load_digit_classifier

            # The same classifier and confidence as the final class_stats.
            probs = load_digit_classifier().probs(fake.float().cpu())
            top, idx = probs.max(dim=1)
            return idx, top >= CONFIDENCE, probs.shape[1]
        return None

    def finish(self) -> TruthRecord:
        """Re-evaluate the final G on ``n_final`` fresh latents."""
        rec = self.record
        if self.G is None:
            return rec
        gen = torch.Generator().manual_seed(80_000 + self.seed)
        with torch.no_grad():
            z = torch.randn(self.n_final, self.G.latent_dim, generator=gen).to(next(self.G.parameters()).device)
            fake = self.G(z).float().cpu()
        if not torch.isfinite(fake).all():
            rec.final = {"finite": False}
            return rec
        if self.dataset.modes is not None:
            stats = mode_stats(fake, self.dataset.modes, self.dataset.mode_std)
        elif self.dataset.name == "digits":
            from gandiag.metrics.digit_classifier import load_digit_classifier

            stats = class_stats(load_digit_classifier().probs(fake))
        else:
            stats = {}
        rec.final = {"finite": True, **{k.split("/")[-1]: float(v) for k, v in stats.items()}}
        return rec


def _tail(values: list, share: float) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[len(x) - max(1, int(round(share * len(x)))):]


def _stretch(steps: list, holds: np.ndarray, share: float) -> int | None:
    """Start step of the first run of True at least ``share`` of the probes long, or None."""
    need = max(1, int(math.ceil(share * len(holds))))
    i, n = 0, len(holds)
    while i < n:
        if holds[i]:
            j = i
            while j + 1 < n and holds[j + 1]:
                j += 1
            if j - i + 1 >= need:
                return int(steps[i])
            i = j + 1
        else:
            i += 1
    return None


def _onset(steps: list, holds: np.ndarray) -> int | None:
    """First step from which ``holds`` is true through the end."""
    if len(holds) == 0 or not holds[-1]:
        return None
    i = len(holds) - 1
    while i > 0 and holds[i - 1]:
        i -= 1
    return int(steps[i])


def label(rec: TruthRecord) -> tuple[set, dict, dict, set]:
    """Turn measurements into (true kinds, onsets, the measured numbers behind them,
    kinds the measurements cannot decide).

    Rules (each threshold is a module constant above):

    - ``divergence``: a weight became NaN/Inf, the final samples are not finite, or
      G's or D's weight norm grew ``DIVERGED_WEIGHT_GROWTH`` times its first measured size.
    - ``mode_collapse``: final coverage on fresh latents at most ``COLLAPSED_MODE_SHARE``
      with at least ``COLLAPSE_MIN_HQ`` of the samples near a mode; with fewer, G makes
      no data-like samples at all, coverage says nothing, and the kind is undecided.
      It is undecided too when the probes of the second half (mixtures, digits) covered more
      than ``COLLAPSED_MODE_SHARE`` of the modes in the median: the final G then
      disagrees with the run it ends.
    - ``vanishing_generator_gradient``: the median fixed-batch G gradient over the last
      ``VANISHED_TAIL`` of the probes is ``VANISHED_DECAY`` times below its peak, or the
      per-sample signal |dL_G/dlogit| is at most ``VANISHED_SIGNAL`` on ``SUSTAINED`` of
      the probes in a row (a stretch, as the finding describes one).
    - ``discriminator_too_strong``: fresh-sample accuracy at least ``STRONG_ACCURACY``
      and mean D(G(z)) at most ``STRONG_FAKE_PROB`` on ``SUSTAINED`` of the probes in a
      row (probabilities only).
    - ``discriminator_too_weak``: over the last half the median accuracy is within
      ``WEAK_CHANCE`` of 0.5 while the final high-quality share is below ``WEAK_HQ_SHARE``.
    - ``oscillation`` (mode hopping, :func:`mode_hopping`): over the second half of the
      probes, G covers at most ``HOP_MAX_COVERAGE`` of the modes at a probe (median) but
      at least ``HOP_MIN_UNION`` of them over those probes together, the median
      total-variation distance between successive probes' mode histograms is at least
      ``HOP_MIN_SHIFT``, and the median high-quality share is at least ``HOP_MIN_HQ``.
      The final G of a hopping run is one snapshot of the hop: its coverage cannot tell
      collapse from hopping, so ``mode_collapse`` is then undecided.

    Healthy (no kind) additionally needs :func:`is_healthy`.
    """
    kinds, onset, measured, unknown = set(), {}, {}, set()
    steps = rec.steps
    if not steps:
        return kinds, onset, measured, unknown
    finite = np.asarray(rec.finite, dtype=bool)
    measured["finite_at_end"] = bool(finite[-1]) and rec.final.get("finite", True)
    if not measured["finite_at_end"]:
        kinds.add("divergence")
        bad = np.flatnonzero(~finite)
        onset["divergence"] = int(steps[bad[0]]) if len(bad) else int(steps[-1])
        return kinds, onset, measured, unknown
    growth = max(rec.weight_g[-1] / rec.weight_g[0], rec.weight_d[-1] / rec.weight_d[0])
    measured["weight_growth"] = growth
    if growth >= DIVERGED_WEIGHT_GROWTH:
        kinds.add("divergence")
        grown = (np.maximum(np.asarray(rec.weight_g) / rec.weight_g[0], np.asarray(rec.weight_d) / rec.weight_d[0])
                 >= DIVERGED_WEIGHT_GROWTH ** 0.5)
        onset["divergence"] = int(steps[int(np.argmax(grown))])
    hop = mode_hopping(rec.mode_hist)
    if not math.isnan(hop["coverage"]):  # data with modes
        measured.update({f"hop_{k}": v for k, v in hop.items() if k != "hopping"})
    total = rec.final.get("modes_total")
    if total:
        share = rec.final["modes_covered"] / total
        measured["final_mode_share"] = share
        measured["final_hq_share"] = rec.final["hq_share"]
        if share <= COLLAPSED_MODE_SHARE:
            # A final G that covers few modes while the probes of the second half
            # covered more than half of them (median) is one bad instant of a G that
            # keeps moving, not a collapsed run: the measurements disagree, undecided.
            if rec.final["hq_share"] >= COLLAPSE_MIN_HQ and not hop["coverage"] > COLLAPSED_MODE_SHARE:
                kinds.add("mode_collapse")
            else:
                unknown.add("mode_collapse")
    g = np.asarray(rec.g_grad, dtype=float)
    peak = np.maximum.accumulate(np.where(np.isfinite(g), g, 0.0))
    tail = float(np.median(_tail(rec.g_grad, VANISHED_TAIL)))
    measured["g_grad_decay"] = float(peak[-1] / tail) if tail > 0 else math.inf
    sig = np.asarray(rec.g_signal, dtype=float)
    measured["g_signal_last_half"] = float(np.median(_tail(rec.g_signal, 0.5))) if np.isfinite(sig).any() else math.nan
    if measured["g_grad_decay"] >= VANISHED_DECAY:
        kinds.add("vanishing_generator_gradient")
        onset["vanishing_generator_gradient"] = _onset(steps, peak / np.maximum(g, 1e-300) >= VANISHED_DECAY ** 0.5)
    else:
        at = _stretch(steps, np.nan_to_num(sig, nan=1.0) <= VANISHED_SIGNAL, SUSTAINED)
        if at is not None:
            kinds.add("vanishing_generator_gradient")
            onset["vanishing_generator_gradient"] = at
    acc = float(np.median(_tail(rec.d_acc, 0.5)))
    fake = float(np.median(_tail(rec.d_fake, 0.5)))
    measured["d_acc_last_half"], measured["d_fake_last_half"] = acc, fake
    if rec_is_critic(rec):
        holds = np.zeros(len(steps), dtype=bool)
    else:
        holds = (np.asarray(rec.d_acc) >= STRONG_ACCURACY) & (np.asarray(rec.d_fake) <= STRONG_FAKE_PROB)
    at = _stretch(steps, holds, SUSTAINED)
    if at is not None:
        kinds.add("discriminator_too_strong")
        onset["discriminator_too_strong"] = at
    hq = rec.final.get("hq_share")
    if hq is not None and abs(acc - 0.5) <= WEAK_CHANCE and hq < WEAK_HQ_SHARE:
        kinds.add("discriminator_too_weak")
    if hop["hopping"]:
        kinds.add("oscillation")
        onset["oscillation"] = int(steps[len(steps) // 2])
        # Whatever the final G's coverage, it is one instant of the hop.
        kinds.discard("mode_collapse")
        unknown.add("mode_collapse")
    return kinds, {k: v for k, v in onset.items() if v is not None}, measured, unknown


def mode_hopping(mode_hist: list, min_share: float = MIN_SHARE) -> dict:
    """The mode-hopping measurements on per-probe mode histograms (second half of them).

    Args:
        mode_hist: per probe, the share of the fixed batch that is high quality
            near each mode (``[M]`` each; empty lists where there are no modes).
        min_share: a mode counts as covered at a probe when it holds this share of
            a uniform spread (as :func:`gandiag.metrics.diversity.mode_stats`).

    Returns:
        ``coverage`` (median share of modes covered per probe), ``union`` (share
        covered on at least one probe), ``shift`` (median total-variation distance
        between successive probes), ``hq`` (median high-quality share), and
        ``hopping`` (all four past their ``HOP_*`` thresholds). NaN and False
        without histograms.

    Example:
        >>> hops = [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]] * 4
        >>> mode_hopping(hops)["hopping"]
        True
    """
    hists = [h for h in mode_hist[len(mode_hist) // 2:] if len(h)]
    if len(hists) < 2:
        return {"coverage": math.nan, "union": math.nan, "shift": math.nan, "hq": math.nan, "hopping": False}
    h = np.asarray(hists, dtype=float)
    covered = h >= min_share / h.shape[1]
    shifts = [histogram_shift(torch.from_numpy(a), torch.from_numpy(b)) for a, b in zip(h[:-1], h[1:])]
    shifts = [x for x in shifts if not math.isnan(x)]
    out = {"coverage": float(np.median(covered.mean(axis=1))), "union": float(covered.any(axis=0).mean()),
           "shift": float(np.median(shifts)) if shifts else math.nan, "hq": float(np.median(h.sum(axis=1)))}
    out["hopping"] = bool(out["coverage"] <= HOP_MAX_COVERAGE + 1e-9 and out["union"] >= HOP_MIN_UNION - 1e-9
                          and out["shift"] >= HOP_MIN_SHIFT and out["hq"] >= HOP_MIN_HQ)
    return out


def rec_is_critic(rec: TruthRecord) -> bool:
    # A critic's scores are not probabilities: its G signal is recorded as NaN.
    return bool(rec.g_signal) and all(math.isnan(x) for x in rec.g_signal)


def is_healthy(measured: dict) -> bool:
    """The healthy rule: finite, ``HEALTHY_MODE_SHARE`` of modes and ``HEALTHY_HQ_SHARE`` good samples."""
    return (measured.get("finite_at_end", False)
            and measured.get("final_mode_share", 0.0) >= HEALTHY_MODE_SHARE - 1e-9
            and measured.get("final_hq_share", 0.0) >= HEALTHY_HQ_SHARE)
