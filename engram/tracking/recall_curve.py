"""Recall as a function of distance (data.long_recall.eval_distractions, engram/data/families/long_recall.py): each
job's per-category exact match `distraction_<n>` -> one plot of recall against the number of distraction words, one line
per job, and its markdown table. report.py hands it the per-category columns it has already read from every
eval.json."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from engram.tracking.figures import finish_axes, line_data, save_figure

PREFIX = "cat/"  # report.py's per-category columns
# engram.data.families.long_recall.distraction_category (data is not imported)
CATEGORY = re.compile(r"^distraction_(\d+)$")


def read_curves(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """{label: [(distraction words, recall), ...] sorted by length} from {label: {column: value}}; jobs without a
    distraction_<n> category are left out."""
    curves = {}
    for label, row in rows.items():
        points = []
        for column, value in row.items():
            match = CATEGORY.match(column[len(PREFIX):]) if column.startswith(PREFIX) else None
            if match and value is not None and value == value:  # NaN: the job had no such category
                points.append((int(match.group(1)), float(value)))
        if points:
            curves[label] = sorted(points)
    return curves


def plot_recall_curve(curves: dict[str, list[tuple[int, float]]], path: Path,
                      window: int | None = None) -> dict[str, Any] | None:
    """One panel, x = distraction words, y = recall; a dashed line at the attention window when one is given.
    Returns what was drawn ({label: [[x, y], ...]})."""
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, points in curves.items():
        ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=label)
    drawn = line_data(ax)
    if window:
        ax.axvline(window, color="grey", linestyle="--", linewidth=1, label=f"attention window ({window})")
    ax.set(xlabel="distraction words between the fact and the question", ylabel="recall (exact match)",
           title="Long-term recall vs distance", ylim=(-0.02, 1.02))
    finish_axes(ax)
    save_figure(fig, path)
    return drawn


def recall_table(curves: dict[str, list[tuple[int, float]]]) -> list[str]:
    """Markdown: one row per job, one column per distraction length."""
    if not curves:
        return []
    lengths = sorted({x for points in curves.values() for x, _ in points})
    lines = ["## Recall vs distraction length", "", "| job | " + " | ".join(map(str, lengths)) + " |",
             "|---|" + "---|" * len(lengths)]
    for label, points in curves.items():
        by_length = dict(points)
        cells = [f"{100 * by_length[n]:.1f}%" if n in by_length else "-" for n in lengths]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, ""]
