"""Sweep reports without W&B: every job's config + overrides + eval.json -> one pandas table, results.csv,
report.md and matplotlib PNGs (exact match vs slots / data scale, per category, gate statistics, seen vs unseen).

Job dirs are found and read by engram.tracking.run_dirs (one reader for this report and evaluate.py). A job
without eval.json is listed as failed, with the last line of its FAILED.txt when there is one.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from engram.config import ROW_ORDER
from engram.tracking.figures import finish_axes, line_data, save_figure
from engram.tracking.firing_plot import plot_firing_curves, read_firing
from engram.tracking.forgetting import forgetting_table, plot_forgetting, read_curves
from engram.tracking.lm_report import is_lm, lm_section
from engram.tracking.recall_curve import plot_recall_curve, recall_table
from engram.tracking.recall_curve import read_curves as read_recall_curves
from engram.tracking.run_dirs import find_job_dirs, metric_columns, read_run
from engram.variants.common import variant_spec

# report.py hands the demo's gate gallery in here (tracking sits below the model code and never imports it):
# (memory run dirs, report dir) -> report.md lines
Gallery = Callable[[list[Path], Path], list[str]]

# Config values every row carries (column name -> config key).
CONFIG_COLUMNS = {
    "experiment": "experiment_name", "variant": "variant.name", "model": "model.name", "data": "data.family",
    "num_train": "data.num_train", "num_eval": "data.num_eval", "table_size": "engram.table_size",
    "hash": "engram.hash", "address": "engram.address", "gate": "engram.gate", "gate_bias": "engram.gate_bias",
    "layers": "engram.layers", "attention_window": "model.attention_window",
    "fixed_facts": "data.long_recall.fixed_facts", "lr": "optim.lr", "max_epochs": "trainer.max_epochs", "seed": "seed",
    "num_tokens": "data.num_tokens", "key_shuffle": "engram.deepseek.key_shuffle", "experts": "model.experts",
}
DERIVED_COLUMNS = ("table_size", "experts")  # read from eval.json's info when it has them
SHARES = ("exact_match", "exact_match_seen", "exact_match_unseen", "retention", "consistency", "gate_mean",
          "gate_open_frac", "slot_utilisation", "collision_rate")
# the editing metrics (engram/evaluation/editing.py, neighbors.py), in the results table's order
EDIT_COLUMNS = ("efficacy_tf", "generalization", "generalization_tf", "neighbors", "neighbors_tf", "locality_tf")
GATE_STATS = ("gate_mean", "gate_open_frac", "slot_utilisation", "collision_rate")
HEADERS = {"label": "job", "table_size": "slots", "exact_match": "exact match", "exact_match_seen": "seen",
           "exact_match_unseen": "unseen", "latency_ms": "ms/answer", "trainable_params": "trainable params",
           "gate_mean": "gate mean", "gate_open_frac": "gate open", "wall_s": "wall s", "eval_loss": "eval loss",
           "knockout_seen": "knock-out seen", "entering_facts": "memory on facts",
           "entering_general": "memory on general", "lost_rows": "facts with a lost row", "write_s": "write s",
           "efficacy_tf": "efficacy tf", "generalization": "paraphrase", "generalization_tf": "paraphrase tf",
           "neighbors": "neighbours", "neighbors_tf": "neighbours tf", "locality_tf": "locality tf",
           "lora_gate_answer": "LoRA gate on answers", "lora_gate_prompt": "LoRA gate on prompts",
           "lora_gate_general": "LoRA gate on general"}
LORA_GATE_PNG = "lora_gate_tokens.png"  # what a gated_lora run draws (engram/evaluation/scoring.py)


# ---------------------------------------------------------------- collecting


def _display(path: Path) -> str:
    """Relative to the working directory when below it (report tables stay short and machine-independent)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _select(cfg: Any, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=False)
    if isinstance(value, list):
        return str(value).replace(" ", "")
    return value


def _gate_means(metrics: dict[str, float]) -> dict[str, float]:
    """Per-layer final gate statistics (`final/engram/layer{L}/<stat>`) averaged over the memory layers."""
    out = {}
    for stat in GATE_STATS:
        vals = [v for k, v in metrics.items() if k.startswith("final/engram/layer") and k.endswith("/" + stat)]
        vals = [float(v) for v in vals if v is not None and not math.isnan(float(v))]
        if vals:
            out[stat] = sum(vals) / len(vals)
    return out


def load_job(job: Path) -> dict[str, Any]:
    """One row: status, error, overrides, selected config values and the metrics of eval.json."""
    run = read_run(job)
    row: dict[str, Any] = {"job": _display(job), "overrides": " ".join(run.overrides)}
    row.update({col: _select(run.cfg, key) for col, key in CONFIG_COLUMNS.items()})
    if not run.result:
        row["status"], row["error"] = "failed", run.error
        return row
    row["status"], row["error"] = "ok", None
    info = run.result.get("info") or {}
    # sizes the run derived (model.memory_share sets both): Hydra saved the config as requested, eval.json as built
    row.update({col: info[col] for col in DERIVED_COLUMNS if info.get(col) is not None})
    row.update(metric_columns(run.metrics))
    row.update(_gate_means(run.metrics))
    for cat, counts in (run.result.get("per_category") or {}).items():
        row[f"cat/{cat}"] = counts.get("exact_match")
    return row


def collect(paths: Iterable[str | Path]) -> pd.DataFrame:
    """All jobs under `paths`, one row per job in `comparison_order`; adds `label` = the overrides that vary."""
    rows = [load_job(job) for job in find_job_dirs(paths)]
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df.insert(0, "label", make_labels(df))
    return comparison_order(df)


def comparison_order(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in ROW_ORDER of their variant (others after them); the jobs of one variant keep their (sweep) order."""
    rank = {v: i for i, v in enumerate(ROW_ORDER)}
    order = sorted(range(len(df)), key=lambda i: rank.get(df["variant"].iloc[i], len(rank)))
    return df.iloc[order].reset_index(drop=True)


def varying_override_keys(overrides: Sequence[str]) -> list[str]:
    """Override keys whose value differs between jobs (what the sweep swept)."""
    values: dict[str, set[str]] = {}
    parsed = [dict(o.split("=", 1) for o in ov.split() if "=" in o) for ov in overrides]
    for ov in parsed:
        for k in ov:
            values.setdefault(k, set())
    for k in values:
        values[k] = {ov.get(k, "<default>") for ov in parsed}
    return [k for k, v in values.items() if len(v) > 1]


def make_labels(df: pd.DataFrame) -> list[str]:
    keys = varying_override_keys(list(df["overrides"]))
    labels = []
    for ov, job, variant in zip(df["overrides"], df["job"], df["variant"], strict=True):
        parsed = dict(o.split("=", 1) for o in ov.split() if "=" in o)
        # engram.* settings mean nothing for a variant without memory
        used = [k for k in keys if k in parsed and (_has_memory(variant) or not k.startswith("engram."))]
        short = [f"{k.lstrip('+').split('.')[-1]}={parsed[k]}" if k != "variant" else parsed[k] for k in used]
        labels.append(", ".join(short) or Path(job).name)
    return labels


# ---------------------------------------------------------------- plots


def _has_memory(variant: str) -> bool:
    """A recorded run's variant has a memory (a name no module declares now: no)."""
    return variant_spec(variant, recorded=True).engram


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"] if not df.empty else df


def _numeric(df: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(dtype=float)


def _bar_data(ax: Any) -> dict[str, list[float]]:
    return {str(c.get_label()): [float(p.get_height()) for p in c.patches] for c in ax.containers}


def plot_lines(df: pd.DataFrame, x: str, ys: Sequence[str], series: str | None, title: str, xlabel: str,
               path: Path, logx: bool = True, reference: pd.DataFrame | None = None) -> dict[str, Any] | None:
    """One subplot per y column (those with data), one line per value of `series`; `reference` rows (the baseline)
    are a dashed horizontal line. None when there is nothing to draw."""
    data = df.assign(_x=_numeric(df, x)).dropna(subset=["_x"])
    ys = [y for y in ys if y in data and _numeric(data, y).notna().any()]
    if data["_x"].nunique() < 2 or not ys:
        return None
    fig, axes = plt.subplots(1, len(ys), figsize=(5.5 * len(ys), 4), squeeze=False)
    drawn: dict[str, Any] = {}
    groups = data.groupby(series, dropna=False) if series and data[series].nunique() > 1 else [(None, data)]
    for ax, y in zip(axes[0], ys, strict=True):
        for key, part in groups:
            part = part.assign(_y=_numeric(part, y)).dropna(subset=["_y"]).groupby("_x")["_y"].mean()
            if part.empty:
                continue
            label = f"{series.split('.')[-1]}={key}" if key is not None else "runs"
            ax.plot(part.index, part.values, marker="o", label=label)
        ref = _numeric(reference, y).dropna() if reference is not None and y in reference else pd.Series(dtype=float)
        if not ref.empty:
            ax.axhline(float(ref.mean()), color="grey", linestyle="--", label="baseline (no memory)")
        if y in SHARES:  # shares: start at 0 so a flat 0% reads as 0%, not as noise around it
            top = max([0.1, *(float(max(line.get_ydata())) for line in ax.get_lines() if len(line.get_ydata()))])
            ax.set_ylim(-0.02, min(1.02, 1.15 * top))
        if logx:
            ax.set_xscale("log")
        ax.set(xlabel=xlabel, ylabel=y.replace("_", " "), title=title if len(ys) == 1 else y.replace("_", " "))
        finish_axes(ax)
        drawn[y] = line_data(ax)
    if len(ys) > 1:
        fig.suptitle(title)
    save_figure(fig, path)
    return drawn


def plot_bars(df: pd.DataFrame, cols: Sequence[str], col_names: Sequence[str], title: str, ylabel: str,
              path: Path) -> dict[str, Any] | None:
    """Grouped bars: one group per column in `cols`, one bar per label (variant or swept setting)."""
    cols = [c for c in cols if c in df and _numeric(df, c).notna().any()]
    if not cols or df.empty:
        return None
    means = df.groupby("label", sort=False)[cols].agg(lambda s: pd.to_numeric(s, errors="coerce").mean())
    width = 0.8 / len(means)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(cols) * max(1, len(means)) / 2), 4.2))
    xs = np.arange(len(cols))
    for i, (label, vals) in enumerate(means.iterrows()):
        ax.bar(xs + i * width - 0.4 + width / 2, vals.fillna(0.0).values, width, label=str(label))
    names = [col_names[list(cols).index(c)] if c in cols else c for c in cols]
    ax.set_xticks(xs, names, rotation=30 if len(cols) > 4 else 0, ha="right" if len(cols) > 4 else "center")
    ax.set(ylabel=ylabel, title=title, ylim=(0, 1.05))
    ax.legend(fontsize=8)
    save_figure(fig, path)
    return {"groups": names, "bars": _bar_data(ax)}


def make_plots(df: pd.DataFrame, out_dir: Path) -> dict[str, Any]:
    """Every plot the data supports -> {png file name: plotted data}; also written to plots.json."""
    matplotlib.use("Agg")
    ok = _ok(df)
    plots: dict[str, Any] = {}
    if ok.empty:
        return plots
    memory = ok[ok["variant"].map(_has_memory)]
    baseline = ok[ok["variant"] == "baseline"]
    specs = [
        ("exact_match_vs_slots.png", memory, "table_size", ["exact_match", "eval_loss", "retention"], "num_train",
         "Exact match vs memory slots", "memory slots (table_size)"),
        ("exact_match_vs_data.png", ok, "num_train", ["exact_match", "eval_loss"],
         "table_size" if len(memory) else "variant", "Exact match vs data scale", "training examples (num_train)"),
        ("gate_vs_slots.png", memory, "table_size", ["gate_mean", "gate_open_frac"], "num_train",
         "Gate statistics vs memory slots", "memory slots (table_size)"),
        ("slots_used_vs_slots.png", memory, "table_size", ["slot_utilisation", "collision_rate"], "num_train",
         "Slot use vs memory slots", "memory slots (table_size)"),
    ]
    for name, data, x, ys, series, title, xlabel in specs:
        if ys[0] in data and not data.empty:
            ref = baseline if name.endswith("_vs_slots.png") else None
            drawn = plot_lines(data, x, ys, series, title, xlabel, out_dir / name, reference=ref)
            if drawn:
                plots[name] = drawn
    cats = sorted(c for c in ok.columns if c.startswith("cat/"))
    drawn = plot_bars(ok, cats, [c[4:] for c in cats], "Exact match per category", "exact match",
                      out_dir / "per_category.png")
    if drawn:
        plots["per_category.png"] = drawn
    drawn = plot_bars(ok, ["exact_match_seen", "exact_match_unseen", "retention"], ["seen", "unseen", "retention"],
                      "Seen vs unseen facts (and retention of general answers)", "share", out_dir / "seen_unseen.png")
    if drawn:
        plots["seen_unseen.png"] = drawn
    # unfinished jobs too: sequential.json is rewritten after every batch, so a long run's curve so far is a result
    drawn = plot_forgetting(read_curves(_job_dirs(df)), out_dir / "forgetting.png")
    if drawn:
        plots["forgetting.png"] = drawn
    drawn = plot_firing_curves(read_firing(_job_dirs(ok)), out_dir / "firing.png")
    if drawn:
        plots["firing.png"] = drawn
    windows = set(_numeric(ok, "attention_window").dropna()) if "attention_window" in ok else set()
    drawn = plot_recall_curve(_recall_curves(ok), out_dir / "recall_vs_distraction.png",
                              window=int(windows.pop()) if len(windows) == 1 else None)
    if drawn:
        plots["recall_vs_distraction.png"] = drawn
    (out_dir / "plots.json").write_text(json.dumps(plots, indent=1))
    return plots


def _recall_curves(df: pd.DataFrame) -> dict[str, list[tuple[int, float]]]:
    """Recall per distraction length of each job (data.long_recall.eval_distractions), from its per-category columns."""
    cats = [c for c in df.columns if c.startswith("cat/")]
    return read_recall_curves({str(r["label"]): {c: r[c] for c in cats} for _, r in df.iterrows()})


def _job_dirs(df: pd.DataFrame) -> list[tuple[str, Path]]:
    return [(str(label), Path(job)) for label, job in zip(df["label"], df["job"], strict=True)]


# ---------------------------------------------------------------- markdown


def _fmt(v: Any, col: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    shares = ("exact_match", "exact_match_seen", "exact_match_unseen", "retention", "consistency", "gate_open_frac",
              "slot_utilisation", "knockout_seen", "lost_rows", *EDIT_COLUMNS)
    if col in shares or col.startswith("cat/"):
        return f"{100 * float(v):.1f}%"
    if col == "trainable_params":
        return f"{int(v):,}"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v).replace("|", "\\|")


def markdown_table(df: pd.DataFrame, cols: Sequence[str], names: Sequence[str] | None = None) -> list[str]:
    cols = [c for c in cols if c in df]
    names = [dict(zip(cols, names or cols, strict=False)).get(c, c) for c in cols] if names else list(cols)
    lines = ["| " + " | ".join(names) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_fmt(r[c], c) for c in cols) + " |" for _, r in df.iterrows()]
    return lines


def optuna_section(sources: Sequence[str | Path]) -> list[str]:
    """Best trial of an optuna sweep (hparams_search=optuna writes optimization_results.yaml in the sweep dir)."""
    lines: list[str] = []
    for src in sources:
        path = Path(src) / "optimization_results.yaml"
        if path.is_file():
            res = OmegaConf.to_container(OmegaConf.load(path))
            lines += [f"## Optuna search (`{src}`)", "", f"Best value: {res.get('best_value')}", ""]
            lines += [f"- `{k}` = {v}" for k, v in (res.get("best_params") or {}).items()] + [""]
    return lines


def memory_runs(df: pd.DataFrame) -> list[Path]:
    """The finished jobs of memory variants (what the gate gallery draws)."""
    ok = _ok(df)
    ok = ok[~is_lm(ok)] if not ok.empty else ok  # the gallery asks facts; a text run has none
    return [Path(job) for job, variant in zip(ok["job"], ok["variant"], strict=True) if _has_memory(variant)] \
        if not ok.empty else []


def lora_gate_section(ok: pd.DataFrame, out_dir: Path) -> list[str]:
    """gated_lora runs: their gate-per-token PNG copied next to report.md (lora_gate_<label>.png), one per run."""
    md: list[str] = []
    for label, job in (_job_dirs(ok) if not ok.empty else []):
        png = job / LORA_GATE_PNG
        if png.is_file():
            name = f"lora_gate_{re.sub(r'[^A-Za-z0-9_.=-]+', '_', str(label))}.png"
            shutil.copyfile(png, out_dir / name)
            md += [f"![{label}: LoRA gate per token]({name})", ""]
    return ["## Where the LoRA gate opens (gated_lora)", ""] + md if md else []


def write_report(df: pd.DataFrame, out_dir: Path, sources: Sequence[str | Path] = (),
                 gallery: Gallery | None = None) -> dict[str, Any]:
    """results.csv, report.md and the PNGs in out_dir; returns {"csv", "markdown", "plots": {name: data}}.
    `gallery`: draws the memory runs' gate heat maps and gives their report.md section (report.py's default)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_dir / "results.csv", index=False)
    plots = make_plots(df, out_dir) if not df.empty else {}
    ok, failed = _ok(df), (df[df["status"] != "ok"] if not df.empty else df)
    md = ["# Sweep report", "", f"Generated {datetime.now():%Y-%m-%d %H:%M} from: "
          + ", ".join(f"`{s}`" for s in sources), "",
          f"{len(df)} jobs: {len(ok)} finished, {len(failed)} failed. All values are from each job's eval.json "
          "(greedy decoding, exact match after stripping whitespace); full table in `results.csv`.", ""]
    lm_lines, lm_plots = lm_section(ok, out_dir, markdown_table)
    md += lm_lines
    plots.update(lm_plots)
    ok = ok[~is_lm(ok)] if not ok.empty else ok  # the fact table and its plots are for fact runs
    if not ok.empty:
        cols = ["label", "variant", "table_size", "num_train", "exact_match", "exact_match_seen",
                "exact_match_unseen", "eval_loss", "retention", "knockout_seen", "entering_facts",
                "entering_general", "lost_rows", *EDIT_COLUMNS, "consistency", "latency_ms", "trainable_params",
                "gate_mean", "gate_open_frac", "lora_gate_answer", "lora_gate_prompt", "lora_gate_general",
                "write_s", "wall_s"]
        cols = [c for c in cols if c in ok and ok[c].notna().any()]
        md += ["## Results", ""] + markdown_table(ok, cols, [HEADERS.get(c, c) for c in cols]) + [""]
        cats = sorted(c for c in ok.columns if c.startswith("cat/"))
        if cats:
            md += ["## Exact match per category", ""]
            md += markdown_table(ok, ["label", *cats], ["label", *[c[4:] for c in cats]]) + [""]
        md += recall_table(_recall_curves(ok))
    md += forgetting_table(read_curves(_job_dirs(df))) if not df.empty else []
    if not failed.empty:
        md += ["## Failed jobs", ""] + markdown_table(failed, ["job", "overrides", "error"]) + [""]
    md += optuna_section(sources)
    if plots:
        md += ["## Plots", ""] + [f"![{name[:-4]}]({name})" for name in plots] + [""]
    md += lora_gate_section(ok, out_dir)
    runs = memory_runs(df)
    if gallery is not None and runs:
        md += gallery(runs, out_dir)
    (out_dir / "report.md").write_text("\n".join(md))
    return {"csv": out_dir / "results.csv", "markdown": out_dir / "report.md", "plots": plots}
