"""The forgetting curve of sequential-writing runs (`sequential.batch > 0`, engram/training/sequential.py): each
job's sequential.json -> one plot of recall of everything taught so far, recall of the first batch, recall of the
taught facts asked in other words, neighbour questions answered as the base model answers them and token-level
locality against the number of facts taught, one line per job; plus its markdown table. A curve written before a
metric existed has no such key: it is left out of that panel (and a panel nobody has is not drawn)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engram.tracking.figures import panel_figure

CURVE_FILE = "sequential.json"  # written by engram/training/sequential.py (which tracking must not import)
PANELS = (("recall_all", "recall of all facts taught so far"), ("recall_first", "recall of the first batch"),
          ("rewordings", "recall of their rewordings"), ("neighbors", "neighbour questions answered as the base"),
          ("locality_tf", "locality (teacher-forced)"))
COLUMNS = 3  # panels per row


def read_curves(jobs: Sequence[tuple[str, Path]]) -> dict[str, dict[str, Any]]:
    """{label: sequential.json} of the (label, job dir) pairs that have one."""
    out = {}
    for label, job in jobs:
        path = Path(job) / CURVE_FILE
        if path.is_file():
            out[label] = json.loads(path.read_text())
    return out


def plot_forgetting(curves: dict[str, dict[str, Any]], path: Path) -> dict[str, Any] | None:
    """One panel per PANELS entry some curve has, x = facts taught; returns what was drawn ({panel: {label:
    [[x, y], ...]}})."""
    panels = [(k, t) for k, t in PANELS if any(k in p for c in curves.values() for p in c["points"])]
    if not panels:
        return None

    def draw(ax: Any, key: str, label: str, curve: dict[str, Any]) -> None:
        shown = [p for p in curve["points"] if p.get(key) is not None]
        if shown:
            ax.plot([p["facts"] for p in shown], [p[key] for p in shown], marker="o", label=label)

    return panel_figure(panels, curves, draw, "facts taught",
                        "Sequential writing: what is still recalled, and what is unchanged", path, columns=COLUMNS)


def forgetting_table(curves: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown: per job, the last point and the total teaching time."""
    if not curves:
        return []
    lines = ["## Sequential writing", "", "| job | variant | batch | batches done | facts | recall (all) | "
             "recall (first batch) | rewordings | neighbours | locality tf | teach s | s/fact |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, curve in curves.items():
        last = curve["points"][-1]
        seconds = sum(p["teach_s"] for p in curve["points"])
        done = f"{len(curve['points'])}/{curve.get('batches', len(curve['points']))}"
        lines.append(f"| {label} | {curve['variant']} | {curve['batch']} | {done} | {last['facts']} | "
                     f"{_percent(last, 'recall_all')} | {_percent(last, 'recall_first')} | "
                     f"{_percent(last, 'rewordings')} | {_percent(last, 'neighbors')} | "
                     f"{_percent(last, 'locality_tf')} | {seconds:.0f} | {seconds / max(1, last['facts']):.2f} |")
    return [*lines, ""]


def _percent(point: dict[str, Any], key: str) -> str:
    """`key` of a curve point as a percentage, with how many were scored when known; "-" when it has none."""
    value = point.get(key)
    if value is None:
        return "-"
    n = point.get(f"{key}_n")
    return f"{100 * value:.1f}%" + (f" of {n}" if n is not None else "")
