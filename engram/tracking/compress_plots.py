"""Plots of semantic-compression runs (`python -m engram.compress eval|sweep`, engram/compress/): each run dir's
compress.json -> accuracy against k (one line per layer and pooling, full context and no context as references) and
accuracy against the compression ratio; plus the markdown table."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from engram.tracking.compressor_plots import compressor_section
from engram.tracking.figures import finish_axes, line_data, save_figure

RESULT_FILE = "compress.json"  # written by engram/compress/results.py (which tracking must not import)
TABLE_FILE = "compress.md"  # the markdown table beside it
METRICS = (("exact_match", "exact match"), ("token_accuracy", "answer-token accuracy"))
KEEP = 0.8  # "keeps the accuracy": at least this share of full-context exact match


def read_results(paths: Iterable[str | Path]) -> dict[str, dict[str, Any]]:
    """{run dir: compress.json} for every compress.json at or below the given paths."""
    out = {}
    for p in map(Path, paths):
        files = [p] if p.is_file() else ([p / RESULT_FILE] if (p / RESULT_FILE).is_file() else
                                         sorted(p.rglob(RESULT_FILE)) if p.is_dir() else [])
        for f in files:
            out[str(f.parent)] = json.loads(f.read_text())
    return out


def _reference(rows: list[dict[str, Any]], name: str, key: str) -> float | None:
    return next((r[key] for r in rows if r["condition"] == name), None)


def plot_accuracy_vs_k(result: dict[str, Any], path: Path) -> dict[str, Any]:
    """Two panels (exact match, token accuracy) against k; returns what was drawn ({panel: {label: [[x, y]]}})."""
    rows = result["rows"]
    fig, axes = plt.subplots(1, len(METRICS), figsize=(6 * len(METRICS), 4.2), squeeze=False)
    drawn: dict[str, Any] = {}
    settings = sorted({(r["layer"], r["pooling"]) for r in rows if r["condition"] == "engram"})
    for ax, (key, title) in zip(axes[0], METRICS, strict=True):
        for layer, pooling in settings:
            line = sorted((r["k"], r[key]) for r in rows if r["condition"] == "engram" and r["layer"] == layer
                          and r["pooling"] == pooling)
            ax.plot([x for x, _ in line], [y for _, y in line], marker="o", label=f"layer {layer}, {pooling}")
        for name, style, label in (("full", "--", "full document in context"), ("none", ":", "no document")):
            value = _reference(rows, name, key)
            if value is not None:
                ax.axhline(value, color="black", linestyle=style, label=label)
        ax.set_xscale("log", base=2)
        ax.set(xlabel="k (engram vectors per document)", ylabel="share", title=title, ylim=(-0.02, 1.02))
        finish_axes(ax, fontsize=7)
        drawn[key] = line_data(ax)
    fig.suptitle("Semantic-compression engrams: accuracy against k")
    save_figure(fig, path)
    return drawn


def plot_ratio_vs_accuracy(result: dict[str, Any], path: Path) -> dict[str, Any]:
    """Exact match and token accuracy of every engram setting against its compression ratio (log x)."""
    rows = [r for r in result["rows"] if r["condition"] in ("engram", "full") and r.get("compression_ratio")]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    drawn: dict[str, Any] = {}
    for key, title in METRICS:
        points = [(r["compression_ratio"], r[key]) for r in rows]
        ax.scatter([x for x, _ in points], [y for _, y in points], label=title, alpha=0.7)
        drawn[key] = [[float(x), float(y)] for x, y in points]
    full = _reference(result["rows"], "full", "exact_match")
    if full:
        ax.axhline(KEEP * full, color="red", linestyle="--", label=f"{int(100 * KEEP)}% of full-context exact match")
    ax.set_xscale("log")
    ax.set(xlabel="compression ratio (document tokens / k; full context = 1)", ylabel="share", ylim=(-0.02, 1.02),
           title="Accuracy against compression")
    finish_axes(ax)
    save_figure(fig, path)
    return drawn


def compress_section(results: dict[str, dict[str, Any]], out_dir: Path) -> tuple[list[str], dict[str, Any]]:
    """report.md lines and the plots (name -> drawn data) of every compress run."""
    lines: list[str] = []
    plots: dict[str, Any] = {}
    for i, (run, result) in enumerate(results.items()):
        suffix = "" if len(results) == 1 else f"_{i}"
        lines += [f"## Semantic-compression engrams (`{Path(run).name}`)", ""]
        md = Path(run) / TABLE_FILE
        lines += [md.read_text() if md.is_file() else "", ""]
        hits = result.get("info", {}).get("retrieval_hit_by_key_layer") or {}
        if hits:
            lines += ["Top-1 retrieval hit rate by key layer: "
                      + ", ".join(f"layer {k}: {100 * v:.1f}%" for k, v in hits.items()), ""]
        for name, draw in ((f"compress_accuracy_vs_k{suffix}.png", plot_accuracy_vs_k),
                           (f"compress_ratio_vs_accuracy{suffix}.png", plot_ratio_vs_accuracy)):
            plots[name] = draw(result, out_dir / name)
            lines += [f"![{name[:-4]}]({name})", ""]
    return lines, plots


def write_compress_report(runs: dict[str, dict[str, Any]], out: Path, sources: Sequence[str | Path],
                          trained: dict[str, list[dict[str, Any]]] | None = None) -> int:
    """report.md + PNGs in `out` for semantic-compression runs (report.py's answer when it finds no Hydra job):
    eval / sweep runs (`runs`) and trained-compressor runs (`trained`)."""
    out.mkdir(parents=True, exist_ok=True)
    lines, plots = compress_section(runs, out)
    if trained:
        more, more_plots = compressor_section(trained, out)
        lines, plots = lines + more, {**plots, **more_plots}
    md = ["# Semantic-compression report", "", f"Generated {datetime.now():%Y-%m-%d %H:%M} from: "
          + ", ".join(f"`{s}`" for s in sources), "", *lines]
    (out / "report.md").write_text("\n".join(md))
    print(f"{len(runs) + len(trained or {})} compress runs -> {out / 'report.md'}, {len(plots)} plots")
    return 0
