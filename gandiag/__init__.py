"""gandiag: diagnose GAN training.

Public API::

    gandiag.Monitor            record your own training loop
    gandiag.train / sweep      gandiag's trainer (what `gandiag run` calls)
    gandiag.load_run           read a run directory
    gandiag.analyze            run the detectors on a run
    gandiag.analyze_runs       runs -> findings (what `gandiag report` calls)
    gandiag.write_report       the HTML report
"""
from gandiag.analysis import Analysis, analyze_runs, find_run_dirs
from gandiag.detectors import DETECTORS, Finding, analyze, register_detector
from gandiag.losses import LOSSES, LossVariant, get_loss, register_loss
from gandiag.monitor import Monitor, MonitorConfig, MonitorUsageError
from gandiag.report import text_summary, write_report
from gandiag.rundir import FORMAT_VERSION, Run, RunDirError, load_run
from gandiag.train import TrainConfig, sweep, train

__version__ = "0.1.0"

__all__ = [
    "Analysis", "analyze_runs", "find_run_dirs", "DETECTORS", "Finding", "analyze", "register_detector",
    "LOSSES", "LossVariant", "get_loss", "register_loss", "Monitor", "MonitorConfig", "MonitorUsageError",
    "text_summary", "write_report", "FORMAT_VERSION", "Run", "RunDirError", "load_run",
    "TrainConfig", "sweep", "train", "__version__",
]
