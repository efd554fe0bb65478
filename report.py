"""Sweep report without a W&B account: every job's config + eval.json -> report.md, results.csv and PNG plots.

    python report.py multirun/table_sweep/2026-01-01_12-00-00      # written into that directory
    python report.py 'outputs/smoke/*' --out reports/smoke          # any run dirs, by glob
    python report.py multirun/... --no-gallery                      # without the gate heat maps of memory runs
"""

import sys

from engram.demo.gallery import gate_gallery
from engram.tracking.report_cli import main

if __name__ == "__main__":
    sys.exit(main(gallery=gate_gallery))  # the entry point joins the layers: tracking never imports the demo
