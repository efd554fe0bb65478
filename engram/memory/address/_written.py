"""address=written in torch (the kind, its keys and rules: written.py)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Address(nn.Module):
    def __init__(self, rows: int, heads: int, cfg: Any) -> None:
        super().__init__()
        self.register_buffer("marked", torch.zeros(rows, dtype=torch.bool))

    def forward(self, rows: torch.Tensor, keys: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.marked[rows[keep]] = True
        return self.marked[rows]

    def written(self) -> int:
        return int(self.marked.sum())
