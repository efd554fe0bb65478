"""address=fingerprint in torch (the kind, its keys and rules: fingerprint.py)."""

from __future__ import annotations

import torch
from torch import nn

FREE = torch.iinfo(torch.long).min  # no key: hashes give keys >= 0 (span/answer) or wrapped int64 mixes


class Address(nn.Module):
    def __init__(self, rows: int) -> None:
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
