"""address=written: a row contributes only if training wrote it (a per-row record saved with the engram file).

A forward in training mode marks the rows its kept positions look up; every forward lets a head's row through only
where it was marked. Unlike address=fingerprint, any key that lands on a written row gets it (colliding keys share
it), so this measures what "the row was trained" alone buys.
"""

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
