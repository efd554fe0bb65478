"""Benchmarks of issue 19 in quick mode: target 3 (the exact5k_fast recipe vs the seed, >= 50x) and target 10 (the
exact5k_fast record vs one hour) print their rows; target 10 reads a finished sweep."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` is a top-level directory


def test_quick_mode_prints_the_recipe_and_exact5k_rows(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import run

    assert run.main(["--quick", "--only", "throughput,exact5k"]) == 0
    out = capsys.readouterr().out
    assert "3 ours: exact5k_fast engram / seed" in out and ">= 50" in out
    assert "3 same, train.prefix_cache=false / seed" in out
    assert "10 exact5k_fast, four variants" in out and "skipped in --quick" in out


def test_the_exact5k_row_reads_a_finished_sweep(tmp_path: Path) -> None:
    from benchmarks.bench_exact5k import exact5k

    times = {"combined": 1500.0, "engram": 1000.0, "lora": 900.0, "baseline": 300.0}
    for i, (variant, seconds) in enumerate(times.items()):
        (tmp_path / str(i)).mkdir()
        metrics = {"time/total_s": seconds, "eval/exact_match_seen": 1.0, "eval/exact_match_unseen": 0.0,
                   "eval/retention": 1.0}
        (tmp_path / str(i) / "eval.json").write_text(json.dumps({"info": {"variant": variant}, "metrics": metrics}))
    rows = exact5k(quick=True, sweep_dir=tmp_path)
    total = rows[-1]
    assert total.passed is True and total.measured == "1900 s"  # workers: 1500 + 300 and 1000 + 900
    assert [r.target for r in rows[:4]] == [f"10 {v}" for v in times]


def test_the_recorded_command_leaves_out_where_the_records_went() -> None:
    from benchmarks.run import without_outputs

    argv = ["--only", "offload", "--json", "out/a.json", "--out=out/a.md", "--out", "b.md", "--json=c.json"]
    assert without_outputs(argv) == ["--only", "offload"]  # a machine's temp dir is no part of what was measured


def test_the_allocation_benchmark_times_each_arm_against_the_dense_one() -> None:
    from benchmarks.bench_alloc import alloc_speed

    rows = alloc_speed(32, 2, rounds=2, warmup=1, arms=("alloc_dense", "alloc_rho0", "alloc_rho100"))
    assert [r.target for r in rows] == ["13 alloc dense step (64 tokens)", "13 alloc MoE alone (rho 0) / dense",
                                        "13 alloc alloc_rho100 / dense", "13 alloc memory on the dense decoder / dense"]
    assert rows[2].limit == ">= 0.9" and rows[2].ratio > 0
    assert rows[1].passed is None and rows[3].passed is None and rows[3].ratio > 0  # reported, not held


def test_the_compressor_benchmark_projects_the_records_training_time() -> None:
    from benchmarks.bench_compress import LIMIT_MIN, QA_STEPS, compress_speed

    rows = compress_speed("tiny", rounds=2, warmup=1, k=2, docs_per_step=2)
    assert rows[0].target == "14 compress kv k=2 QA step (2 documents, 12 questions)" and rows[0].passed is None
    seconds = float(rows[0].measured.split()[0])  # printed to 0.01 s
    assert rows[1].limit == "<= 1" and rows[1].ratio == pytest.approx(QA_STEPS * seconds / 60 / LIMIT_MIN, abs=1e-3)
