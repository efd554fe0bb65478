"""Gate and slot statistics of the Engram memories (for W&B / reports): one flat dict per call."""

from __future__ import annotations

import torch
from torch import nn

from engram.models.inject import engram_memories


def collect_gate_stats(model: nn.Module) -> dict[str, float]:
    """`engram/layer{L}/{gate_mean, gate_std, gate_open_frac, slot_utilisation, collision_rate}` per memory.
    Gate values are those of the last forward (positions that got memory); NaN before any forward."""
    stats: dict[str, float] = {}
    for layer, memory in sorted(engram_memories(model).items()):
        g = memory.last_gate
        has = g is not None and g.numel() > 0
        prefix = f"engram/layer{layer}"
        stats[f"{prefix}/gate_mean"] = float(g.mean()) if has else float("nan")
        stats[f"{prefix}/gate_std"] = float(g.std(unbiased=False)) if has else float("nan")
        stats[f"{prefix}/gate_open_frac"] = float((g > 0.5).float().mean()) if has else float("nan")
        stats[f"{prefix}/slot_utilisation"] = memory.slot_utilisation()
        stats[f"{prefix}/collision_rate"] = memory.collision_rate()
    return stats


def gate_histograms(model: nn.Module) -> dict[str, torch.Tensor]:
    """`engram/layer{L}/gate_hist`: the raw gate values of the last forward (flat, CPU, detached)."""
    out = {}
    for layer, memory in sorted(engram_memories(model).items()):
        g = memory.last_gate
        out[f"engram/layer{layer}/gate_hist"] = torch.empty(0) if g is None else g.detach().flatten().cpu()
    return out


def reset_slot_usage(model: nn.Module) -> None:
    """Start counting slot utilisation afresh (e.g. at the start of an epoch)."""
    for memory in engram_memories(model).values():
        memory.reset_slot_usage()
