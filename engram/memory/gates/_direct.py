"""gate=direct in torch (the kind, its keys and rules: direct.py)."""

from __future__ import annotations

import torch
from torch import nn


class Gate(nn.Module):
    def __init__(self, hidden_size: int, mem_dim: int) -> None:
        super().__init__()
        self.proj = nn.Identity() if mem_dim == hidden_size else nn.Linear(mem_dim, hidden_size, bias=False)

    def forward(
        self, h: torch.Tensor, e: torch.Tensor, keep: torch.Tensor, cache: dict | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        scale = h.float().pow(2).mean(-1, keepdim=True).sqrt().to(h.dtype)
        return scale * self.proj(e) * keep.unsqueeze(-1), torch.ones_like(keep, dtype=h.dtype)
