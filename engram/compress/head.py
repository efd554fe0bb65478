"""The learned compression head: k learned queries, each attending over its chunk of the document's layer-N states,
plus a low-rank correction of the pooled vector.

At initialisation (queries and the correction's output projection at zero) it is exactly mean pooling over k chunks
(engram/compress/pooling.py); training (engram/compress/head_training.py) moves it only where the frozen model
answers questions about the document better from the k vectors.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from engram.compress.pooling import chunk_mask


class CompressionHead(nn.Module):
    def __init__(self, dim: int, k: int, rank: int = 64) -> None:
        super().__init__()
        self.dim, self.k = dim, k
        self.norm = nn.RMSNorm(dim)
        self.queries = nn.Parameter(torch.zeros(k, dim))
        self.down = nn.Linear(dim, rank, bias=False)
        self.up = nn.Linear(rank, dim, bias=False)
        nn.init.zeros_(self.up.weight)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """[T, d] states of one document -> [k, d] vectors."""
        mask = chunk_mask(states.shape[0], self.k, states.device)
        scores = self.queries @ self.norm(states).T / math.sqrt(self.dim)  # [k, T]
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        pooled = weights @ states
        return pooled + self.up(self.down(pooled))
