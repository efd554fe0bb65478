"""The one run-dir reader (engram.tracking.run_dirs): what report.py and evaluate.py's comparison both read."""

from __future__ import annotations

import json

from omegaconf import OmegaConf

from engram.tracking.run_dirs import METRIC_COLUMNS, NOT_FINISHED, find_job_dirs, metric_columns, read_run


def job(path, variant="engram", metrics=None, failed=None):
    (path / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"variant": {"name": variant}}), path / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create([f"variant={variant}", "seed=1"]), path / ".hydra" / "overrides.yaml")
    if metrics is not None:
        (path / "eval.json").write_text(json.dumps({"info": {}, "metrics": metrics}))
    if failed is not None:
        (path / "FAILED.txt").write_text(failed)
    return path


def test_finished_failed_and_unfinished_jobs(tmp_path):
    ok = read_run(job(tmp_path / "0", metrics={"eval/exact_match": 0.5}))
    assert ok.variant == "engram" and ok.overrides == ["variant=engram", "seed=1"] and ok.error is None
    failed = read_run(job(tmp_path / "1", failed="Traceback ...\n  File x\nValueError: boom\n"))
    assert failed.result is None and failed.error == "ValueError: boom"
    assert read_run(job(tmp_path / "2")).error == NOT_FINISHED
    bare = tmp_path / "bare"  # a run dir given by hand may have no .hydra
    bare.mkdir()
    assert read_run(bare).cfg is None and read_run(bare).variant == "?"


def test_job_dirs_in_numeric_order(tmp_path):
    for i in (10, 2, 1):
        job(tmp_path / str(i))
    assert [p.name for p in find_job_dirs([tmp_path])] == ["1", "2", "10"]


def test_one_metric_map_for_both_readers():
    metrics = {"eval/exact_match": 1.0, "val/loss": 0.1, "other/thing": 3.0}
    assert metric_columns(metrics) == {"exact_match": 1.0, "eval_loss": 0.1}
    full = metric_columns(metrics, keep_missing=True)
    assert list(full) == list(METRIC_COLUMNS.values()) and full["retention"] is None
