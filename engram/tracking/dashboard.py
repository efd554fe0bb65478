"""W&B dashboards for the sweeps: `python -m engram.tracking.dashboard [--group table_sweep]`.

The dashboard is first a plain JSON spec (sections of panels; what the project logs). Online (WANDB_MODE=online or
--online) it becomes a W&B workspace (or report, --kind report) through the `wandb-workspaces` package
(`pip install 'engram-lab[dashboard]'`); offline it is written to a file and the command to apply it later is
printed. Nothing here touches the network unless you ask for online.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engram.config import ROW_ORDER
from engram.extras import require

PROJECT = "engram-lab"
DEFAULT_OUT = Path("dashboards")


def _line(title: str, *ys: str, regex: str | None = None) -> dict[str, Any]:
    return {"type": "line", "title": title, "y": list(ys), "metric_regex": regex}


def _scatter(title: str, x: str, y: str, log_x: bool = False) -> dict[str, Any]:
    return {"type": "scatter", "title": title, "x": x, "y": y, "log_x": log_x}


def _bar(title: str, *metrics: str, groupby: str = "variant.name") -> dict[str, Any]:
    return {"type": "bar", "title": title, "metrics": list(metrics), "groupby": groupby}


def build_spec(project: str = PROJECT, entity: str | None = None, group: str | None = None) -> dict[str, Any]:
    """The dashboard for one experiment group (or every run of the project): metric names as the training logs
    them; `config:` / `summary:` prefixes say where a scalar lives."""
    em = "summary:eval/exact_match"
    sections = [
        {"name": "Comparison (six rows)", "rows": list(ROW_ORDER), "panels": [
            _bar("Exact match by variant", "eval/exact_match", "eval/exact_match_seen", "eval/exact_match_unseen"),
            _bar("Paraphrases of trained facts", "paraphrase/exact_match_seen", "edit/generalization_tf"),
            _bar("Untaught questions about taught entities, answered as the base", "edit/neighbors",
                 "edit/neighbors_tf"),
            _bar("Retention of general answers", "eval/retention"),
            _bar("Latency (ms/answer)", "eval/latency_ms"),
            _bar("Trainable parameters", "params/trainable"),
            {"type": "table", "title": "Comparison table", "table": "four_way/comparison"},
        ]},
        {"name": "Sweeps", "panels": [
            _scatter("Exact match vs memory slots", "config:engram.table_size", em, log_x=True),
            _scatter("Exact match vs training examples", "config:data.num_train", em, log_x=True),
            _scatter("Exact match vs gate bias", "config:engram.gate_bias", em),
            _scatter("Retention vs exact match", em, "summary:eval/retention"),
            _bar("Exact match by hash", "eval/exact_match", groupby="engram.hash"),
            _bar("Exact match by memory layers", "eval/exact_match", groupby="engram.layers"),
            {"type": "parallel", "title": "Optuna search (lr, slots, gate bias)",
             "columns": ["config:optim.lr", "config:engram.table_size", "config:engram.gate_bias", em]},
        ]},
        {"name": "Memory and gates", "panels": [
            _line("Gate mean per layer", regex="engram/layer.*/gate_mean"),
            _line("Fraction of gates open per layer", regex="engram/layer.*/gate_open_frac"),
            _line("Slot utilisation", regex="engram/layer.*/slot_utilisation"),
            _line("Collision rate", regex="engram/layer.*/collision_rate"),
            _scatter("Final gate mean vs memory slots", "config:engram.table_size",
                     "summary:final/engram/layer1/gate_mean", log_x=True),
        ]},
        {"name": "LoRA gate (variant=gated_lora)", "panels": [
            _line("LoRA gate: answer vs prompt positions", "train/gate_answer_step", "train/gate_prompt_step"),
            _bar("Final LoRA gate: seen / unseen answers, general prompts", "gate/answer_seen", "gate/answer_unseen",
                 "gate/prompt_seen", "gate/general"),
        ]},
        {"name": "Training", "panels": [
            _line("Loss", "train/loss_step", "val/loss"),
            _line("Learning rate", "train/lr", "train/lr_tables"),
            _line("Step time (s)", "train/step_time_s"),
            _line("Tokens per second", "train/tokens_per_s"),
        ]},
    ]
    title = f"{project}: {group}" if group else f"{project}: all experiments"
    return {"project": project, "entity": entity, "group": group, "name": title, "sections": sections}


# ---------------------------------------------------------------- wandb-workspaces objects (lazy import)


def _import_workspaces() -> tuple[Any, Any]:
    require("wandb_workspaces")  # an optional extra ([dashboard]): a missing one is one line and exit 2
    import wandb_workspaces.reports.v2 as wr  # lazy: only the online path needs it
    import wandb_workspaces.workspaces as ws

    return ws, wr


def _key(wr: Any, key: str) -> Any:
    if key.startswith("config:"):
        return wr.Config(key[len("config:"):])
    if key.startswith("summary:"):
        return wr.SummaryMetric(key[len("summary:"):])
    return key


def to_panel(wr: Any, p: dict[str, Any]) -> Any:
    kind = p["type"]
    if kind == "line":
        extra = {"metric_regex": p["metric_regex"]} if p.get("metric_regex") else {"y": p["y"]}
        return wr.LinePlot(title=p["title"], **extra)
    if kind == "scatter":
        return wr.ScatterPlot(title=p["title"], x=_key(wr, p["x"]), y=_key(wr, p["y"]), log_x=p.get("log_x"))
    if kind == "bar":
        return wr.BarPlot(title=p["title"], metrics=p["metrics"], groupby=wr.Config(p["groupby"]),
                          groupby_aggfunc="mean", groupby_rangefunc="minmax")
    if kind == "parallel":
        cols = [wr.ParallelCoordinatesPlotColumn(metric=_key(wr, c)) for c in p["columns"]]
        return wr.ParallelCoordinatesPlot(title=p["title"], columns=cols)
    if kind == "table":
        return wr.WeavePanelSummaryTable(table_name=p["table"])
    raise ValueError(f"dashboard spec: unknown panel type {kind!r}")


def to_workspace(spec: dict[str, Any]) -> Any:
    """A `wandb_workspaces` Workspace (not saved): one section per spec section, runs filtered to the group."""
    ws, wr = _import_workspaces()
    filters = [ws.Metric("Group") == spec["group"]] if spec.get("group") else []
    return ws.Workspace(
        entity=spec.get("entity") or "", project=spec["project"], name=spec["name"],
        sections=[ws.Section(name=s["name"], panels=[to_panel(wr, p) for p in s["panels"]], is_open=True)
                  for s in spec["sections"]],
        runset_settings=ws.RunsetSettings(filters=filters, groupby=[ws.Config("variant.name")]),
    )


def to_report(spec: dict[str, Any]) -> Any:
    """The same panels as a W&B report (one heading + panel grid per section)."""
    _, wr = _import_workspaces()
    runset = wr.Runset(entity=spec.get("entity") or "", project=spec["project"], name=spec["name"],
                       filters=f"Group = '{spec['group']}'" if spec.get("group") else "")
    blocks: list[Any] = [wr.P(f"Panels for the runs of {spec['name']} (made by engram.tracking.dashboard).")]
    for s in spec["sections"]:
        blocks += [wr.H2(s["name"]), wr.PanelGrid(runsets=[runset], panels=[to_panel(wr, p) for p in s["panels"]])]
    return wr.Report(project=spec["project"], entity=spec.get("entity") or "", title=spec["name"], blocks=blocks)


# ---------------------------------------------------------------- command line


def write_spec(spec: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec, indent=1) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engram.tracking.dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--project", default=PROJECT)
    parser.add_argument("--entity", default=os.environ.get("WANDB_ENTITY"), help="W&B entity (user or team)")
    parser.add_argument("--group", help="experiment name (= W&B group), e.g. table_sweep; default: every run")
    parser.add_argument("--kind", choices=("workspace", "report"), default="workspace")
    parser.add_argument("--out", type=Path, help="offline: where the spec goes (default dashboards/<group>.json)")
    parser.add_argument("--apply", type=Path, help="create the dashboard from a spec file written earlier")
    parser.add_argument("--online", action="store_true", help="create it on W&B now (same as WANDB_MODE=online)")
    args = parser.parse_args(argv)

    spec = json.loads(args.apply.read_text()) if args.apply else build_spec(args.project, args.entity, args.group)
    online = args.online or os.environ.get("WANDB_MODE") == "online"
    if not online:
        out = args.out or DEFAULT_OUT / f"{spec.get('group') or 'all'}.json"
        write_spec(spec, out)
        n = sum(len(s["panels"]) for s in spec["sections"])
        print(f"offline: wrote the dashboard spec ({len(spec['sections'])} sections, {n} panels) to {out}")
        print("apply it later, online, with:")
        print(f"  pip install 'engram-lab[dashboard]' && WANDB_MODE=online python -m engram.tracking.dashboard "
              f"--apply {out} --kind {args.kind}" + (" --entity <you>" if not spec.get("entity") else ""))
        print("  (upload the offline runs first: wandb sync multirun/*/*/*/wandb/offline-run-*)")
        return 0
    if not spec.get("entity"):
        print("online: give --entity (your W&B user or team) or set WANDB_ENTITY", file=sys.stderr)
        return 2
    view = to_report(spec) if args.kind == "report" else to_workspace(spec)
    view.save()
    print(f"created the W&B {args.kind}: {view.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
