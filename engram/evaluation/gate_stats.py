"""Gate and slot statistics of the Engram memories (for W&B / reports): one flat dict per call."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from engram.memory.trace import MemoryTrace
from engram.models.inject import engram_memories


def collect_gate_stats(model: nn.Module, traces: Mapping[int, MemoryTrace]) -> dict[str, float]:
    """`engram/layer{L}/{gate_mean, gate_std, gate_open_frac, slot_utilisation, collision_rate}` per memory.
    Gate values and collisions are those of `traces` (a forward recorded by `EngramModel.tracing()`): the memory
    entering at the positions that got memory; NaN for a memory without a trace. Slot utilisation counts every
    forward since `reset_slot_usage`."""
    stats: dict[str, float] = {}
    for layer, memory in sorted(engram_memories(model).items()):
        trace = traces.get(layer)
        g = trace.kept() if trace is not None else torch.empty(0)
        has = g.numel() > 0
        prefix = f"engram/layer{layer}"
        stats[f"{prefix}/gate_mean"] = float(g.mean()) if has else float("nan")
        stats[f"{prefix}/gate_std"] = float(g.std(unbiased=False)) if has else float("nan")
        stats[f"{prefix}/gate_open_frac"] = float((g > 0.5).float().mean()) if has else float("nan")
        stats[f"{prefix}/slot_utilisation"] = memory.slot_utilisation()
        stats[f"{prefix}/collision_rate"] = trace.collision_rate() if trace is not None else float("nan")
    return stats


def gate_histograms(traces: Mapping[int, MemoryTrace]) -> dict[str, torch.Tensor]:
    """`engram/layer{L}/gate_hist`: the memory entering at the kept positions of the traced forward (flat, CPU)."""
    return {f"engram/layer{layer}/gate_hist": trace.kept().cpu() for layer, trace in sorted(traces.items())}


def reset_slot_usage(model: nn.Module) -> None:
    """Start counting slot utilisation afresh (e.g. at the start of an epoch)."""
    for memory in engram_memories(model).values():
        memory.reset_slot_usage()
