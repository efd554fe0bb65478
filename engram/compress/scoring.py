"""Scoring answers: greedy exact match (teacher-forced, batched) and free generation with the KV cache.

Exact match here is "greedy decoding would produce the reference answer's tokens": one forward over prompt + answer,
correct when the argmax at every answer position is the next answer token. That is exactly the greedy outcome for
the answer span (each greedy step sees the same prefix), with one forward per question instead of one per token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from engram.compress.inject import EngramInjector
from engram.compress.prompts import Encoded
from engram.data.collate import mask as padding_mask
from engram.data.collate import pad


@dataclass(frozen=True)
class Item:
    encoded: Encoded
    vectors: torch.Tensor | None = None  # [k, d] for the placeholders of this prompt


def forward_logits(model: nn.Module, items: Sequence[Item], injector: EngramInjector | None,
                   pad_id: int) -> torch.Tensor:
    """[B, T, V] logits of a right-padded batch, with each item's vectors injected (when it has any)."""
    seqs = [it.encoded.ids for it in items]
    ids, mask = pad(seqs, pad_id), padding_mask(seqs)
    with_vectors = [it.vectors for it in items if it.vectors is not None]
    if not with_vectors:
        return model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    if injector is None or len(with_vectors) != len(items):
        raise ValueError("a batch mixes items with and without engram vectors (or has no injector)")
    with injector.vectors(with_vectors):
        return model(input_ids=ids, attention_mask=mask, use_cache=False).logits


@torch.no_grad()
def answer_scores(model: nn.Module, items: Sequence[Item], injector: EngramInjector | None, pad_id: int,
                  batch_size: int = 16) -> list[tuple[bool, float]]:
    """Per item: (does greedy decoding reproduce its answer tokens (see the module docstring), the share of its
    answer tokens that are the argmax given the reference prefix)."""
    out: list[tuple[bool, float]] = []
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        predicted = forward_logits(model, batch, injector, pad_id).argmax(dim=-1)
        out += [answer_hits(predicted[row], it.encoded) for row, it in enumerate(batch)]
    return out


def answer_hits(predicted: torch.Tensor, encoded: Encoded) -> tuple[bool, float]:
    """(every answer token is the argmax, the share that is) for one row of argmax ids [T] over `encoded.ids`."""
    ids, a = encoded.ids, encoded.answer_start
    hits = predicted[a - 1:len(ids) - 1] == torch.tensor(ids[a:])
    return bool(hits.numel()) and bool(hits.all()), float(hits.float().mean()) if hits.numel() else 0.0


@torch.no_grad()
def generate(model: nn.Module, ids: Sequence[int], injector: EngramInjector | None = None,
             vectors: torch.Tensor | None = None, max_new_tokens: int = 24, use_cache: bool = True,
             suppress: Sequence[int] = ()) -> list[int]:
    """Greedy continuation of one prompt (new token ids only), with its engram vectors injected."""
    input_ids = torch.tensor([list(ids)])
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False, "use_cache": use_cache,
                              "attention_mask": torch.ones_like(input_ids)}
    if suppress:
        kwargs["suppress_tokens"] = list(suppress)
    if vectors is None:
        out = model.generate(input_ids, **kwargs)
    else:
        if injector is None:
            raise ValueError("engram vectors given without an injector")
        with injector.vectors([vectors]):
            out = model.generate(input_ids, **kwargs)
    return out[0, input_ids.shape[1]:].tolist()
