"""address=fingerprint: a row contributes only to the key that wrote it (GRACE's "fire only near a stored key",
in hash form).

Every table row keeps the full key (before the modulo) of the first position that wrote it, `owner` (saved with the
engram file). A forward in training mode claims the still-free rows its kept positions look up (first writer wins,
so a row never changes hands; among positions of one batch that want the same free row, the smallest key); every
forward then lets a head's row through only where the position's key equals the row's owner. Inputs whose keys
were never trained (or lost their row to another key) get exactly nothing from that head: general prompts see the
base model unchanged, and a collision costs one head of one key instead of mixing two facts.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

FREE = torch.iinfo(torch.long).min  # no key: hashes give keys >= 0 (span/answer) or wrapped int64 mixes


class Address(nn.Module):
    def __init__(self, rows: int, heads: int, cfg: Any) -> None:
        super().__init__()
        self.register_buffer("owner", torch.full((rows,), FREE, dtype=torch.long))

    def forward(self, rows: torch.Tensor, keys: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.claim(rows[keep], keys[keep])
        return self.owner[rows] == keys

    @torch.no_grad()
    def claim(self, rows: torch.Tensor, keys: torch.Tensor) -> None:
        """Give every free row among `rows` to the smallest of the keys that looked it up."""
        rows, keys = rows.reshape(-1), keys.reshape(-1)
        free = self.owner[rows] == FREE
        if not free.any():
            return
        rows, keys = rows[free], keys[free]
        smallest = torch.full_like(self.owner, torch.iinfo(torch.long).max)
        smallest.scatter_reduce_(0, rows, keys, reduce="amin")
        self.owner[rows] = smallest[rows]

    def written(self) -> int:
        """How many rows have an owner."""
        return int((self.owner != FREE).sum())
