"""report.py's gate gallery: for every memory run of a report, one PNG of token-level gate heat maps (a few trained
facts and a few general prompts; one row per memory layer) and the values behind it in gate_gallery.json.

A run without a saved memory (engram.safetensors) is skipped with a note. Heavy imports (torch, the model) happen
only when a run is drawn, so report.py stays fast when there is nothing to draw.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from engram.demo.heat import COLD, HOT, visible
from engram.models.headers import engram_file

N_FACTS, N_GENERAL = 2, 2  # per run: cheap (four greedy answers twice, four teacher-forced forwards)
TITLE = "## Gate heat maps (memory entering per token)"


def gate_gallery(job_dirs: Sequence[Path], out_dir: Path, n_facts: int = N_FACTS,
                 n_general: int = N_GENERAL) -> list[str]:
    """Draw every run of `job_dirs` that has a memory; the report.md lines that show them ([] when none has)."""
    lines: list[str] = []
    data: dict[str, Any] = {}
    for job in job_dirs:
        if not engram_file(job).is_file():
            lines.append(f"- `{job}`: skipped, no saved memory (engram.safetensors)")
            continue
        name = "gates_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", str(job)).strip("_") + ".png"
        comparisons, layer_names = _compare(Path(job), n_facts, n_general)
        plot_gates(comparisons, layer_names, f"{job}: memory entering per token", out_dir / name)
        data[name] = {"run": str(job), "comparisons": [asdict(c) for c in comparisons]}
        lines += [f"### `{job}`", "", f"![gate heat maps of {job}]({name})", ""]
    if not lines:
        return []
    (out_dir / "gate_gallery.json").write_text(json.dumps(data, indent=1))
    note = ("Each row is one memory layer; a token's colour is how much memory entered at it (gate x share of heads "
            "let through), which shapes the next token. The prompt's tokens come before the `|` line, the memory "
            "model's answer after it; titles give both answers (base = memories off).")
    return [TITLE, "", note, "", *lines]


def _compare(run_dir: Path, n_facts: int, n_general: int) -> tuple[list[Any], dict[int, str]]:
    from engram.demo.session import example_prompts, load_demo  # lazy: torch + the model

    run = load_demo(run_dir)
    return [run.ask(p, label) for p, label in example_prompts(run, n_facts, n_general)], run.layer_names()


def plot_gates(comparisons: Sequence[Any], layer_names: dict[int, str], title: str, path: Path) -> Path:
    """One heat map per prompt (rows: memory layers, columns: tokens), stacked, on the demo's colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LinearSegmentedColormap

    cmap = LinearSegmentedColormap.from_list("engram_heat", [tuple(c / 255 for c in COLD),
                                                            tuple(c / 255 for c in HOT)])
    widest = max((len(c.trace.tokens) for c in comparisons), default=1)
    rows = len(layer_names)
    fig, axes = plt.subplots(len(comparisons), 1, squeeze=False, layout="constrained",  # room for token labels
                             figsize=(max(7.0, 0.3 * widest + 1.5), (1.9 + 0.3 * rows) * len(comparisons) + 0.4))
    image = None
    for ax, c in zip(axes[:, 0], comparisons, strict=True):
        values = [c.trace.gates[layer] for layer in layer_names]
        image = ax.imshow(values, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
        ax.set_xticks(range(len(c.trace.tokens)), [visible(t) for t in c.trace.tokens], rotation=90, fontsize=7)
        ax.set_yticks(range(rows), list(layer_names.values()), fontsize=8)
        ax.axvline(c.trace.answer_start - 0.5, color="black", linewidth=1.2)
        ax.set_title(f"[{c.label}] {_short(c.prompt)}\nmemory: {_short(c.memory_answer)}   |   base: "
                     f"{_short(c.base_answer)}", fontsize=8, loc="left")
    if image is not None:
        fig.colorbar(image, ax=list(axes[:, 0]), fraction=0.02, pad=0.01, label="memory entering")
    fig.suptitle(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _short(text: str, n: int = 60) -> str:
    text = visible(text.strip()) or visible(text)
    return repr(text if len(text) <= n else text[: n - 1] + "\u2026")
