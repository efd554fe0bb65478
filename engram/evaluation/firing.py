"""When a question-keyed memory (engram.hash=question) fires: its firing curve over the threshold.

For three sets of prompts, each prompt's best score against the taught questions (engram/memory/questions.py):
  - rewordings: the taught eval facts asked in other words (the "paraphrase" split); a rewording counts at a
    threshold when its best match is the fact it rewords and scores at least the threshold;
  - neighbours: untaught questions about taught entities (the "neighbor" split), which should never fire;
  - general: generated general prompts (engram/data/replay.py; never the retention prompts), which should never fire.
Swept over thresholds, that is a recall / false-firing curve (firing.json, firing.png in the run dir); the
metrics are the three shares at the threshold in use: `engram.question.threshold` for the words, the judge's
(`engram.question.judge_threshold`, by default the one calibrated with it) when the model judges.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engram.data.formatting import encode_prompts
from engram.data.replay import replay_prompts
from engram.models.inject import engram_memories

THRESHOLDS = [round(0.05 * i, 2) for i in range(1, 21)]
GENERAL_PROMPTS = 200
FIRING_JSON, FIRING_PNG = "firing.json", "firing.png"


def question_memory(model: Any) -> tuple[Any, int] | None:
    """(hasher, layer) of the model's first question-keyed memory, or None."""
    for memory in engram_memories(model).values():
        if hasattr(memory.hasher, "best_matches"):
            return memory.hasher, memory.layer
    return None


def firing_curve(model: Any, tokenizer: Any, splits: dict[str, list[dict[str, Any]]], prompt_format: str,
                 seed: int = 0) -> dict[str, Any] | None:
    """{"threshold", "threshold_key", "thresholds", "rewordings", "neighbors", "general", "counts"}: the share of
    each set firing (rewordings: on their own fact) at every threshold of THRESHOLDS and at the one the memory uses
    (`threshold`, read from `threshold_key`). None for a model without a question-keyed memory."""
    found = question_memory(model)
    if found is None:
        return None
    hasher, layer = found
    threshold, key = hasher.threshold_in_use()
    thresholds = sorted({*THRESHOLDS, round(threshold, 4)})

    def ids(prompts: list[str]) -> list[list[int]]:
        return encode_prompts(tokenizer, prompts, prompt_format) if prompts else []

    taught = {str(r["prompt"]) for r in splits.get("train", [])}
    evals = {str(r["key"]): r for r in splits.get("eval", []) if r.get("seen")}
    rewordings = [r for r in splits.get("paraphrase", []) if str(r["key"]) in evals]
    own = [hasher.key_of(p, layer) for p in ids([str(evals[str(r["key"])]["prompt"]) for r in rewordings])]
    scored = hasher.best_matches(ids([str(r["prompt"]) for r in rewordings]), layer)
    neighbors = [str(r["prompt"]) for r in splits.get("neighbor", []) if str(r["prompt"]) not in taught]
    general = [p for p in replay_prompts(GENERAL_PROMPTS, seed) if p not in taught]
    neighbor_scores = [score for score, _ in hasher.best_matches(ids(neighbors), layer)]
    general_scores = [score for score, _ in hasher.best_matches(ids(general), layer)]

    def share(hits: list[bool]) -> float:
        return sum(hits) / len(hits) if hits else float("nan")

    return {
        "threshold": threshold, "threshold_key": key, "thresholds": thresholds,
        "rewordings": [share([s >= t and k == o for (s, k), o in zip(scored, own, strict=True)]) for t in thresholds],
        "neighbors": [share([s >= t for s in neighbor_scores]) for t in thresholds],
        "general": [share([s >= t for s in general_scores]) for t in thresholds],
        "counts": {"rewordings": len(rewordings), "neighbors": len(neighbors), "general": len(general)},
    }


def at_threshold(curve: dict[str, Any], threshold: float) -> dict[str, float]:
    """firing/* metrics: each set's share at the highest swept threshold not above `threshold`."""
    i = max((j for j, t in enumerate(curve["thresholds"]) if t <= threshold + 1e-9), default=0)
    return {"firing/threshold": float(threshold), "firing/rewordings": curve["rewordings"][i],
            "firing/neighbors": curve["neighbors"][i], "firing/general": curve["general"][i]}


def plot_firing(curve: dict[str, Any], threshold: float, path: Path, title: str,
                key: str = "engram.question.threshold") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    n = curve["counts"]
    ax.plot(curve["thresholds"], curve["rewordings"], "o-", label=f"rewordings on their fact ({n['rewordings']})")
    ax.plot(curve["thresholds"], curve["neighbors"], "s-", label=f"neighbour questions ({n['neighbors']})")
    ax.plot(curve["thresholds"], curve["general"], "^-", label=f"general prompts ({n['general']})")
    ax.axvline(threshold, color="grey", linestyle="--", label=f"{key} = {threshold:.3g}")
    ax.set(xlabel="threshold", ylabel="share firing", ylim=(-0.02, 1.02), title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def firing_metrics(model: Any, tokenizer: Any, splits: dict[str, list[dict[str, Any]]], cfg: Any,
                   run_dir: Path, title: str) -> dict[str, float]:
    """firing/* at the configured threshold, with firing.json and firing.png written in run_dir; {} without a
    question-keyed memory."""
    curve = firing_curve(model, tokenizer, splits, str(cfg.data.prompt_format), int(cfg.data.seed))
    if curve is None:
        return {}
    Path(run_dir, FIRING_JSON).write_text(json.dumps(curve, indent=1))
    plot_firing(curve, curve["threshold"], Path(run_dir) / FIRING_PNG, f"{title}: when the memory fires",
                curve["threshold_key"])
    return at_threshold(curve, curve["threshold"])
