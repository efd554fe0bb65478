"""A real multirun on the tiny model feeds report.py: a 2x2 sweep (table_size x num_train) plus jobs that fail on
purpose -- one with a config error (2 slots < 4 hash heads), one that crashes at run time (resume from a missing
checkpoint). The failures must not stop the other jobs and must show up in the report with their error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engram.tracking.report import collect
from engram.tracking.report_cli import main as report_main

ROOT = Path(__file__).resolve().parent.parent
TINY = ["model=tiny", "trainer=debug", "logger=none", "variant=engram", "engram.dim=32", "eval_max_new_tokens=4",
        "data.num_eval=8", "data.eval_batch_size=8", "data.batch_size=8"]


def multirun(sweep_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}  # tiny matrices: one thread is fastest
    return subprocess.run([sys.executable, "train.py", "-m", *TINY, *overrides, f"hydra.sweep.dir={sweep_dir}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("sweep")
    # job order: the two table_size=2 jobs fail first, then the 2x2 grid runs
    grid = multirun(root / "grid", "engram.table_size=2,256,1024", "data.num_train=8,16")
    return root, grid


def test_failing_jobs_do_not_stop_the_sweep(sweep):
    root, done = sweep
    assert done.returncode != 0, "Hydra reports the failed jobs at the end"
    jobs = sorted((root / "grid").iterdir())
    finished = [j.name for j in jobs if (j / "eval.json").is_file()]
    failed = [j.name for j in jobs if (j / "FAILED.txt").is_file()]
    assert failed == ["0", "1"] and finished == ["2", "3", "4", "5"], done.stderr[-2000:]
    assert "engram.heads=4 must be <= engram.table_size (2)" in (root / "grid" / "0" / "FAILED.txt").read_text()


def test_report_on_the_sweep(sweep, tmp_path):
    root, _ = sweep
    assert report_main([str(root / "grid"), "--out", str(tmp_path)]) == 0
    df = collect([root / "grid"])
    assert len(df) == 6 and (df["status"] == "failed").sum() == 2
    assert df[df.status == "failed"]["error"].str.contains("engram.table_size").all()

    md = (tmp_path / "report.md").read_text()
    assert "6 jobs: 4 finished, 2 failed" in md and "## Failed jobs" in md
    assert md.count("must be <= engram.table_size (2)") == 2

    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert len(pngs) >= 3
    plots = json.loads((tmp_path / "plots.json").read_text())
    assert set(plots) == set(pngs)
    slots = plots["exact_match_vs_slots.png"]["exact_match"]  # one line per num_train, one point per table size
    assert sorted(slots) == ["num_train=16", "num_train=8"]
    assert all([p[0] for p in pts] == [256, 1024] for pts in slots.values())
    scale = plots["exact_match_vs_data.png"]["exact_match"]  # one line per table size, one point per num_train
    assert sorted(scale) == ["table_size=1024", "table_size=256"]
    assert all([p[0] for p in pts] == [8, 16] for pts in scale.values())
    gate = plots["gate_vs_slots.png"]
    assert set(gate) == {"gate_mean", "gate_open_frac"}
    assert all(len(pts) == 2 and all(0.0 <= y <= 1.0 for _, y in pts)
               for series in gate.values() for pts in series.values())
    # the plotted exact match is the one in each job's eval.json
    job = df[(df.table_size == 256) & (df.num_train == 8)].iloc[0]
    em = json.loads((Path(job["job"]) / "eval.json").read_text())["metrics"]["eval/exact_match"]
    assert slots["num_train=8"][0][1] == pytest.approx(em)
    cats = plots["per_category.png"]
    assert len(cats["bars"]) == 4 and all(len(v) == len(cats["groups"]) for v in cats["bars"].values())


def test_runtime_failure_is_reported(tmp_path):
    """A crash inside training (resume from a checkpoint that does not exist) in the first job of a sweep."""
    done = multirun(tmp_path / "crash", "engram.table_size=256", "data.num_train=8", "ckpt_path=missing.ckpt,null")
    jobs = tmp_path / "crash"
    assert done.returncode != 0
    assert (jobs / "0" / "FAILED.txt").is_file() and not (jobs / "0" / "eval.json").exists()
    assert (jobs / "1" / "eval.json").is_file(), done.stderr[-2000:]
    df = collect([jobs])
    assert df["status"].tolist() == ["failed", "ok"]
    assert "missing.ckpt" in df.loc[0, "error"]
