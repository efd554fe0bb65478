"""hash=poc in torch (the kind, its keys and rules: poc.py)."""

from __future__ import annotations

from typing import Any

import torch

from engram.memory.budget import requested_sizes
from engram.memory.hashing import DeviceCache
from engram.protocols import Lookup

POC_PRIMES = (17, 31, 53, 79, 107, 131, 157, 181)


class PocHasher:
    """Seed hash: unigram, `heads` primes into one shared table of `table_size` rows."""

    shared_table = True

    def __init__(self, table_size: int, heads: int) -> None:
        if heads > len(POC_PRIMES):
            raise ValueError(f"engram.heads={heads} is more than the {len(POC_PRIMES)} primes of hash=poc")
        self.table_size, self.heads = int(table_size), int(heads)
        self._consts = DeviceCache(primes=torch.tensor(POC_PRIMES[:heads], dtype=torch.long))

    def head_sizes(self, layer: int) -> list[int]:
        return [self.table_size] * self.heads

    def keys(self, input_ids: torch.Tensor, layer: int) -> torch.Tensor:
        """The token id, for every head: LongTensor[B, T, heads]."""
        return input_ids.long().unsqueeze(-1).expand(*input_ids.shape, self.heads)

    def hash(self, input_ids: torch.Tensor, layer: int) -> torch.Tensor:
        primes = self._consts.on(input_ids.device)["primes"]
        return (input_ids.long().unsqueeze(-1) * primes) % self.table_size

    def lookup(self, ids: torch.Tensor, mask: torch.Tensor, prompt_lengths: torch.Tensor, new: int,
               layer: int) -> Lookup:
        x = ids[:, -new:]
        return Lookup(self.hash(x, layer), self.keys(x, layer), mask[:, -new:].bool())


class Hash(PocHasher):
    uses_token_map = False  # the seed hashed raw ids

    def __init__(self, cfg: Any, layers: list[int], vocab_size: int, pad_id: int,
                 token_map: torch.Tensor | None = None) -> None:
        super().__init__(requested_sizes(cfg)[0], int(cfg.heads))

    @staticmethod
    def table_sizes(cfg: Any) -> list[int]:
        return requested_sizes(cfg)[:1]
