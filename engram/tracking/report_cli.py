"""`engram-report PATH ...` / `python report.py PATH ...` (engram/entry/report.py): the command line of the sweep report
(engram/tracking/report.py). Bad input (a path that does not exist, no job dirs, --out a file) is one line on stderr
and exit 2, like every entry point."""

from __future__ import annotations

import glob
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from engram.cli_args import OneLineParser
from engram.config.rules import one_line
from engram.tracking.compress_plots import read_results, write_compress_report
from engram.tracking.compressor_plots import read_compressor_runs
from engram.tracking.report import Gallery, collect, write_report

DESCRIPTION = "Sweep report without a W&B account: every job's config + eval.json -> report.md, results.csv, PNGs."


def main(argv: Sequence[str] | None = None, gallery: Gallery | None = None, prog: str = "report.py") -> int:
    """`gallery`: see write_report (report.py passes the demo's; --no-gallery skips it); `prog`: the command as
    typed (report.py or engram-report), in usage and errors."""
    parser = OneLineParser(prog=prog, description=DESCRIPTION)
    parser.add_argument("paths", nargs="+", help="multirun/<experiment>/<date>, a run dir, or a glob")
    parser.add_argument("--out", help="where report.md/PNGs go (default: the single path given, else reports/<now>)")
    parser.add_argument("--no-gallery", action="store_true",
                        help="skip the gate heat maps (they load each memory run's model)")
    args = parser.parse_args(argv)
    if missing := [p for p in args.paths if not glob.glob(p)]:  # a literal path globs to itself when it exists
        return _bad_input(prog, f"{missing[0]} does not exist (give a multirun dir, a run dir or a glob)")
    single = len(args.paths) == 1 and Path(args.paths[0]).is_dir()
    out = Path(args.out) if args.out else Path(args.paths[0]) if single else Path(
        "reports") / f"{datetime.now():%Y-%m-%d_%H-%M-%S-%f}"
    df = collect(args.paths)
    if df.empty:
        # `python -m engram.compress eval|sweep|train` runs have no Hydra job dir
        compress_runs, trained_runs = read_results(args.paths), read_compressor_runs(args.paths)
        if compress_runs or trained_runs:
            return write_compress_report(compress_runs, out, args.paths, trained_runs)
        return _bad_input(prog, f"no job dirs (.hydra/config.yaml) under: {' '.join(args.paths)}")
    if out.exists() and not out.is_dir():
        return _bad_input(prog, f"--out {out} is a file; give a directory")
    result = write_report(df, out, args.paths, None if args.no_gallery else gallery)
    n_failed = int((df["status"] != "ok").sum())
    print(f"{len(df)} jobs ({n_failed} failed) -> {result['markdown']}, {len(result['plots'])} plots, "
          f"{result['csv']}")
    return 0


def _bad_input(prog: str, message: str) -> int:
    print(one_line(f"{prog}: {message}"), file=sys.stderr)  # the entry points' convention: one line, exit 2
    return 2
