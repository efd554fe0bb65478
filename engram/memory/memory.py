"""EngramMemory: token ids -> hash slots -> table rows -> gated residual for one decoder layer.

Read top to bottom, one forward is:
  1. hash: the hash kind (engram/memory/hashes/) turns the ids (the whole history so far, see
     `engram.models.generation`) into one slot and one key per head for each new position; `keep` marks the
     positions that get memory (not padding; for hash=span only positions >= prompt_length - 1, i.e. from the one
     that predicts the first answer token on).
  2. look up: every head's table is a block of one table (`offsets` = where each head's block starts; an
     `nn.Embedding`, or offloaded to host memory / a file: engram/memory/tables.py);
     deepseek/span concatenate the heads (each `dim // heads` wide), poc averages them (one shared table, `dim` wide).
  3. address: the address kind (engram/memory/address/) masks the rows that may contribute (hashed: all), per head;
     an address with a `retriever` (hybrid) also adds rows of the same table found by the hidden state's content.
  4. gate: the gate kind (engram/memory/gates/) projects to the hidden size and scales by the gate.
`EngramModel` (engram/models/engram_model.py) adds the result to the layer's input hidden state. Beside it the forward
returns a `MemoryTrace` (engram/memory/trace.py: gate, share of heads let through, lookup), which the model keeps
only inside `EngramModel.tracing()`; the memory itself keeps no record of its last forward.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from engram.config import build
from engram.memory.tables import build_table
from engram.memory.trace import MemoryTrace
from engram.protocols import Lookup


class EngramMemory(nn.Module):
    def __init__(self, cfg: Any, layer: int, hidden_size: int, hasher: Any) -> None:
        """`hasher`: a hash (engram/protocols.py); the gate and address kinds are `cfg.gate` / `cfg.address`,
        built from the config by engram/config/sections.py's `build`, as every kind is."""
        super().__init__()
        self.layer, self.kind, self.hasher = int(layer), cfg.hash, hasher
        sizes = hasher.head_sizes(self.layer)
        if hasher.shared_table:  # poc: every head indexes the same rows; rows of the heads are averaged
            rows, head_dim, offsets = sizes[0], int(cfg.dim), [0] * len(sizes)
            mem_dim = head_dim
        else:
            head_dim = max(1, int(cfg.dim) // int(cfg.heads))
            rows, offsets = sum(sizes), [sum(sizes[:i]) for i in range(len(sizes))]
            mem_dim = head_dim * len(sizes)
        self.table: nn.Module = build_table(cfg, self.layer, rows, head_dim)  # nn.Embedding, or offloaded
        # derived from the config, so not saved: offsets of the head blocks, rows hit since reset_slot_usage()
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.long), persistent=False)
        self.register_buffer("hits", torch.zeros(rows, dtype=torch.bool), persistent=False)
        # rows hit so far, kept up to date per forward so utilisation never scans the whole table
        self.register_buffer("hit_count", torch.zeros((), dtype=torch.long), persistent=False)
        self.gate: nn.Module = build("gate", cfg.gate, cfg, hidden_size=hidden_size, mem_dim=mem_dim)
        self.address: nn.Module = build("address", cfg.address, cfg, rows=rows, heads=len(sizes))
        taught_store = getattr(hasher, "taught_store", None)  # hash=question: the questions trained on, saved
        self.taught: nn.Module | None = taught_store(self.layer) if taught_store is not None else None
        retriever = getattr(self.address, "retriever", None)  # content lookup over the table (address=hybrid)
        self.retrieval: nn.Module | None = retriever(hidden_size, head_dim) if retriever is not None else None

    # ------------------------------------------------------------ forward
    def forward(
        self,
        h: torch.Tensor,
        ids: torch.Tensor,
        mask: torch.Tensor,
        prompt_lengths: torch.Tensor,
        cache: dict | None = None,
    ) -> tuple[torch.Tensor, MemoryTrace]:
        """h: [B, T, H] hidden states of the T newest positions; ids, mask: [B, S] every position so far
        (S >= T, pad positions already hold the pad id); prompt_lengths: [B] in the same coordinates.
        Returns the residual [B, T, H] (zero where no memory applies) and what this forward did (its trace)."""
        if self.training and self.taught is not None:
            self.hasher.remember(ids, mask, prompt_lengths, self.layer)
        found = self.lookup(ids, mask, prompt_lengths, h.shape[1])
        rows = found.slots + self.offsets
        e = self.table(rows)  # [B, T, heads, head_dim]
        passed = self.address(rows, found.keys, found.keep)  # [B, T, heads]
        e = e * passed.unsqueeze(-1).to(e.dtype)
        if self.retrieval is not None:
            e = e + self.retrieval(h, self.table, found.keep).to(e.dtype)
        e = e.mean(-2) if self.hasher.shared_table else e.flatten(-2)
        self._track(rows, found.keep)
        out, gate = self.gate(h, e.to(h.dtype), found.keep, cache)  # gate: [B, T], its value at each position
        return out, MemoryTrace.of(gate, passed, found)

    def prefetch(self, ids: torch.Tensor, mask: torch.Tensor, prompt_lengths: torch.Tensor) -> None:
        """An offloaded table (engram.offload.to=host) starts gathering, on a worker thread, the rows a coming forward
        on these ids will read (same arguments as `forward`, all positions new); a no-op for in-memory tables."""
        prefetch = getattr(self.table, "prefetch", None)
        if prefetch is None:
            return

        def rows() -> torch.Tensor:
            found = self.lookup(ids, mask, prompt_lengths, ids.shape[1])
            return torch.unique((found.slots + self.offsets.to(found.slots.device)).reshape(-1)).cpu()

        prefetch(rows)

    def lookup(self, ids: torch.Tensor, mask: torch.Tensor, prompt_lengths: torch.Tensor, new: int) -> Lookup:
        """Slots, keys [B, T, heads] and keep [B, T] for the T newest ids (the hash kind decides all three)."""
        return self.hasher.lookup(ids, mask, prompt_lengths, new, self.layer)

    # ------------------------------------------------------------ statistics
    @torch.no_grad()
    def _track(self, rows: torch.Tensor, keep: torch.Tensor) -> None:
        rows = torch.unique(rows[keep])  # O(lookups), not O(table rows)
        self.hit_count += (~self.hits[rows]).sum()
        self.hits[rows] = True

    def slot_utilisation(self) -> float:
        """Fraction of table rows looked up at least once since the last `reset_slot_usage()`."""
        return float(self.hit_count) / self.hits.numel()

    def reset_slot_usage(self) -> None:
        self.hits.zero_()
        self.hit_count.zero_()

    def extra_repr(self) -> str:
        return f"layer={self.layer}, hash={self.kind}, heads={len(self.offsets)}"
