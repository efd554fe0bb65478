"""report.py on job dirs written here (config + overrides + eval.json as the training pipeline writes them):
the table, the failed-job listing, and the data behind every plot."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from engram.tracking.report import collect, varying_override_keys, write_report

ROOT = Path(__file__).resolve().parent.parent


def fake_job(job: Path, overrides: list[str], metrics: dict | None, per_category: dict | None = None,
             error: str | None = None) -> Path:
    """A Hydra job dir: .hydra/config.yaml + overrides.yaml, and eval.json (or FAILED.txt when metrics is None)."""
    with initialize_config_dir(config_dir=str(ROOT / "engram" / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["model=tiny", *overrides])
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, job / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(["model=tiny", *overrides]), job / ".hydra" / "overrides.yaml")
    if metrics is not None:
        payload = {"info": {}, "metrics": metrics, "per_category": per_category or {}, "examples": []}
        (job / "eval.json").write_text(json.dumps(payload))
    elif error is not None:
        (job / "FAILED.txt").write_text(f"Traceback (most recent call last):\n  File x\n{error}\n")
    return job


def grid_metrics(table: int, n: int) -> dict:
    em = 0.01 * (table // 1000) + n / 1000  # distinct per job so the plotted values can be checked
    return {"eval/exact_match": em, "eval/exact_match_seen": em + 0.1, "eval/exact_match_unseen": em / 2,
            "eval/retention": 0.9, "eval/latency_ms": 12.5, "params/trainable": 1000.0 + table,
            "final/engram/layer0/gate_mean": 0.2, "final/engram/layer1/gate_mean": 0.4,
            "final/engram/layer0/gate_open_frac": 0.1, "final/engram/layer1/gate_open_frac": 0.3,
            "final/engram/layer1/slot_utilisation": 0.5, "final/engram/layer1/collision_rate": 0.01}


def flat(points: list[list[float]]) -> list[float]:
    return [v for p in points for v in p]


@pytest.fixture(scope="module")
def grid_template(tmp_path_factory) -> Path:
    """A 2x2 sweep (table_size x num_train) plus one job that failed with a recorded error."""
    root = tmp_path_factory.mktemp("multirun") / "grid"
    num = 0
    for table in (1000, 10000):
        for n in (100, 500):
            cats = {"capital": {"n": 4, "correct": 1, "exact_match": 0.25},
                    "element": {"n": 4, "correct": 2, "exact_match": 0.5 + n / 10000}}
            fake_job(root / str(num), ["variant=engram", f"engram.table_size={table}", f"data.num_train={n}"],
                     grid_metrics(table, n), cats)
            num += 1
    fake_job(root / str(num), ["variant=engram", "engram.table_size=100000", "data.num_train=500"], None,
             error="RuntimeError: boom in job 4")
    return root


@pytest.fixture
def grid(grid_template, tmp_path) -> Path:
    """A fresh copy per test (tests write reports into it)."""
    return Path(shutil.copytree(grid_template, tmp_path / "grid"))


def test_collect_table(grid):
    df = collect([grid])
    assert len(df) == 5
    assert list(df["status"]) == ["ok"] * 4 + ["failed"]
    assert df.loc[4, "error"] == "RuntimeError: boom in job 4"
    ok = df[df.status == "ok"]
    assert sorted(ok["table_size"].tolist()) == [1000, 1000, 10000, 10000]
    assert sorted(ok["num_train"].tolist()) == [100, 100, 500, 500]
    # per-layer gate statistics averaged over the memory layers
    assert ok["gate_mean"].tolist() == pytest.approx([0.3] * 4)
    assert {"cat/capital", "cat/element", "exact_match_seen", "latency_ms"} <= set(df.columns)
    assert df.loc[0, "label"] == "table_size=1000, num_train=100"


def test_report_plots_have_the_right_points(grid, tmp_path):
    out = tmp_path / "report"
    result = write_report(collect([grid]), out, [grid])
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) >= 3 and set(pngs) == set(result["plots"])
    plots = json.loads((out / "plots.json").read_text())

    slots = plots["exact_match_vs_slots.png"]["exact_match"]
    assert sorted(slots) == ["num_train=100", "num_train=500"]
    assert flat(slots["num_train=100"]) == pytest.approx([1000, 0.11, 10000, 0.2])  # (slots, exact match) pairs
    assert flat(slots["num_train=500"]) == pytest.approx([1000, 0.51, 10000, 0.6])

    scale = plots["exact_match_vs_data.png"]["exact_match"]
    assert sorted(scale) == ["table_size=1000", "table_size=10000"]
    assert all(len(points) == 2 for points in scale.values())

    gate = plots["gate_vs_slots.png"]
    assert set(gate) == {"gate_mean", "gate_open_frac"}
    assert [p[1] for p in gate["gate_open_frac"]["num_train=100"]] == pytest.approx([0.2, 0.2])

    cats = plots["per_category.png"]
    assert cats["groups"] == ["capital", "element"] and len(cats["bars"]) == 4  # one bar series per finished job
    assert cats["bars"]["table_size=1000, num_train=500"] == pytest.approx([0.25, 0.55])
    seen = plots["seen_unseen.png"]
    assert seen["groups"] == ["seen", "unseen", "retention"] and all(len(v) == 3 for v in seen["bars"].values())

    md = (out / "report.md").read_text()
    assert "5 jobs: 4 finished, 1 failed" in md
    assert "## Failed jobs" in md and "RuntimeError: boom in job 4" in md
    for png in pngs:
        assert f"]({png})" in md
    csv = pd.read_csv(out / "results.csv")
    assert len(csv) == 5 and csv["status"].tolist().count("failed") == 1


def test_failed_job_without_note(tmp_path):
    fake_job(tmp_path / "0", ["variant=lora"], {"eval/exact_match": 0.5})
    fake_job(tmp_path / "1", ["variant=engram"], None)
    df = collect([tmp_path])
    assert df["status"].tolist() == ["ok", "failed"]
    assert "no eval.json" in df.loc[1, "error"]
    assert df["label"].tolist() == ["lora", "engram"]


def test_varying_keys():
    assert varying_override_keys(["a=1 b=2 c=3", "a=1 b=3", "a=1 b=2 c=3"]) == ["b", "c"]


def test_report_cli(grid):
    done = subprocess.run([sys.executable, str(ROOT / "report.py"), str(grid)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "5 jobs (1 failed)" in done.stdout
    assert (grid / "report.md").is_file() and len(list(grid.glob("*.png"))) >= 3



def test_report_on_nothing(tmp_path, capsys):
    from engram.tracking.report_cli import main

    assert main([str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err == f"report.py: {tmp_path / 'nothing'} does not exist (give a multirun dir, a run " \
                                      "dir or a glob)\n"
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert capsys.readouterr().err == f"report.py: no job dirs (.hydra/config.yaml) under: {tmp_path / 'empty'}\n"


def test_optuna_best_trial_in_report(grid, tmp_path):
    (grid / "optimization_results.yaml").write_text(
        "name: optuna\nbest_params:\n  optim.lr: 0.003\n  engram.table_size: 5000\nbest_value: 0.42\n")
    write_report(collect([grid]), tmp_path, [grid])
    md = (tmp_path / "report.md").read_text()
    assert "## Optuna search" in md and "Best value: 0.42" in md and "`engram.table_size` = 5000" in md


def test_selectivity_columns_reach_the_table(tmp_path):
    """knock-out, memory entering on facts / general prompts and lost rows (eval.json) are report columns."""
    metrics = {**grid_metrics(1000, 100), "knockout/exact_match_seen": 0.0, "selectivity/facts": 0.97,
               "selectivity/general": 0.01, "collisions/facts_with_lost_rows": 0.26, "time/prepopulate_s": 42.0}
    fake_job(tmp_path / "sweep" / "0", ["engram=recall", "engram.address=written"], metrics)
    df = collect([tmp_path / "sweep"])
    row = df.iloc[0]
    assert (row["knockout_seen"], row["entering_facts"], row["entering_general"], row["lost_rows"]) == (
        0.0, 0.97, 0.01, 0.26)
    assert row["address"] == "written"
    write_report(df, tmp_path / "out", [tmp_path / "sweep"])
    text = (tmp_path / "out" / "report.md").read_text()
    assert "knock-out seen" in text and "memory on general" in text and "| 26.0% |" in text


def test_recall_vs_distraction_curve(tmp_path):
    """Jobs with data.long_recall.eval_distractions (categories distraction_<n>) get recall_vs_distraction.png: one
    line per job with its per-length recall, sorted by length, and the attention window marked; plus a table."""
    arms = {"0": (["+arm=windowed"], {"distraction_50": 0.9, "distraction_300": 0.05, "distraction_100": 0.5}),
            "1": (["+arm=windowed_engram"], {"distraction_50": 1.0, "distraction_300": 1.0, "distraction_100": 1.0}),
            "2": (["+arm=full"], {"distraction_50": 1.0, "distraction_300": 0.8, "distraction_100": 0.9})}
    for job, (overrides, recall) in arms.items():
        per_category = {cat: {"n": 10, "correct": int(10 * v), "exact_match": v} for cat, v in recall.items()}
        fake_job(tmp_path / "sweep" / job, ["model=scratch", "data=long_recall", *overrides],
                 grid_metrics(1000, 100), per_category)
    out = write_report(collect([tmp_path / "sweep"]), tmp_path / "out", [tmp_path / "sweep"])
    drawn = out["plots"]["recall_vs_distraction.png"]
    assert drawn["arm=windowed"] == [[50.0, 0.9], [100.0, 0.5], [300.0, 0.05]]
    assert drawn["arm=windowed_engram"] == [[50.0, 1.0], [100.0, 1.0], [300.0, 1.0]]
    assert set(drawn) == {"arm=windowed", "arm=windowed_engram", "arm=full"}  # the window line is not data
    assert (tmp_path / "out" / "recall_vs_distraction.png").stat().st_size > 0
    text = (tmp_path / "out" / "report.md").read_text()
    assert "| job | 50 | 100 | 300 |" in text and "| arm=windowed | 90.0% | 50.0% | 5.0% |" in text


def test_firing_curves_of_question_keyed_runs_are_plotted(tmp_path):
    """A job with firing.json (engram.hash=question) gets a line per panel in firing.png, with its own values."""
    thresholds = [0.2, 0.4, 0.6]
    for i, threshold in enumerate((0.4, 0.6)):
        job = fake_job(tmp_path / "sweep" / str(i), ["engram=question", f"engram.question.threshold={threshold}"],
                       grid_metrics(1000, 100))
        curve = {"threshold": threshold, "thresholds": thresholds, "rewordings": [0.9, (0.8, 0.7)[i], 0.5],
                 "neighbors": [0.3, 0.1, 0.0], "general": [0.0, 0.0, 0.0], "counts": {}}
        (job / "firing.json").write_text(json.dumps(curve))
    fake_job(tmp_path / "sweep" / "2", ["engram=recall"], grid_metrics(1000, 100))  # no curve: not drawn
    df = collect([tmp_path / "sweep"])
    write_report(df, tmp_path / "out", [tmp_path / "sweep"])
    drawn = json.loads((tmp_path / "out" / "plots.json").read_text())["firing.png"]
    assert (tmp_path / "out" / "firing.png").stat().st_size > 0
    lines = [pts for label, pts in drawn["rewordings"].items()]
    assert [[0.2, 0.9], [0.4, 0.8], [0.6, 0.5]] in lines and [[0.2, 0.9], [0.4, 0.7], [0.6, 0.5]] in lines
    assert [[0.4, 0.8]] in lines and [[0.6, 0.5]] in lines  # each run's dot sits at its own threshold
