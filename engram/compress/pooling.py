"""Pooling a document's hidden states at one layer ([T, d]) into k vectors ([k, d]).

- `mean`: the document split into k contiguous chunks (sizes differ by at most one token), each chunk averaged.
- `attention`: the same chunks, each pooled with single-query dot-product attention whose query is the mean state of
  the whole document (softmax over the chunk of <h_t, mean> / sqrt(d)); parameter-free, so it needs no training.
- `identity`: the states themselves (k must equal the document length); what the injection-equivalence test uses.
- `head`: a learned compression head (engram/compress/head.py), applied by the caller with its trained weights.
"""

from __future__ import annotations

import math

import torch


def chunk_bounds(length: int, k: int) -> list[tuple[int, int]]:
    """[start, end) of k contiguous chunks covering `length` positions; ValueError when k is not in 1..length."""
    if not 1 <= k <= length:
        raise ValueError(f"k={k} vectors need a document of at least {k} tokens (it has {length})")
    edges = [round(i * length / k) for i in range(k + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def chunk_mask(length: int, k: int, device: torch.device | None = None) -> torch.Tensor:
    """Bool [k, length]: row i marks the positions of chunk i."""
    mask = torch.zeros(k, length, dtype=torch.bool, device=device)
    for i, (start, end) in enumerate(chunk_bounds(length, k)):
        mask[i, start:end] = True
    return mask


def mean_pool(states: torch.Tensor, k: int) -> torch.Tensor:
    mask = chunk_mask(states.shape[0], k, states.device).to(states.dtype)
    return (mask @ states) / mask.sum(dim=1, keepdim=True)


def attention_pool(states: torch.Tensor, k: int) -> torch.Tensor:
    query = states.mean(dim=0)
    scores = (states @ query) / math.sqrt(states.shape[-1])  # [T]
    mask = chunk_mask(states.shape[0], k, states.device)
    weights = torch.softmax(scores.expand(k, -1).masked_fill(~mask, float("-inf")), dim=-1)
    return weights @ states


def pool(states: torch.Tensor, k: int, kind: str) -> torch.Tensor:
    """[T, d] -> [k, d] with a parameter-free pooling (`head` needs its weights: CompressionHead)."""
    if states.dim() != 2:
        raise ValueError(f"pooling takes the states of one document, [T, d]; got shape {tuple(states.shape)}")
    if kind == "mean":
        return mean_pool(states, k)
    if kind == "attention":
        return attention_pool(states, k)
    if kind == "identity":
        if k != states.shape[0]:
            raise ValueError(f"identity pooling keeps every token: k={k} must equal the document length "
                             f"{states.shape[0]}")
        return states.clone()
    raise ValueError(f"pooling={kind} is not a parameter-free pooling (one of: mean, attention, identity)")
