"""Product keys (Lample et al. 2019, "Large Memory Layers with Product Keys"): the top-k rows of a table for a
content query in O(sqrt(N) * d + k^2) per query instead of O(N * d).

A table of N rows gets n = ceil(sqrt(N)) sub-keys per half (`sub_keys[0]`, `sub_keys[1]`, each d/2 wide). Key pair
(i, j) is the key [K1[i], K2[j]]; its score for a query q = [q1, q2] is cos(q1, K1[i]) + cos(q2, K2[j]) (in
[-2, 2]). A score is a sum of one term per half, so the best k pairs lie among the best k sub-keys of each half:
score the 2n sub-keys, take k per half, score the k x k combinations, keep the best k. This is exact (the same
top-k as scoring all n^2 pairs; `exhaustive` does that, for tests and the benchmark).

Pair (i, j) addresses row (i * n + j) mod N: every pair is a valid row, and since n^2 < 2N (N >= 3) each row has
one or two key pairs. Any N works (no square needed).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ProductKeys(nn.Module):
    def __init__(self, rows: int, key_dim: int, seed: int = 0) -> None:
        super().__init__()
        if rows < 1 or key_dim < 2 or key_dim % 2:
            raise ValueError(f"product keys: need rows >= 1 and an even key_dim >= 2, got {rows}, {key_dim}")
        self.rows, self.key_dim = int(rows), int(key_dim)
        self.n = math.isqrt(self.rows - 1) + 1  # sub-keys per half: n * n >= rows
        generator = torch.Generator().manual_seed(int(seed))
        self.sub_keys = nn.Parameter(torch.randn(2, self.n, self.key_dim // 2, generator=generator))

    def half_scores(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cosine of each half of q [..., key_dim] with that half's n sub-keys: two [..., n]."""
        q1, q2 = F.normalize(q.unflatten(-1, (2, -1)), dim=-1).unbind(-2)
        k = F.normalize(self.sub_keys, dim=-1).to(q.dtype)
        return q1 @ k[0].T, q2 @ k[1].T

    def search(self, q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The k best key pairs for each query q [..., key_dim]: (scores [..., k], table rows [..., k]), best first."""
        s1, s2 = self.half_scores(q)
        per_half = min(int(k), self.n)
        v1, i1 = s1.topk(per_half, dim=-1)
        v2, i2 = s2.topk(per_half, dim=-1)
        combined = (v1.unsqueeze(-1) + v2.unsqueeze(-2)).flatten(-2)  # [..., per_half^2]
        scores, flat = combined.topk(int(k), dim=-1)
        pair = i1.gather(-1, flat // per_half) * self.n + i2.gather(-1, flat % per_half)
        return scores, pair % self.rows

    def full_keys(self) -> torch.Tensor:
        """Every pair's key [n * n, key_dim] (halves normalised): what a flat index over the table would store."""
        k = F.normalize(self.sub_keys, dim=-1)
        left = k[0].repeat_interleave(self.n, dim=0)
        right = k[1].repeat(self.n, 1)
        return torch.cat([left, right], dim=-1)

    @torch.no_grad()
    def exhaustive(
        self, q: torch.Tensor, k: int, keys: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The same top-k by scoring every pair, O(N * d) per query (`keys`: `full_keys()`, built once)."""
        keys = self.full_keys() if keys is None else keys
        qn = F.normalize(q.unflatten(-1, (2, -1)), dim=-1).flatten(-2)
        scores, pair = (qn @ keys.T.to(q.dtype)).topk(int(k), dim=-1)
        return scores, pair % self.rows
