"""The W&B dashboard spec: offline it is written to a file with the command to apply it; with wandb-workspaces
installed it converts into a workspace view (no network: the view is built, never saved)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engram.tracking.dashboard import build_spec, main, to_report, to_workspace

ROOT = Path(__file__).resolve().parent.parent


def panels(spec: dict) -> list[dict]:
    return [p for s in spec["sections"] for p in s["panels"]]


def test_spec_covers_the_sweeps():
    spec = build_spec(group="table_sweep")
    assert spec["group"] == "table_sweep" and spec["project"] == "engram-lab"
    xs = {p.get("x") for p in panels(spec) if p["type"] == "scatter"}
    assert {"config:engram.table_size", "config:data.num_train", "config:engram.gate_bias"} <= xs
    slots = next(p for p in panels(spec) if p.get("x") == "config:engram.table_size")
    assert slots["log_x"] and slots["y"] == "summary:eval/exact_match"
    regexes = {p.get("metric_regex") for p in panels(spec) if p["type"] == "line"}
    assert "engram/layer.*/gate_mean" in regexes and "engram/layer.*/gate_open_frac" in regexes
    assert any(p["type"] == "table" and p["table"] == "four_way/comparison" for p in panels(spec))
    parallel = next(p for p in panels(spec) if p["type"] == "parallel")
    assert {"config:optim.lr", "config:engram.table_size", "config:engram.gate_bias"} <= set(parallel["columns"])


def test_offline_writes_spec_and_says_how_to_apply(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    out = tmp_path / "dash.json"
    assert main(["--group", "gate_bias", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"--apply {out}" in printed and "WANDB_MODE=online" in printed and "wandb sync" in printed
    spec = json.loads(out.read_text())  # the file holds the group's dashboard itself, checked by its content
    assert spec["group"] == "gate_bias" and spec["project"] == "engram-lab"
    assert len(spec["sections"]) >= 3 and all(s["panels"] for s in spec["sections"])
    assert {"config:engram.table_size", "config:engram.gate_bias"} <= {p.get("x") for p in panels(spec)}
    assert "engram/layer.*/gate_mean" in {p.get("metric_regex") for p in panels(spec)}


def test_online_without_entity_refuses(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_ENTITY", raising=False)
    assert main(["--online", "--group", "x"]) == 2
    assert "--entity" in capsys.readouterr().err


def test_spec_converts_to_workspace_and_report():
    pytest.importorskip("wandb_workspaces")
    spec = build_spec(entity="someone", group="table_sweep")
    workspace = to_workspace(spec)
    assert [s.name for s in workspace.sections] == [s["name"] for s in spec["sections"]]
    assert [len(s.panels) for s in workspace.sections] == [len(s["panels"]) for s in spec["sections"]]
    view = workspace._to_model()  # the payload .save() would upload; built offline
    assert "table_sweep" in json.dumps(view.model_dump(mode="json", by_alias=True), default=str)
    report = to_report(spec)
    assert report.title == spec["name"] and len(report.blocks) == 1 + 2 * len(spec["sections"])


def test_module_runs_as_a_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "engram.tracking.dashboard", "--out", str(tmp_path / "d.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "d.json").read_text())["group"] is None
