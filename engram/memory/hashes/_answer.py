"""hash=answer in torch (the kind, its keys and rules: answer.py)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from engram.memory.hashes._span import SPAN_MODULUS, SpanHasher
from engram.memory.hashing import LAYER_PRIME
from engram.protocols import Lookup

OFFSET_SEED = 7  # keeps the offset multiplier independent of the span multipliers drawn from the same seed


class AnswerHasher(SpanHasher):
    def __init__(self, table_size: int | Sequence[int], heads: int, layers: Sequence[int], seed: int,
                 token_map: torch.Tensor | None = None) -> None:
        super().__init__(table_size, heads, layers, seed, token_map)
        self.offset_step = {
            int(layer): int(np.random.default_rng([int(seed), LAYER_PRIME * int(layer), OFFSET_SEED])
                            .integers(1, SPAN_MODULUS))
            for layer in self.layers
        }

    def prompt_keys(self, ids: torch.Tensor, mask: torch.Tensor, prompt_lengths: torch.Tensor,
                    layer: int) -> torch.Tensor:
        """The span key of each row's prompt (its non-pad ids before prompt_lengths): LongTensor[B]."""
        pos = torch.arange(ids.shape[1], device=ids.device)
        in_prompt = (pos < prompt_lengths.to(ids.device).unsqueeze(-1)) & mask.bool()
        return self.span_keys(ids, in_prompt, layer)

    def lookup(self, ids: torch.Tensor, mask: torch.Tensor, prompt_lengths: torch.Tensor, new: int,
               layer: int) -> Lookup:
        S = ids.shape[1]
        pos = torch.arange(S, device=ids.device)
        lengths = prompt_lengths.to(ids.device).unsqueeze(-1)
        span = self.prompt_keys(ids, mask, prompt_lengths, layer)  # [B]
        offset = (pos[-new:] - (lengths - 1)).clamp_min(0)  # [B, T]: j at the position predicting answer token j
        keep = mask[:, -new:].bool() & (pos[-new:] >= lengths - 1)
        key = (span[:, None] + (offset + 1) * self.offset_step[int(layer)]) % SPAN_MODULUS  # [B, T]
        keys = key.unsqueeze(-1).expand(-1, -1, self.heads)
        return Lookup(self.slots(key, layer), keys, keep)


Hash = AnswerHasher  # what the registry builds for hash=answer
