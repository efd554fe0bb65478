"""Target 10 (issue 19): the exact5k record's four variants (5 000 facts) within an hour on this CPU.

Runs `python train.py -m experiment=exact5k_fast logger=csv` as a subprocess (two jobs at a time, one torch thread
each: the record's own launcher settings) and prints the wall time of the whole sweep against 3 600 s, then each
variant's time and accuracy from its eval.json. `--exact5k-dir` reads a sweep that already ran instead (its wall time
is then the longest chain of job times, as the record's launcher ran them; the row says so).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import Row, check

ROOT = Path(__file__).resolve().parent.parent
LIMIT_S = 3600.0
RECORD = "exact5k_fast"


def run_record(sweep_dir: Path, extra: list[str]) -> float:
    """The record's multirun into `sweep_dir`; returns its wall time."""
    cmd = [sys.executable, "train.py", "-m", f"experiment={RECORD}", "logger=csv", f"hydra.sweep.dir={sweep_dir}",
           *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    return time.perf_counter() - t0


def job_results(sweep_dir: Path) -> dict[str, dict]:
    """variant -> eval.json of each job of a sweep (jobs without one are missing)."""
    out = {}
    for path in sorted(sweep_dir.glob("*/eval.json")):
        data = json.loads(path.read_text())
        out[data["info"]["variant"]] = data
    return out


def exact5k(quick: bool, sweep_dir: Path | None = None) -> list[Row]:
    if quick and sweep_dir is None:
        return [Row("10 exact5k_fast, four variants", "skipped in --quick (an hour on SmolLM2); "
                    "python benchmarks/run.py --only exact5k")]
    if sweep_dir is None:
        sweep_dir = ROOT / "multirun" / RECORD / time.strftime("bench-%Y-%m-%d_%H-%M-%S")
        wall, how = run_record(sweep_dir, []), "wall time of the sweep"
    else:
        wall, how = None, f"read from {sweep_dir.name}"
    results = job_results(sweep_dir)
    rows = []
    for variant, data in results.items():
        m = data["metrics"]
        rows.append(Row(f"10 {variant}", f"{m['time/total_s']:.0f} s; seen {m['eval/exact_match_seen']:.1%}, unseen "
                        f"{m['eval/exact_match_unseen']:.1%}, retention {m['eval/retention']:.1%}"))
    if wall is None:  # two at a time, longest first (the record's order): the busier of the two workers
        wall = two_workers([results[v]["metrics"]["time/total_s"] for v in results])
        how += "; time = the two workers' longer queue of job times (job start-up excluded)"
    missing = {"baseline", "lora", "engram", "combined"} - set(results)
    if missing:
        rows.append(Row("10 exact5k_fast, four variants", f"missing: {', '.join(sorted(missing))}", None, "", False))
        return rows
    rows.append(check("10 exact5k_fast, four variants (time / 3600 s)", f"{wall:.0f} s", wall / LIMIT_S, "<=", 1.0,
                      how))
    return rows


def two_workers(times: list[float]) -> float:
    """Finishing time of jobs taken in order by the first of two free workers."""
    free = [0.0, 0.0]
    for t in times:
        i = free.index(min(free))
        free[i] += t
    return max(free)
