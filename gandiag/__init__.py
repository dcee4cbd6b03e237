"""gandiag: diagnose GAN training.

Public API::

    gandiag.Monitor            record your own training loop
    gandiag.train / sweep      gandiag's trainer (what `gandiag run` calls)
    gandiag.load_run           read a run directory
    gandiag.analyze            run the detectors on a run
    gandiag.analyze_runs       runs -> findings (what `gandiag report` calls)
    gandiag.write_report       the HTML report

Names are imported on first use (PEP 562), so ``import gandiag`` and
``gandiag.Monitor`` in a training script do not load the report's plotting
stack (matplotlib, seaborn) or the data sets' dependencies.
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "Analysis": "gandiag.analysis", "analyze_runs": "gandiag.analysis", "find_run_dirs": "gandiag.analysis",
    "DETECTORS": "gandiag.detectors", "Finding": "gandiag.detectors", "analyze": "gandiag.detectors",
    "register_detector": "gandiag.detectors",
    "LOSSES": "gandiag.losses", "LossVariant": "gandiag.losses", "get_loss": "gandiag.losses",
    "register_loss": "gandiag.losses",
    "Monitor": "gandiag.monitor", "MonitorConfig": "gandiag.monitor", "MonitorUsageError": "gandiag.monitor",
    "text_summary": "gandiag.report", "write_report": "gandiag.report",
    "FORMAT_VERSION": "gandiag.rundir", "Run": "gandiag.rundir", "RunDirError": "gandiag.rundir",
    "load_run": "gandiag.rundir",
    "TrainConfig": "gandiag.train", "sweep": "gandiag.train", "train": "gandiag.train",
}

__all__ = [*_EXPORTS, "__version__"]

if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from gandiag.analysis import Analysis, analyze_runs, find_run_dirs
    from gandiag.detectors import DETECTORS, Finding, analyze, register_detector
    from gandiag.losses import LOSSES, LossVariant, get_loss, register_loss
    from gandiag.monitor import Monitor, MonitorConfig, MonitorUsageError
    from gandiag.report import text_summary, write_report
    from gandiag.rundir import FORMAT_VERSION, Run, RunDirError, load_run
    from gandiag.train import TrainConfig, sweep, train


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gandiag' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    # Importing a submodule binds it on the package under its own name, and
    # gandiag.train (the function) shares its name with gandiag.train (the
    # module). The eager imports used to bind the function last; here the
    # binding of the module to a public name is refused, so gandiag.train
    # stays the function whoever imports the module first.
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
