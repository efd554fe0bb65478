"""What every report plot shares: reading back what the axes draw, and writing the figure."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def line_data(ax: Any) -> dict[str, list[list[float]]]:
    """What the axes actually draw: {legend label: [[x, y], ...]} read back from the matplotlib lines."""
    return {str(line.get_label()): [[float(x), float(y)] for x, y in line.get_xydata()] for line in ax.get_lines()}


def finish_axes(ax: Any, fontsize: int = 8) -> None:
    """A light grid and the legend, as on every line plot of the report."""
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=fontsize)


def save_figure(fig: Any, path: Path, dpi: int = 120) -> None:
    """Lay out, write and close `fig` (closing keeps long sweeps from holding every figure in memory)."""
    import matplotlib.pyplot as plt

    if fig.get_layout_engine() is None:  # a figure laid out as it was made (constrained) keeps its layout
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def panel_figure(panels: Sequence[tuple[str, str]], curves: dict[str, Any], draw: Callable[[Any, str, str, Any], None],
                 xlabel: str, title: str, path: Path, columns: int | None = None) -> dict[str, Any]:
    """One panel per (key, title) of `panels`, `columns` to a row (default: all in one row); `draw(ax, key, label,
    curve)` draws one curve of one panel. Returns what was drawn ({panel key: {label: [[x, y], ...]}})."""
    import matplotlib.pyplot as plt

    cols = min(columns or len(panels), len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    drawn: dict[str, Any] = {}
    for ax, (key, panel_title) in zip(axes.flat, panels, strict=False):
        for label, curve in curves.items():
            draw(ax, key, label, curve)
        ax.set(xlabel=xlabel, ylabel="share", title=panel_title, ylim=(-0.02, 1.02))
        finish_axes(ax)
        drawn[key] = line_data(ax)
    fig.suptitle(title)
    save_figure(fig, path)
    return drawn
