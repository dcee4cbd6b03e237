"""Findings, the detector base class and the detector registry.

A detector is pure: it reads a :class:`gandiag.rundir.Run` and returns findings.
Its thresholds live in a frozen ``Config`` dataclass whose fields are declared
with :func:`fraction`, :func:`count`, :func:`ratio` or :func:`positive`, so that
:class:`DetectorConfig` can check every value when the config is built.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np

from gandiag.rundir import Run

SEVERITIES = ("info", "warning", "critical")

_SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")


def _plain(key: str, value: Any) -> bool | int | float | str:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"Expected evidence[{key!r}] to be a float, int, bool or str but got {type(value).__name__}")


def _step(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float, np.floating)):
        raise TypeError(f"Expected {name} to be an int but got {value!r}")
    if not float(value).is_integer():
        raise ValueError(f"Expected {name} to be a whole step but got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Finding:
    """One diagnosis of a run: what was seen, where, and on which evidence.

    Attributes:
        kind: the detector kind that produced it (a key of ``DETECTORS``).
        severity: one of ``SEVERITIES``.
        start_step: first step of the affected stretch.
        end_step: last step of the affected stretch (``>= start_step``).
        evidence: metric values and the thresholds they crossed, as plain
            floats, ints, bools and strs.
        message: one line: the diagnosis, the likely cause, what to try.

    Example:
        >>> f = Finding("mode_collapse", "warning", 400, 900, {"modes_total": 8}, "Covers 2 of 8 modes.")
        >>> Finding.from_dict(f.to_dict()) == f
        True
    """

    kind: str
    severity: str
    start_step: int
    end_step: int
    evidence: dict
    message: str

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not _SNAKE_CASE.fullmatch(self.kind):
            raise ValueError(f"Expected kind to be a non-empty snake_case str but got {self.kind!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"Expected severity in {SEVERITIES} but got {self.severity!r}")
        start = _step("start_step", self.start_step)
        end = _step("end_step", self.end_step)
        if end < start:
            raise ValueError(f"Expected end_step >= start_step but got start_step={start}, end_step={end}")
        if not isinstance(self.message, str) or not self.message.strip() or "\n" in self.message:
            raise ValueError(f"Expected message to be one non-empty line but got {self.message!r}")
        if not isinstance(self.evidence, Mapping):
            raise TypeError(f"Expected evidence to be a dict but got {type(self.evidence).__name__}")
        evidence = {str(k): _plain(str(k), v) for k, v in self.evidence.items()}
        object.__setattr__(self, "start_step", start)
        object.__setattr__(self, "end_step", end)
        object.__setattr__(self, "evidence", evidence)

    def to_dict(self) -> dict:
        """The finding as a JSON-ready dict (the inverse of :meth:`from_dict`)."""
        return {
            "kind": self.kind,
            "severity": self.severity,
            "start_step": self.start_step,
            "end_step": self.end_step,
            "evidence": dict(self.evidence),
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Rebuild a finding from :meth:`to_dict` output; the keys must match exactly."""
        names = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(data, Mapping) or set(data) != set(names):
            got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(f"Expected a finding dict with keys {names} but got {got}")
        return cls(**{name: data[name] for name in names})


# ---- config fields -----------------------------------------------------------------

_RULES = {
    "fraction": ("a number in (0, 1)", lambda v: 0.0 < v < 1.0),
    "count": ("an int >= 1", lambda v: v >= 1),
    "ratio": ("a number > 1", lambda v: v > 1.0),
    "positive": ("a number > 0", lambda v: v > 0.0),
}


def _threshold(default: float | int, rule: str) -> Any:
    return dataclasses.field(default=default, metadata={"rule": rule})


def fraction(default: float) -> Any:
    """A config field that must lie strictly between 0 and 1."""
    return _threshold(default, "fraction")


def count(default: int) -> Any:
    """A config field that must be an int of at least 1 (a window, a number of points)."""
    return _threshold(default, "count")


def ratio(default: float) -> Any:
    """A config field that must be greater than 1 (a growth or decay factor)."""
    return _threshold(default, "ratio")


def positive(default: float) -> Any:
    """A config field that must be greater than 0."""
    return _threshold(default, "positive")


@dataclass(frozen=True)
class DetectorConfig:
    """Base of every detector's ``Config``: checks each field against its rule."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            rule = f.metadata.get("rule")
            if rule is None:
                continue
            what, ok = _RULES[rule]
            value = getattr(self, f.name)
            if rule == "count":
                valid = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
            else:
                valid = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
                valid = valid and math.isfinite(value)
            if not (valid and ok(value)):
                raise ValueError(f"Expected {type(self).__qualname__}.{f.name} to be {what} but got {value!r}")


# ---- detectors and their registry ----------------------------------------------------


class Detector:
    """Base class of a detector: one finding kind, its thresholds, its rule.

    Subclasses set ``kind``, ``Config`` (a frozen :class:`DetectorConfig`
    subclass), ``description`` (one line for a report legend), ``advice`` (what
    to try, ending the messages) and implement :meth:`detect`.

    Example:
        >>> from gandiag.detectors import DETECTORS
        >>> detector = DETECTORS["mode_collapse"]()
        >>> detector.config.min_evals
        2
    """

    kind: ClassVar[str]
    Config: ClassVar[type]
    description: ClassVar[str]
    advice: ClassVar[str]

    def __init__(self, config: DetectorConfig | None = None):
        if config is None:
            config = self.Config()
        elif not isinstance(config, self.Config):
            raise TypeError(
                f"Expected {self.Config.__qualname__} for detector {self.kind!r} "
                f"but got {type(config).__qualname__}"
            )
        self.config = config

    def detect(self, run: Run) -> list[Finding]:
        """Every finding of this kind in ``run``; an empty list when the run lacks the metrics."""
        raise NotImplementedError

    def finding(self, severity: str, start_step: int, end_step: int, evidence: dict, message: str) -> Finding:
        return Finding(self.kind, severity, start_step, end_step, evidence, message)


DETECTORS: dict[str, type[Detector]] = {}


def register_detector(cls: type[Detector]) -> type[Detector]:
    """Add a detector class to ``DETECTORS``; usable as a class decorator.

    Raises:
        TypeError: ``cls`` is not a Detector subclass, its ``Config`` is not a
            frozen dataclass, or it does not implement ``detect``.
        ValueError: ``kind`` is not snake_case or is already registered, or
            ``description``/``advice`` is not one non-empty line.
    """
    if not (isinstance(cls, type) and issubclass(cls, Detector)) or cls is Detector:
        raise TypeError(f"Expected a subclass of Detector but got {cls!r}")
    name = cls.__qualname__
    kind = getattr(cls, "kind", None)
    if not isinstance(kind, str) or not _SNAKE_CASE.fullmatch(kind):
        raise ValueError(f"Expected {name}.kind to be a non-empty snake_case str but got {kind!r}")
    if kind in DETECTORS:
        raise ValueError(
            f"Expected a new detector kind but {kind!r} is already registered by {DETECTORS[kind].__qualname__}"
        )
    config = getattr(cls, "Config", None)
    if not (isinstance(config, type) and dataclasses.is_dataclass(config) and config.__dataclass_params__.frozen):
        raise TypeError(f"Expected {name}.Config to be a frozen dataclass but got {config!r}")
    for attr in ("description", "advice"):
        text = getattr(cls, attr, None)
        if not isinstance(text, str) or not text.strip() or "\n" in text:
            raise ValueError(f"Expected {name}.{attr} to be one non-empty line but got {text!r}")
    if cls.detect is Detector.detect:
        raise TypeError(f"Expected {name} to implement detect(run) but it inherits the base one")
    DETECTORS[kind] = cls
    return cls
