"""The firing curves of question-keyed memories (engram.hash=question): each job's firing.json -> one figure of the
share of rewordings matched to their fact, of neighbour questions firing and of general prompts firing, against
the threshold, one line per job (a dot at the threshold the job used: engram.question.threshold, or the question
judge's when the model judged)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engram.tracking.figures import panel_figure

FIRING_FILE = "firing.json"  # written by engram/evaluation/firing.py (which tracking must not import)
PANELS = (("rewordings", "rewordings read their fact's rows"), ("neighbors", "neighbour questions fire"),
          ("general", "general prompts fire"))


def read_firing(jobs: Sequence[tuple[str, Path]]) -> dict[str, dict[str, Any]]:
    """{label: firing.json} of the (label, job dir) pairs that have one."""
    return {label: json.loads((Path(job) / FIRING_FILE).read_text())
            for label, job in jobs if (Path(job) / FIRING_FILE).is_file()}


def plot_firing_curves(curves: dict[str, dict[str, Any]], path: Path) -> dict[str, Any] | None:
    """Three panels (see PANELS), x = threshold; returns what was drawn ({panel: {label: [[x, y], ...]}})."""
    if not curves:
        return None

    def draw(ax: Any, key: str, label: str, curve: dict[str, Any]) -> None:
        xs, ys = curve["thresholds"], curve[key]
        line = ax.plot(xs, ys, marker=".", label=label)[0]
        at = max((i for i, t in enumerate(xs) if t <= curve["threshold"] + 1e-9), default=0)
        ax.plot([xs[at]], [ys[at]], "o", markersize=9, color=line.get_color())

    return panel_figure(PANELS, curves, draw, "threshold (the words' score, or the judge's probability)",
                        "When the question-keyed memory fires (big dot: the run's threshold)", path)
