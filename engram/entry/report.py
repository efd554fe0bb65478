"""`engram-report` (and `python report.py`): the sweep report without a W&B account, every job's config + eval.json
-> report.md, results.csv and PNG plots.

    engram-report multirun/table_sweep/2026-01-01_12-00-00      # written into that directory
    engram-report 'outputs/smoke/*' --out reports/smoke          # any run dirs, by glob
    engram-report multirun/... --no-gallery                      # without the gate heat maps of memory runs
"""

from __future__ import annotations

import sys
from pathlib import Path

from engram.demo.gallery import gate_gallery
from engram.tracking.report_cli import main


def cli() -> int:
    """The console script; usage and errors name the command as typed (report.py or engram-report)."""
    return main(gallery=gate_gallery, prog=Path(sys.argv[0]).name)  # the entry point joins the layers
