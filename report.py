"""`python report.py ...` = `engram-report ...` (engram/entry/report.py): every job's config + eval.json ->
report.md, results.csv and PNG plots, without a W&B account.

    python report.py multirun/table_sweep/2026-01-01_12-00-00      # written into that directory
    python report.py 'outputs/smoke/*' --out reports/smoke          # any run dirs, by glob
    python report.py multirun/... --no-gallery                      # without the gate heat maps of memory runs
"""

import sys

from engram.entry.report import cli

if __name__ == "__main__":
    sys.exit(cli())
