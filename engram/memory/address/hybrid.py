"""address=hybrid: the hash rows (every looked-up row contributes, as address=hashed) plus the top-k rows of the
same table found by content, so a position also reaches rows its n-gram does not hash to.

Content lookup (`ContentLookup`, built by the memory through `Address.retriever`): a query projection of the
layer's hidden state (`engram.hybrid_key_dim` wide) searches product keys over the table's rows
(engram/memory/product_keys.py: O(sqrt(rows) * d + k^2) per position, `engram.hybrid_topk` rows); the k rows are
averaged with softmax weights over their scores (times a trained inverse temperature, 10 at the start) and added to
every head's hash row with a trained per-head, per-dimension gain (`engram.hybrid_gain_init`, 1); the gate then
decides how much of the mix enters the residual, as for plain hash rows. A fresh memory changes nothing under the
same conditions as a hashed one: zero rows (engram.init=zeros / prepopulate) or a closed gate. (A gain starting at
zero, which makes a fresh memory exactly the hashed one, left the content path inert: 20 steps of AdamW at lr 3e-3
moved it to at most 0.03 on SmolLM2, docs/six_way.md.)
The retrieved rows are the same `nn.Embedding` rows the hash reads (sparse gradients for the k rows); the query,
the sub-keys, the temperature and the gain are dense weights.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from engram.memory.address.hashed import Address as HashedAddress
from engram.memory.product_keys import ProductKeys

INITIAL_TEMPERATURE = 10.0  # inverse temperature on scores in [-2, 2]: the best of k rows gets most of the weight


class ContentLookup(nn.Module):
    def __init__(self, hidden_size: int, row_dim: int, rows: int, heads: int, cfg: Any) -> None:
        super().__init__()
        self.topk = int(cfg.hybrid_topk)
        self.query = nn.Linear(hidden_size, int(cfg.hybrid_key_dim), bias=False)
        self.keys = ProductKeys(rows, int(cfg.hybrid_key_dim), seed=int(cfg.seed))
        self.log_temperature = nn.Parameter(torch.tensor(math.log(INITIAL_TEMPERATURE)))
        self.scale = nn.Parameter(torch.full((heads, row_dim), float(cfg.hybrid_gain_init)))  # the content rows' gain
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
