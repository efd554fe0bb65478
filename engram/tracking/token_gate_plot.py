"""One PNG of where a per-token gate opened: each example a row of its tokens, each token tinted by its gate value
(white = closed, dark orange = open), answer positions underlined. Written per gated_lora run
(lora_gate_tokens.png, by engram/evaluation/lora_gate.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

MAX_TOKENS = 40  # per row: the end of each example (answer included), where the gate matters


@dataclass
class GateRow:
    label: str  # e.g. "seen", "general"
    pieces: list[str]  # token texts
    gate: list[float]
    answer: list[bool]  # the positions that predict an answer token


def plot_token_gates(rows: Sequence[GateRow], title: str, path: Path) -> Path:
    """Draw `rows` (their last MAX_TOKENS tokens each) into `path`; returns it."""
    cmap = plt.get_cmap("Oranges")
    fig, ax = plt.subplots(figsize=(16, 0.5 * len(rows) + 1.2))
    for y, row in enumerate(rows):
        start = max(0, len(row.pieces) - MAX_TOKENS)
        x = 0.0
        ax.text(-0.5, -y, row.label, ha="right", va="center", fontsize=8, color="#444444")
        for piece, g, answer in zip(row.pieces[start:], row.gate[start:], row.answer[start:], strict=True):
            text = piece.replace("\n", "\u23ce") or " "
            width = 0.25 + 0.11 * len(text)
            ax.add_patch(plt.Rectangle((x, -y - 0.35), width, 0.7, color=cmap(0.9 * min(max(g, 0.0), 1.0))))
            ax.text(x + width / 2, -y, text, ha="center", va="center", fontsize=7,
                    color="white" if g > 0.6 else "black", fontweight="bold" if answer else "normal")
            if answer:
                ax.plot([x, x + width], [-y - 0.38, -y - 0.38], color="#1f4e99", linewidth=1.5)
            x += width + 0.05
    ax.autoscale_view()
    ax.set_xlim(-4, max(12.0, ax.get_xlim()[1]))
    ax.set_ylim(-len(rows) + 0.4, 0.8)
    ax.axis("off")
    legend = "tint = gate value, 0 white .. 1 dark orange"
    if any(any(row.answer) for row in rows):  # text runs have no answers to mark
        legend += "; bold + underlined = predicts an answer token"
    ax.set_title(f"{title}\n({legend})", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
