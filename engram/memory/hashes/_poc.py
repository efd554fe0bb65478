"""hash=poc in torch (the kind, its keys and rules: poc.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from engram.memory.budget import requested_sizes, sizes_of
from engram.memory.hashes.poc import PRIMES  # the kind declares them (its check bounds engram.heads by them)
from engram.memory.hashing import DeviceCache
from engram.protocols import Lookup


class PocHasher:
    """Seed hash: unigram, `heads` primes into one shared table of `table_size` rows (the first size of a list)."""

    shared_table = True
    uses_token_map = False  # the seed hashed raw ids

    def __init__(self, table_size: int | Sequence[int], heads: int) -> None:
        if heads > len(PRIMES):
            raise ValueError(f"engram.heads={heads} is more than the {len(PRIMES)} primes of hash=poc")
        self.table_size, self.heads = sizes_of(table_size)[0], int(heads)
        self._consts = DeviceCache(primes=torch.tensor(PRIMES[:heads], dtype=torch.long))

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


    @staticmethod
    def table_sizes(cfg: Any) -> list[int]:
        return requested_sizes(cfg)[:1]


Hash = PocHasher  # what the registry builds for hash=poc
