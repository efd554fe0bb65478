"""hash=deepseek in torch (the kind, its keys and rules: deepseek.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from engram.memory.budget import requested_sizes
from engram.memory.hashing import LAYER_PRIME, DeviceCache, assign_primes
from engram.protocols import Lookup

SHUFFLE_SEED = 7919  # the key_shuffle ids' own stream, apart from the multipliers'
SHUFFLE_PERIOD = 1 << 16  # positions beyond this reuse the ids from the start


class NgramHasher:
    """DeepSeek Engram n-gram hash (multiplicative-XOR over the last n ids, one prime modulus per head)."""

    shared_table = False
    uses_token_map = True

    def __init__(
        self,
        vocab_size: int,
        table_size: int | Sequence[int],
        max_ngram: int,
        heads: int,
        layers: Sequence[int],
        pad_id: int,
        seed: int,
        token_map: torch.Tensor | np.ndarray | None = None,
        key_shuffle: bool = False,
    ) -> None:
        self.max_ngram, self.heads, self.layers = int(max_ngram), int(heads), [int(x) for x in layers]
        sizes = [int(table_size)] * (max_ngram - 1) if isinstance(table_size, int) else [int(s) for s in table_size]
        if len(sizes) != max_ngram - 1:
            raise ValueError(f"engram.table_size needs one size per n-gram order ({max_ngram - 1}), got {sizes}")
        self.token_map = None if token_map is None else torch.as_tensor(token_map, dtype=torch.long)
        # The multiplier bound and the pad id live in the compressed vocabulary, as in the demo.
        self.vocab_size = int(self.token_map.max()) + 1 if self.token_map is not None else int(vocab_size)
        self.pad_id = int(self.token_map[pad_id]) if self.token_map is not None else int(pad_id)
        half = max(1, (np.iinfo(np.int64).max // self.vocab_size) // 2)
        self.multipliers = {
            layer: torch.from_numpy(
                np.random.default_rng(int(seed) + LAYER_PRIME * layer).integers(0, half, size=max_ngram, dtype=np.int64)
                * 2 + 1
            )
            for layer in self.layers
        }
        self.primes = assign_primes(self.layers, sizes, self.heads)
        for layer in self.layers:  # the capacity-1 control: one row per head, not the smallest prime
            self.primes[layer] = [[1] * self.heads if size == 1 else p for size, p in zip(sizes, self.primes[layer],
                                                                                           strict=True)]
        self.key_shuffle = bool(key_shuffle)
        consts: dict[str, torch.Tensor] = {}
        for layer in self.layers:
            consts[f"m{layer}"] = self.multipliers[layer]
            consts[f"p{layer}"] = torch.tensor(self.head_sizes(layer), dtype=torch.long)
        if self.token_map is not None:
            consts["map"] = self.token_map
        if self.key_shuffle:  # fixed random ids per position (the key_shuffle control)
            draw = torch.Generator().manual_seed(int(seed) + SHUFFLE_SEED)
            consts["position_ids"] = torch.randint(0, self.vocab_size, (SHUFFLE_PERIOD,), generator=draw)
        self._consts = DeviceCache(**consts)

    def head_sizes(self, layer: int) -> list[int]:
        return [p for order in self.primes[int(layer)] for p in order]

    def compress(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = input_ids.long()
        if self.token_map is None:
            return x
        table = self._consts.on(x.device)["map"]
        return torch.where(x >= 0, table[x.clamp_min(0)], x)  # the demo leaves negative ids alone

    def _mixes(self, input_ids: torch.Tensor, layer: int, first_position: int = 0) -> list[torch.Tensor]:
        """`mix_n` for n = 2..max_ngram, each LongTensor[B, T] (int64 products wrap, as numpy's). `first_position`:
        the position of input_ids[:, 0] in the sequence (only key_shuffle reads it)."""
        x = self.compress(input_ids)
        if self.key_shuffle:
            table = self._consts.on(x.device)["position_ids"]
            positions = torch.arange(first_position, first_position + x.shape[-1], device=x.device) % SHUFFLE_PERIOD
            x = table[positions].expand_as(x)
        m = self._consts.on(x.device)[f"m{int(layer)}"]
        padded = torch.nn.functional.pad(x, (self.max_ngram - 1, 0), value=self.pad_id)
        T = x.shape[-1]
        mix = x * m[0]
        mixes = []
        for k in range(1, self.max_ngram):  # loop over n-gram orders, never over tokens
            shifted = padded[..., self.max_ngram - 1 - k : self.max_ngram - 1 - k + T]
            mix = mix ^ (shifted * m[k])
            mixes.append(mix)
        return mixes

    def keys(self, input_ids: torch.Tensor, layer: int) -> torch.Tensor:
        """`mix_n` for n = 2..max_ngram: LongTensor[B, T, max_ngram - 1]."""
        return torch.stack(self._mixes(input_ids, layer), dim=-1)

    def hash(self, input_ids: torch.Tensor, layer: int) -> torch.Tensor:
        """Slots per head, orders outer and heads inner: LongTensor[B, T, (max_ngram - 1) * heads]."""
        return self.slots(self._mixes(input_ids, layer), layer)

    def slots(self, mixes: list[torch.Tensor], layer: int) -> torch.Tensor:
        # One scalar modulus per head into a head-major buffer: ~2x faster than a broadcast remainder + stack.
        out = torch.empty((len(mixes) * self.heads, *mixes[0].shape), dtype=torch.long, device=mixes[0].device)
        for o, (mix, primes) in enumerate(zip(mixes, self.primes[int(layer)], strict=True)):
            for j, p in enumerate(primes):
                torch.remainder(mix, p, out=out[o * self.heads + j])  # floor modulo (non-negative), as numpy's %
        return out.movedim(0, -1)

    def lookup(self, ids: torch.Tensor, mask: torch.Tensor, prompt_lengths: torch.Tensor, new: int,
               layer: int) -> Lookup:
        # n-grams read the previous max_ngram - 1 ids, so that window suffices
        first = max(0, ids.shape[1] - new - self.max_ngram + 1)
        mixes = [m[:, -new:] for m in self._mixes(ids[:, first:], layer, first)]
        keys = torch.stack(mixes, dim=-1).repeat_interleave(self.heads, dim=-1)  # one column per head
        return Lookup(self.slots(mixes, layer), keys, mask[:, -new:].bool())

    @staticmethod
    def table_sizes(cfg: Any) -> list[int]:
        sizes = requested_sizes(cfg)
        return sizes if len(sizes) > 1 else sizes * max(1, int(cfg.max_ngram) - 1)


Hash = NgramHasher  # what the registry builds for hash=deepseek (engram/config/sections.py's build)
