"""The forgetting curve of sequential-writing runs (`sequential.batch > 0`, engram/training/sequential.py): each
job's sequential.json -> one plot of recall of everything taught so far, recall of the first batch and token-level
locality against the number of facts taught, one line per job; plus its markdown table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from engram.tracking.figures import finish_axes, line_data, save_figure

CURVE_FILE = "sequential.json"  # written by engram/training/sequential.py (which tracking must not import)
PANELS = (("recall_all", "recall of all facts taught so far"), ("recall_first", "recall of the first batch"),
          ("locality_tf", "locality (teacher-forced)"))


def read_curves(jobs: Sequence[tuple[str, Path]]) -> dict[str, dict[str, Any]]:
    """{label: sequential.json} of the (label, job dir) pairs that have one."""
    out = {}
    for label, job in jobs:
        path = Path(job) / CURVE_FILE
        if path.is_file():
            out[label] = json.loads(path.read_text())
    return out


def plot_forgetting(curves: dict[str, dict[str, Any]], path: Path) -> dict[str, Any] | None:
    """Three panels (see PANELS), x = facts taught; returns what was drawn ({panel: {label: [[x, y], ...]}})."""
    if not curves:
        return None
    fig, axes = plt.subplots(1, len(PANELS), figsize=(5.2 * len(PANELS), 4), squeeze=False)
    drawn: dict[str, Any] = {}
    for ax, (key, title) in zip(axes[0], PANELS, strict=True):
        for label, curve in curves.items():
            xs = [p["facts"] for p in curve["points"]]
            ys = [p[key] for p in curve["points"]]
            ax.plot(xs, ys, marker="o", label=label)
        ax.set(xlabel="facts taught", ylabel="share", title=title, ylim=(-0.02, 1.02))
        finish_axes(ax)
        drawn[key] = line_data(ax)
    fig.suptitle("Sequential writing: what is still recalled, and what is unchanged")
    save_figure(fig, path)
    return drawn


def forgetting_table(curves: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown: per job, the last point and the total teaching time."""
    if not curves:
        return []
    lines = ["## Sequential writing", "", "| job | variant | batch | batches done | facts | recall (all) | "
             "recall (first batch) | locality tf | teach s | s/fact |", "|---|---|---|---|---|---|---|---|---|---|"]
    for label, curve in curves.items():
        last = curve["points"][-1]
        seconds = sum(p["teach_s"] for p in curve["points"])
        done = f"{len(curve['points'])}/{curve.get('batches', len(curve['points']))}"
        lines.append(f"| {label} | {curve['variant']} | {curve['batch']} | {done} | {last['facts']} | "
                     f"{100 * last['recall_all']:.1f}% | {100 * last['recall_first']:.1f}% | "
                     f"{100 * last['locality_tf']:.1f}% | {seconds:.0f} | {seconds / max(1, last['facts']):.2f} |")
    return [*lines, ""]
