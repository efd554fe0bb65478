"""hash=span in torch (the kind, its keys and rules: span.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from engram.memory.budget import requested_sizes, sizes_of
from engram.memory.hashing import LAYER_PRIME, DeviceCache, assign_primes
from engram.protocols import Lookup

SPAN_MODULUS = 2_147_483_647  # 2**31 - 1 (prime): span keys live in [0, 2**31 - 1)
SPAN_POSITIONS = 4096  # per-position multipliers; longer prompts reuse them cyclically


class SpanHasher:
    """Entity-keyed hash: one key per sequence from every non-pad prompt token, used at every answer position.

    key = sum_k ((x_k + 1) * a_k mod M) mod M over the prompt tokens in order (k counts non-pad tokens only, so
    left- and right-padded copies of a prompt get the same key), M = 2**31 - 1, a_k drawn per layer from
    `numpy.random.default_rng(seed + 10007 * layer)`. Head h looks up `key % P_h` (distinct primes as deepseek).
    """

    shared_table = False
    uses_token_map = True

    def __init__(
        self,
        table_size: int | Sequence[int],
        heads: int,
        layers: Sequence[int],
        seed: int,
        token_map: torch.Tensor | np.ndarray | None = None,
    ) -> None:
        size = sizes_of(table_size)[0]
        self.heads, self.layers = int(heads), [int(x) for x in layers]
        self.token_map = None if token_map is None else torch.as_tensor(token_map, dtype=torch.long)
        self.primes = assign_primes(self.layers, [size], self.heads)
        consts: dict[str, torch.Tensor] = {}
        for layer in self.layers:
            rng = np.random.default_rng(int(seed) + LAYER_PRIME * layer)
            consts[f"a{layer}"] = torch.from_numpy(rng.integers(1, SPAN_MODULUS, size=SPAN_POSITIONS, dtype=np.int64))
            consts[f"p{layer}"] = torch.tensor(self.head_sizes(layer), dtype=torch.long)
        if self.token_map is not None:
            consts["map"] = self.token_map
        self._consts = DeviceCache(**consts)

    def head_sizes(self, layer: int) -> list[int]:
        return list(self.primes[int(layer)][0])

    def span_keys(self, input_ids: torch.Tensor, in_prompt: torch.Tensor, layer: int) -> torch.Tensor:
        """One key per row from the tokens where `in_prompt` (bool [B, T]) holds: LongTensor[B]."""
        c = self._consts.on(input_ids.device)
        x = input_ids.long()
        if self.token_map is not None:
            x = c["map"][x.clamp_min(0)]
        rank = (in_prompt.long().cumsum(-1) - 1).clamp_min(0) % SPAN_POSITIONS
        # each term < 2**31, so the sum over up to 2**32 tokens cannot overflow int64
        terms = ((x + 1) * c[f"a{int(layer)}"][rank]) % SPAN_MODULUS
        return (terms * in_prompt).sum(-1) % SPAN_MODULUS

    def slots(self, span_key: torch.Tensor, layer: int) -> torch.Tensor:
        """Per-head slots of keys: [...] -> [..., heads]."""
        return span_key.unsqueeze(-1) % self._consts.on(span_key.device)[f"p{int(layer)}"]

    def keys(self, input_ids: torch.Tensor, layer: int, prompt_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The span key broadcast over all positions and heads: LongTensor[B, T, heads] (prompt = [0,
        prompt_lengths))."""
        T = input_ids.shape[-1]
        if prompt_lengths is None:
            prompt_lengths = torch.full(input_ids.shape[:1], T)
        in_prompt = torch.arange(T, device=input_ids.device) < prompt_lengths.to(input_ids.device).unsqueeze(-1)
        return self.span_keys(input_ids, in_prompt, layer)[:, None, None].expand(-1, T, self.heads)

    def hash(self, input_ids: torch.Tensor, layer: int, prompt_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Slots of the span key at every position: LongTensor[B, T, heads] (which positions use them is up to
        `lookup`: positions >= prompt_length - 1)."""
        return self.slots(self.keys(input_ids, layer, prompt_lengths)[..., 0], layer)

    def lookup(self, ids: torch.Tensor, mask: torch.Tensor, prompt_lengths: torch.Tensor, new: int,
               layer: int) -> Lookup:
        """Every position from the one predicting the first answer token on (>= prompt_length - 1) looks up the
        key of its row's prompt (the prompt's non-pad ids)."""
        S = ids.shape[1]
        pos = torch.arange(S, device=ids.device)
        lengths = prompt_lengths.to(ids.device).unsqueeze(-1)
        key = self.span_keys(ids, (pos < lengths) & mask.bool(), layer)  # [B]
        keep = mask[:, -new:].bool() & (pos[-new:] >= lengths - 1)
        keys = key[:, None, None].expand(-1, new, self.heads)
        return Lookup(self.slots(key, layer)[:, None, :].expand(-1, new, -1), keys, keep)


    @staticmethod
    def table_sizes(cfg: Any) -> list[int]:
        return requested_sizes(cfg)[:1]


Hash = SpanHasher  # what the registry builds for hash=span
