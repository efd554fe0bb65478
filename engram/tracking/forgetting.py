"""The forgetting curve of sequential-writing runs (`sequential.batch > 0`, engram/training/sequential.py): each
job's sequential.json -> one plot of recall of everything taught so far, recall of the first batch and token-level
locality against the number of facts taught, one line per job; plus its markdown table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engram.tracking.figures import panel_figure

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

    def draw(ax: Any, key: str, label: str, curve: dict[str, Any]) -> None:
        ax.plot([p["facts"] for p in curve["points"]], [p[key] for p in curve["points"]], marker="o", label=label)

    return panel_figure(PANELS, curves, draw, "facts taught",
                        "Sequential writing: what is still recalled, and what is unchanged", path)


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
