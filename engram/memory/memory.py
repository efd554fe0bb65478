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
`EngramModel` (engram/models/engram_model.py) adds the result to the layer's input hidden state.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from engram import registry
from engram.memory.tables import build_table
from engram.protocols import Lookup


class EngramMemory(nn.Module):
    def __init__(self, cfg: Any, layer: int, hidden_size: int, hasher: Any) -> None:
        """`hasher`: a hash (engram/protocols.py); the gate and address kinds come from `cfg.gate` /
        `cfg.address` through engram/registry.py."""
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
        self.gate: nn.Module = registry.get("gate", cfg.gate)(hidden_size, mem_dim, cfg)
        self.address: nn.Module = registry.get("address", getattr(cfg, "address", "hashed"))(rows, len(sizes), cfg)
        taught_store = getattr(hasher, "taught_store", None)  # hash=question: the questions trained on, saved
        self.taught: nn.Module | None = taught_store(self.layer) if taught_store is not None else None
        retriever = getattr(self.address, "retriever", None)  # content lookup over the table (address=hybrid)
        self.retrieval: nn.Module | None = retriever(hidden_size, head_dim) if retriever is not None else None
        self._last: Lookup | None = None
        self._passed_map: torch.Tensor | None = None  # [B, T] share of heads the address let through (last forward)

    # ------------------------------------------------------------ forward
    def forward(
        self,
        h: torch.Tensor,
        ids: torch.Tensor,
        mask: torch.Tensor,
        prompt_lengths: torch.Tensor,
        cache: dict | None = None,
    ) -> torch.Tensor:
        """h: [B, T, H] hidden states of the T newest positions; ids, mask: [B, S] every position so far
        (S >= T, pad positions already hold the pad id); prompt_lengths: [B] in the same coordinates.
        Returns the residual [B, T, H] (zero where no memory applies)."""
        if self.training and self.taught is not None:
            self.hasher.remember(ids, mask, prompt_lengths, self.layer)
        found = self.lookup(ids, mask, prompt_lengths, h.shape[1])
        rows = found.slots + self.offsets
        e = self.table(rows)  # [B, T, heads, head_dim]
        passed = self.address(rows, found.keys, found.keep)  # [B, T, heads]
        e = e * passed.unsqueeze(-1).to(e.dtype)
        if self.retrieval is not None:
            e = e + self.retrieval(h, self.table, found.keep).to(e.dtype)
        self._passed_map = passed.detach().float().mean(-1)
        e = e.mean(-2) if self.hasher.shared_table else e.flatten(-2)
        self._track(rows, found)
        return self.gate(h, e.to(h.dtype), found.keep, cache)

    def prefetch(self, ids: torch.Tensor, mask: torch.Tensor, prompt_lengths: torch.Tensor) -> None:
        """An offloaded table (engram.offload=host) starts gathering, on a worker thread, the rows a coming forward
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
    def _track(self, rows: torch.Tensor, found: Lookup) -> None:
        rows = torch.unique(rows[found.keep])  # O(lookups), not O(table rows)
        self.hit_count += (~self.hits[rows]).sum()
        self.hits[rows] = True
        self._last = found

    @property
    def last_gate(self) -> torch.Tensor | None:
        """How much memory entered at each kept position of the last forward (detached, flat): the gate value times
        the share of heads whose rows the address let through (address=hashed: all, so just the gate)."""
        gate = self.gate.last_gate
        if gate is None or self._passed_map is None or self._last is None:
            return gate
        passed = self._passed_map[self._last.keep]
        return gate * passed if passed.shape == gate.shape else gate

    @torch.no_grad()
    def entering(self) -> torch.Tensor | None:
        """[B, T] how much memory entered at each position of the last forward (detached): `last_gate` put back in
        place, zero where the hash kept nothing. None before any forward. What the demo tints each token by."""
        flat = self.last_gate
        if flat is None or self._last is None:
            return None
        keep = self._last.keep
        out = torch.zeros(keep.shape, dtype=torch.float32, device=keep.device)
        out[keep] = flat.to(out.device)
        return out

    def live_entering(self) -> torch.Tensor | None:
        """[B, T] how much memory entered at each position of the last training forward, with its graph (gate
        times the share of heads let through; zero where nothing applies); None outside training or for gates
        without a trained gate value."""
        live = getattr(self.gate, "live_gate", None)
        if live is None or self._passed_map is None:
            return None
        return live * self._passed_map.to(live.dtype)

    @torch.no_grad()
    def all_heads_passed(self) -> torch.Tensor:
        """Per sequence of the last forward [B]: True when every kept position got every head's row through the
        address (False: a row was lost to another key, or never written)."""
        if self._last is None or self._passed_map is None:
            raise RuntimeError("engram: all_heads_passed() needs a forward first")
        return ((self._passed_map >= 1.0) | ~self._last.keep).all(-1)

    def slot_utilisation(self) -> float:
        """Fraction of table rows looked up at least once since the last `reset_slot_usage()`."""
        return float(self.hit_count) / self.hits.numel()

    def reset_slot_usage(self) -> None:
        self.hits.zero_()
        self.hit_count.zero_()

    @torch.no_grad()
    def collision_rate(self) -> float:
        """Last batch: per head, the share of distinct keys (n-grams / prompts) that lost their own slot to
        another key, i.e. 1 - distinct slots / distinct keys; averaged over heads. NaN before any forward."""
        if self._last is None:
            return float("nan")
        slots, keys, keep = self._last
        rates = []
        for c in range(slots.shape[-1]):
            k = keys[..., c][keep]
            if k.numel() == 0:
                continue
            n_keys = torch.unique(k).numel()
            rates.append(1.0 - torch.unique(slots[..., c][keep]).numel() / n_keys)
        return float(sum(rates) / len(rates)) if rates else float("nan")

    def extra_repr(self) -> str:
        return f"layer={self.layer}, hash={self.kind}, heads={len(self.offsets)}"
