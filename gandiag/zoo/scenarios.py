"""The zoo's scenarios: runs whose pathology is known from how they are built.

Each :class:`Scenario` states what it is built to show (``intent``), which
finding kinds are a natural side effect and not scored (``dont_care``), and how
its truth is measured (``how``). The truth that is scored is measured on the
run itself (:mod:`gandiag.zoo.truth`; the closed form for the Dirac-GAN), and a
scenario whose measurement disagrees with its intent is reported as such, not
relabelled by hand.

Every hyper-parameter of a trained scenario is spelled out (:func:`train_config`
refuses to fill one in), so a change of ``TrainConfig``'s defaults never moves
the zoo.

    python -c "from gandiag.zoo.scenarios import SCENARIOS; print(*SCENARIOS, sep='\\n')"
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from gandiag.detectors import DETECTORS
from gandiag.models import ModelConfig
from gandiag.monitor import MonitorConfig
from gandiag.train import TrainConfig
from gandiag.zoo.dirac import DiracConfig

TIERS = ("quick", "full")
SPLITS = ("calibration", "heldout")
_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")

# Diversity every 50 steps gives 12-30 evaluations on the zoo's 600-1500-step runs;
# no snapshots beyond the final one (the zoo does not render samples).
ZOO_MONITOR = MonitorConfig(diversity_every=50, samples_every=100_000)

# What train_config() insists on: every field that shapes the optimisation.
REQUIRED = ("loss", "data", "seed", "steps", "batch_size", "lr_g", "lr_d", "betas", "d_steps", "width")


OPTIONAL = {"freeze_g_after": None, "latent_dim": 16, "depth": 3}


def _model(width: int, latent_dim: int, depth: int, image: bool) -> ModelConfig:
    # For images ``width`` is the conv nets' base channel count itself, whatever
    # ModelConfig's width-to-channels mapping is at the time.
    if image:
        per_channel = 64 // ModelConfig(width=64).conv_width
        width = width * per_channel
    return ModelConfig(latent_dim=latent_dim, width=width, depth=depth)


def train_config(**kw) -> TrainConfig:
    """A TrainConfig with every hyper-parameter explicit.

    ``width`` is the hidden width of the MLPs (both nets) or, on digits, the conv
    nets' base channel count. ``latent_dim`` (16), ``depth`` (3) and
    ``freeze_g_after`` (None) may be given; their zoo values are these, not
    ModelConfig's or TrainConfig's defaults.
    """
    missing = [k for k in REQUIRED if k not in kw]
    unknown = [k for k in kw if k not in REQUIRED and k not in OPTIONAL]
    if missing or unknown:
        raise ValueError(f"Expected exactly the keys {list(REQUIRED)} (+ {sorted(OPTIONAL)}) but "
                         f"missing {missing}, unknown {unknown}")
    extra = {k: kw.pop(k, v) for k, v in OPTIONAL.items()}
    model = _model(kw.pop("width"), extra["latent_dim"], extra["depth"], image=kw["data"] == "digits")
    return TrainConfig(device="cpu", model=model, monitor=ZOO_MONITOR, threads=1,
                       freeze_g_after=extra["freeze_g_after"], **kw)


@dataclass(frozen=True)
class Scenario:
    """One labelled scenario.

    Attributes:
        name: unique, lower-case.
        tiers: the tiers that run it (``"quick"`` runs are also in ``"full"``).
        split: ``"calibration"`` (thresholds may be tuned on it) or ``"heldout"``.
        intent: finding kinds the construction is meant to produce (empty: healthy).
        dont_care: kinds not scored on this scenario, each a side effect of the intent.
        how: how the truth is built and measured, one paragraph.
        train: the trainer's config, or None for a Dirac-GAN scenario.
        dirac: the Dirac-GAN config, or None for a trained scenario.
        mode_std: for a mixture, a component std other than the registered one.
    """

    name: str
    tiers: frozenset
    split: str
    intent: frozenset
    how: str
    dont_care: frozenset = field(default_factory=frozenset)
    train: TrainConfig | None = None
    dirac: DiracConfig | None = None
    mode_std: float | None = None


SCENARIOS: dict[str, Scenario] = {}


def register_scenario(s: Scenario) -> Scenario:
    """Add a scenario to ``SCENARIOS`` after checking every field.

    Raises:
        TypeError: not a Scenario, or a config of the wrong type.
        ValueError: a malformed or taken name, unknown tier, split or finding kind,
            intent and dont_care overlapping, not exactly one of train/dirac, or no ``how``.
    """
    if not isinstance(s, Scenario):
        raise TypeError(f"Expected a Scenario but got {type(s).__name__}")
    if not isinstance(s.name, str) or not _NAME.match(s.name):
        raise ValueError(f"Expected a lower-case scenario name like 'ring8-healthy-s0' but got {s.name!r}")
    if s.name in SCENARIOS:
        raise ValueError(f"Expected a new scenario name but {s.name!r} is already registered")
    if not s.tiers or not set(s.tiers) <= set(TIERS):
        raise ValueError(f"Expected tiers from {TIERS} but got {sorted(s.tiers)}")
    if s.split not in SPLITS:
        raise ValueError(f"Expected split in {SPLITS} but got {s.split!r}")
    for attr in ("intent", "dont_care"):
        bad = sorted(set(getattr(s, attr)) - set(DETECTORS))
        if bad:
            raise ValueError(f"Expected {attr} kinds among {sorted(DETECTORS)} but got {bad}")
    if set(s.intent) & set(s.dont_care):
        raise ValueError(f"Expected intent and dont_care to be disjoint but both hold "
                         f"{sorted(set(s.intent) & set(s.dont_care))}")
    if (s.train is None) == (s.dirac is None):
        raise ValueError(f"Expected exactly one of train= and dirac= for scenario {s.name!r}")
    if s.train is not None and not isinstance(s.train, TrainConfig):
        raise TypeError(f"Expected train= to be a TrainConfig but got {type(s.train).__name__}")
    if s.dirac is not None and not isinstance(s.dirac, DiracConfig):
        raise TypeError(f"Expected dirac= to be a DiracConfig but got {type(s.dirac).__name__}")
    if s.mode_std is not None and (s.train is None or s.train.data not in ("ring8", "grid25") or not s.mode_std > 0):
        raise ValueError(f"Expected mode_std > 0 only on a ring8/grid25 scenario but got {s.mode_std!r}")
    if not isinstance(s.how, str) or len(s.how.strip()) < 20:
        raise ValueError(f"Expected how= to say how the truth is measured but got {s.how!r}")
    SCENARIOS[s.name] = dataclasses.replace(s, tiers=frozenset(s.tiers), intent=frozenset(s.intent),
                                            dont_care=frozenset(s.dont_care))
    return SCENARIOS[s.name]


def select(tier: str, split: str | None = None) -> list[Scenario]:
    """The scenarios a tier runs (``full`` includes ``quick``), optionally of one split."""
    if tier not in TIERS:
        raise ValueError(f"Expected tier in {TIERS} but got {tier!r}")
    tiers = {"quick"} if tier == "quick" else set(TIERS)
    return [s for s in SCENARIOS.values() if s.tiers & tiers and (split is None or s.split == split)]
