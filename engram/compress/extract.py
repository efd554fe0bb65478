"""Extraction: run a document through the frozen model and keep the hidden states at the requested layers.

Layer N means the input of decoder layer N, i.e. `hidden_states[N]` of a transformers forward: layer 0 is the token
embeddings, layer `num_layers` the last layer's output (before the final norm). Injection (engram/compress/inject.py)
puts vectors back at the same place, so layer-0 states injected at layer 0 are the document's own embeddings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from engram.compress.head import CompressionHead
from engram.compress.pooling import pool


def token_ids(tokenizer: object, text: str) -> list[int]:
    """The document's token ids, without special tokens (the same ids the full-context prompt holds)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])  # type: ignore[operator]


@torch.no_grad()
def layer_states(model: nn.Module, ids: Sequence[int], layers: Iterable[int]) -> dict[int, torch.Tensor]:
    """{layer: [T, d]} hidden states of one document (batch of one, so no padding enters the states)."""
    out = model(input_ids=torch.tensor([list(ids)]), output_hidden_states=True, use_cache=False)
    return {layer: out.hidden_states[layer][0].detach() for layer in layers}


def compress(states: torch.Tensor, k: int, pooling: str, head: CompressionHead | None = None) -> torch.Tensor:
    """[T, d] -> [k, d] engram vectors; `pooling=head` needs the trained head."""
    if pooling == "head":
        if head is None:
            raise ValueError("pooling=head needs a trained CompressionHead")
        with torch.no_grad():
            return head(states)
    return pool(states, k, pooling)
