"""address=hybrid in torch (the kind, its keys and rules: hybrid.py)."""

from __future__ import annotations

import math

import torch
from torch import nn

from engram.memory.address._hashed import Address as HashedAddress
from engram.memory.product_keys import ProductKeys

INITIAL_TEMPERATURE = 10.0  # inverse temperature on scores in [-2, 2]: the best of k rows gets most of the weight


class ContentLookup(nn.Module):
    def __init__(self, hidden_size: int, row_dim: int, rows: int, heads: int, topk: int, key_dim: int,
                 gain_init: float, seed: int) -> None:
        super().__init__()
        self.topk = int(topk)
        self.query = nn.Linear(hidden_size, int(key_dim), bias=False)
        self.keys = ProductKeys(rows, int(key_dim), seed=int(seed))
        self.log_temperature = nn.Parameter(torch.tensor(math.log(INITIAL_TEMPERATURE)))
        self.scale = nn.Parameter(torch.full((heads, row_dim), float(gain_init)))  # the content rows' gain
        self.last_rows: torch.Tensor | None = None  # [B, T, k] the rows of the last forward, best first

    def forward(self, h: torch.Tensor, table: nn.Embedding, keep: torch.Tensor) -> torch.Tensor:
        """h [B, T, H] -> [B, T, heads, row_dim]: the content rows' weighted mean, times the gain; 0 where not kept."""
        scores, rows = self.keys.search(self.query(h), self.topk)
        self.last_rows = rows.detach()
        weights = torch.softmax(scores * self.log_temperature.exp(), dim=-1)
        found = (weights.unsqueeze(-1) * table(rows).to(h.dtype)).sum(-2)  # [B, T, row_dim]
        found = found * keep.unsqueeze(-1).to(found.dtype)
        return found.unsqueeze(-2) * self.scale.to(found.dtype)


class HybridAddress(HashedAddress):
    """Every hash row passes (address=hashed's forward); `retriever` adds the content lookup. `topk`, `key_dim`,
    `gain_init`: engram.hybrid.* (hybrid.py's Params); `seed`: engram.seed (the product keys')."""

    def __init__(self, rows: int, heads: int, topk: int = 8, key_dim: int = 64, gain_init: float = 1.0,
                 seed: int = 0) -> None:
        super().__init__()
        self.rows, self.heads = int(rows), int(heads)
        self.content = {"topk": int(topk), "key_dim": int(key_dim), "gain_init": float(gain_init), "seed": int(seed)}

    def retriever(self, hidden_size: int, row_dim: int) -> ContentLookup:
        """The content lookup over this table, for the memory to own (it needs the hidden size the memory knows)."""
        return ContentLookup(hidden_size, row_dim, self.rows, self.heads, **self.content)


Address = HybridAddress  # what the registry builds for address=hybrid
