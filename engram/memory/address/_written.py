"""address=written in torch (the kind, its keys and rules: written.py)."""

from __future__ import annotations

import torch
from torch import nn


class Address(nn.Module):
    def __init__(self, rows: int) -> None:
        super().__init__()
        self.register_buffer("marked", torch.zeros(rows, dtype=torch.bool))

    def forward(self, rows: torch.Tensor, keys: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.marked[rows[keep]] = True
        return self.marked[rows]

    def written(self) -> int:
        return int(self.marked.sum())
