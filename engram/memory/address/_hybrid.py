"""address=hybrid in torch (the kind, its keys and rules: hybrid.py)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from engram.memory.address._hashed import Address as HashedAddress
from engram.memory.product_keys import ProductKeys

INITIAL_TEMPERATURE = 10.0  # inverse temperature on scores in [-2, 2]: the best of k rows gets most of the weight


class ContentLookup(nn.Module):
    def __init__(self, hidden_size: int, row_dim: int, rows: int, heads: int, cfg: Any) -> None:
        super().__init__()
        self.topk = int(cfg.hybrid.topk)
        self.query = nn.Linear(hidden_size, int(cfg.hybrid.key_dim), bias=False)
        self.keys = ProductKeys(rows, int(cfg.hybrid.key_dim), seed=int(cfg.seed))
        self.log_temperature = nn.Parameter(torch.tensor(math.log(INITIAL_TEMPERATURE)))
        self.scale = nn.Parameter(torch.full((heads, row_dim), float(cfg.hybrid.gain_init)))  # the content rows' gain
        self.last_rows: torch.Tensor | None = None  # [B, T, k] the rows of the last forward, best first

    def forward(self, h: torch.Tensor, table: nn.Embedding, keep: torch.Tensor) -> torch.Tensor:
        """h [B, T, H] -> [B, T, heads, row_dim]: the content rows' weighted mean, times the gain; 0 where not kept."""
        scores, rows = self.keys.search(self.query(h), self.topk)
        self.last_rows = rows.detach()
        weights = torch.softmax(scores * self.log_temperature.exp(), dim=-1)
        found = (weights.unsqueeze(-1) * table(rows).to(h.dtype)).sum(-2)  # [B, T, row_dim]
        found = found * keep.unsqueeze(-1).to(found.dtype)
        return found.unsqueeze(-2) * self.scale.to(found.dtype)


class Address(HashedAddress):
    """Every hash row passes (address=hashed's forward); `retriever` adds the content lookup."""

    def __init__(self, rows: int, heads: int, cfg: Any) -> None:
        super().__init__(rows, heads, cfg)
        self.rows, self.heads, self.cfg = int(rows), int(heads), cfg

    def retriever(self, hidden_size: int, row_dim: int) -> ContentLookup:
        """The content lookup over this table, for the memory to own (it needs the hidden size the memory knows)."""
        return ContentLookup(hidden_size, row_dim, self.rows, self.heads, self.cfg)
