"""What one memory's forward did, for the readers that measure it (gate statistics, selectivity, the demo's heat map,
the gate penalty of training).

`EngramMemory.forward` returns a `MemoryTrace` beside its residual. Nothing keeps it unless asked:
`EngramModel.tracing()` opens a `TraceRecorder` block, and only inside one are the traces of the latest forward
kept ({memory layer: trace}); outside, a training run's many forwards store nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from engram.protocols import Lookup

Traces = dict[int, "MemoryTrace"]  # {memory layer: its trace}


@dataclass(frozen=True)
class MemoryTrace:
    """One forward of one memory over T new positions of B sequences. No field holds an autograd graph but `live`."""

    gate: torch.Tensor  # [B, T] float32: the gate's value at each position (gate=direct: 1)
    passed: torch.Tensor  # [B, T] float32: the share of heads whose rows the address let through
    lookup: Lookup  # what the hash chose: slots, keys [B, T, heads], keep [B, T] (the positions that get memory)
    live: torch.Tensor | None = None  # [B, T] `entering` with its graph (engram.gate_l1); only when asked for

    @classmethod
    def of(cls, gate: torch.Tensor, passed: torch.Tensor, lookup: Lookup) -> MemoryTrace:
        """From the gate's values [B, T] (graph included) and the address's mask [B, T, heads]; `live` is set when
        the gate trains (the recorder drops it unless its block asked for it)."""
        keep = lookup.keep
        if gate.shape != keep.shape or passed.shape[:-1] != keep.shape:
            raise ValueError(f"engram: a memory's gate values {tuple(gate.shape)} and address mask "
                             f"{tuple(passed.shape)} must be [B, T] and [B, T, heads] for the {tuple(keep.shape)} "
                             "positions (a gate's forward returns (residual [B, T, H], gate [B, T]))")
        share = passed.detach().float().mean(-1)
        live = gate * keep.to(gate.dtype) * share.to(gate.dtype) if gate.requires_grad else None
        return cls(gate.detach().float(), share, lookup, live)

    @property
    def keep(self) -> torch.Tensor:
        return self.lookup.keep

    def entering(self) -> torch.Tensor:
        """[B, T] how much memory entered at each position: the gate times the share of heads let through, 0 where
        the hash kept nothing (**memory entering**; the demo tints each token by it)."""
        return torch.where(self.keep, self.gate * self.passed, torch.zeros_like(self.gate))

    def kept(self) -> torch.Tensor:
        """The memory entering at the kept positions only, flat (what gate statistics average)."""
        return (self.gate * self.passed)[self.keep]

    def all_heads_passed(self) -> torch.Tensor:
        """[B]: True when every kept position got every head's row through the address (False: a row was lost to
        another key, or never written)."""
        return ((self.passed >= 1.0) | ~self.keep).all(-1)

    def collision_rate(self) -> float:
        """Per head, the share of distinct keys (n-grams / prompts) that lost their own slot to another key, i.e.
        1 - distinct slots / distinct keys; averaged over heads (NaN when no position was kept)."""
        slots, keys, keep = self.lookup
        rates = []
        for c in range(slots.shape[-1]):
            k = keys[..., c][keep]
            if k.numel() == 0:
                continue
            rates.append(1.0 - torch.unique(slots[..., c][keep]).numel() / torch.unique(k).numel())
        return float(sum(rates) / len(rates)) if rates else float("nan")

    def without_graph(self) -> MemoryTrace:
        return self if self.live is None else dataclasses.replace(self, live=None)


class TraceRecorder:
    """The open `record()` blocks of one model; each holds the trace of every memory in the latest forward."""

    def __init__(self) -> None:
        self._open: list[tuple[Traces, bool]] = []

    @contextmanager
    def record(self, live: bool = False) -> Iterator[Traces]:
        """`{layer: MemoryTrace}` of the latest forward inside the block (blocks may nest: each gets every trace).
        `live`: keep `MemoryTrace.live` (the graph of the gate, for a loss); otherwise traces hold no graph."""
        traces: Traces = {}
        self._open.append((traces, live))
        try:
            yield traces
        finally:
            self._open = [(t, lv) for t, lv in self._open if t is not traces]

    def new_forward(self) -> None:
        """A model forward begins: the traces of the one before are no longer the latest (a knocked-out forward
        leaves no trace, rather than the previous one's)."""
        for traces, _ in self._open:
            traces.clear()

    def add(self, layer: int, trace: MemoryTrace) -> None:
        for traces, live in self._open:
            traces[int(layer)] = trace if live else trace.without_graph()
