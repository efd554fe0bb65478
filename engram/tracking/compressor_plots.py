"""Plots and tables of trained-compressor runs (`python -m engram.compress train`, engram/compress/trained.py): each
run dir's compressor.json (a list of rows) -> accuracy as a share of full context against the compression ratio, one
panel per document set, one series per carrier, placement and pretraining, with the goal lines (60% at 4x, 40% at
16x)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from engram.tracking.figures import line_data, save_figure

ROWS_FILE = "compressor.json"  # written by engram/compress/trained.py (which tracking must not import)
GOALS = ((4.0, 0.6), (16.0, 0.4))  # (compression ratio, share of full context) the compressor should reach
RATIO_TICKS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]


def read_compressor_runs(paths: Iterable[str | Path]) -> dict[str, list[dict[str, Any]]]:
    """{run dir: rows} for every compressor.json at or below the given paths."""
    out = {}
    for p in map(Path, paths):
        files = [p] if p.is_file() and p.name == ROWS_FILE else sorted(p.rglob(ROWS_FILE)) if p.is_dir() else []
        for f in files:
            out[str(f.parent)] = with_recipes(json.loads(f.read_text()))
    return out


RECIPE_KEYS = ("pretrain", "pretrain_steps", "qa_steps", "qa_sources", "lr", "rank", "seed")


def with_recipes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One run's rows, each retrieval row given the recipe of the compressor it read (runs before the retrieval
    rows recorded it), so it joins its own recipe's series."""
    recipes = {(r["k"], r["carrier"], r["placement"]): {key: r[key] for key in RECIPE_KEYS if key in r}
               for r in rows if r["condition"] == "compressor"}
    return [{**recipes.get((r["k"], r["carrier"], r["placement"]), {}), **r} if r["condition"] == "retrieval"
            else r for r in rows]


def series(row: dict[str, Any]) -> tuple[str, str, str]:
    """What one line of the plot holds fixed: carrier, placement and the recipe: the pretraining before the QA steps
    and their sources when not the biographies alone (rows written before the recipe was recorded count as none)."""
    pretrain = row.get("pretrain") or []
    steps = int(row.get("pretrain_steps") or 0)
    recipe = f"{' + '.join(pretrain)} {steps}" if pretrain and steps else ""
    sources = row.get("qa_sources") or ["bios"]
    if sources != ["bios"]:
        recipe = ", ".join(filter(None, [recipe, f"QA on {' + '.join(sources)}"]))
    return str(row["carrier"]), str(row["placement"]), recipe


def plot_share_vs_ratio(rows: list[dict[str, Any]], path: Path) -> dict[str, Any]:
    """Share of full-context exact match against the compression ratio (log x), a panel per document set; one legend
    under the panels, a recipe keeping its colour in every panel and on its retrieved line."""
    sets = sorted({r["docs"] for r in rows})
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 4.4), squeeze=False, layout="constrained")
    labels = sorted({(r["condition"], series(r)) for r in rows if r["condition"] in ("compressor", "retrieval")})
    settings = sorted({setting for _, setting in labels})  # a recipe's retrieved line takes the recipe's colour
    colours = {setting: plt.get_cmap("tab10")(i % 10) for i, setting in enumerate(settings)}
    legend: dict[str, Any] = {}
    drawn: dict[str, Any] = {}
    for ax, docs in zip(axes[0], sets, strict=True):
        mine = [r for r in rows if r["docs"] == docs]
        for condition, setting in labels:
            line = sorted((r["compression_ratio"], r["share_of_full"] or 0.0) for r in mine
                          if r["condition"] == condition and series(r) == setting)
            if not line:
                continue
            style = "-o" if condition == "compressor" else ":x"
            label = ", ".join(filter(None, setting)) + (" (retrieved)" if condition == "retrieval" else "")
            legend[label], = ax.plot([x for x, _ in line], [y for _, y in line], style, label=label,
                                     color=colours[setting])
        none = next((r for r in mine if r["condition"] == "none"), None)
        if none is not None and none["share_of_full"] is not None:
            legend["no document"] = ax.axhline(none["share_of_full"], color="black", linestyle=":",
                                               label="no document")
        for ratio, share in GOALS:
            label = f"goal: {share:.0%} at {ratio:.0f}x"
            legend[label], = ax.plot([ratio], [share], marker="*", color="red", markersize=12, linestyle="none",
                                     label=label)
        full = next((r for r in mine if r["condition"] == "full"), None)
        title = f"{docs}: full context {100 * full['exact_match']:.1f}% exact match" if full else docs
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(RATIO_TICKS))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set(xlabel="compression ratio (document tokens / k)", ylabel="share of full-context exact match",
               title=title, ylim=(-0.02, 1.1))
        ax.grid(True, alpha=0.3)
        drawn[docs] = line_data(ax)
    fig.legend(list(legend.values()), list(legend), loc="outside lower center", ncol=3, fontsize=7)
    fig.suptitle("Trained compressor: accuracy kept against compression")
    save_figure(fig, path)
    return drawn


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| documents | condition | k | carrier | placement | compression | exact match | share of full | "
             "token accuracy | n |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['compression_ratio']:.1f}x" if r.get("compression_ratio") else "-"
        share = f"{100 * r['share_of_full']:.1f}%" if r.get("share_of_full") is not None else "-"
        lines.append(f"| {r['docs']} | {r['condition']} | {r['k'] or '-'} | {r['carrier'] or '-'} | "
                     f"{r['placement'] or '-'} | {ratio} | {100 * r['exact_match']:.1f}% | {share} | "
                     f"{100 * r['token_accuracy']:.1f}% | {r['n']} |")
    return "\n".join(lines) + "\n"


def compressor_section(runs: dict[str, list[dict[str, Any]]], out_dir: Path) -> tuple[list[str], dict[str, Any]]:
    """report.md lines: each run's table, then one plot of every run's rows together (runs of one grid split over
    several jobs draw as one sweep)."""
    lines: list[str] = []
    for run, rows in runs.items():
        lines += [f"## Trained compressor (`{Path(run).name}`)", "", markdown(rows), ""]
    name = "compressor_share_vs_ratio.png"
    plots = {name: plot_share_vs_ratio([r for rows in runs.values() for r in rows], out_dir / name)}
    return [*lines, f"![{name[:-4]}]({name})", ""], plots
