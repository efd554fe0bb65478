"""What every report plot shares: reading back what the axes draw, and writing the figure."""

from __future__ import annotations

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

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
