"""gate=mlp in torch (the kind, its keys and rules: mlp.py)."""

from __future__ import annotations

import torch
from torch import nn


class MLPGate(nn.Module):
    def __init__(self, hidden_size: int, mem_dim: int, gate_bias: float = 0.0) -> None:
        super().__init__()
        self.proj = nn.Identity() if mem_dim == hidden_size else nn.Linear(mem_dim, hidden_size, bias=False)
        width = max(16, hidden_size // 4)
        self.mlp = nn.Sequential(nn.Linear(2 * hidden_size, width), nn.SiLU(), nn.Linear(width, 1))
        nn.init.zeros_(self.mlp[-1].bias)
        self.gate_bias = float(gate_bias)

    def forward(
        self, h: torch.Tensor, e: torch.Tensor, keep: torch.Tensor, cache: dict | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.proj(e)
        g = torch.sigmoid(self.mlp(torch.cat([h, r], dim=-1)) + self.gate_bias)  # [B, T, 1]
        return g * r * keep.unsqueeze(-1), g[..., 0]


Gate = MLPGate  # what the registry builds for gate=mlp
