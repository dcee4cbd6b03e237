"""Reports over runs and their findings: one self-contained HTML file, or a text summary.

    python -c "from gandiag.rundir import load_run; from gandiag.report import write_report; \\
        print(write_report([load_run('runs/x')]))"
"""
from gandiag.report.html import write_report
from gandiag.report.text import text_summary

__all__ = ["write_report", "text_summary"]
