"""Run a slice of a Llama-family causal LM's decoder: embeddings -> layers[:k], or layers[k:] -> norm -> LM head.

The slices are the model's own modules, called as `LlamaModel.forward` calls them (transformers' causal-mask and
rotary helpers, positions from 0, no KV cache), so running `bottom` then `top` gives the full forward's hidden states
at every real position of a right-padded batch (padding only ever sits after a row's real tokens, and causal
attention never looks forward). Nothing is replaced or patched: hooks registered on a layer or on the final norm
(the Engram memories) fire as in a full forward. Used by the frozen-prefix activation cache
(engram/training/prefix_cache.py) to run only the layers that train.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask

from engram.models.engram_model import EngramModel, causal_lm


def run_layers(lm: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor | None,
               layers: Sequence[nn.Module], cache: Cache | None = None) -> torch.Tensor:
    """`hidden` [B, T, H] through `layers`, with the model's causal mask and rotary embedding; positions start
    after what `cache` (a KV cache of these layers, extended in place) holds, else at 0."""
    if not len(layers):
        return hidden
    start = cache.get_seq_length() if cache is not None else 0
    position_ids = torch.arange(start, start + hidden.shape[1], device=hidden.device)[None]
    mask = create_causal_mask(config=lm.config, inputs_embeds=hidden, attention_mask=attention_mask, cache=cache,
                              position_ids=position_ids)
    position_embeddings = lm.model.rotary_emb(hidden, position_ids=position_ids)
    for layer in layers:
        hidden = layer(hidden, attention_mask=mask, position_ids=position_ids, position_embeddings=position_embeddings,
                       cache=cache, use_cache=cache is not None)
    return hidden


class SharedPrefix:
    """Token ids every sequence starts with (a chat template's system prompt: 24 of SmolLM2's ~47 tokens per
    exact-match fact), run through layers[:depth] once; `bottom_hidden` then runs only the rest of each sequence,
    attending to this prefix's keys and values."""

    def __init__(self, model: nn.Module, ids: Sequence[int], depth: int) -> None:
        lm = causal_lm(model)
        self.ids = torch.tensor(list(ids), dtype=torch.long)
        self.cache = DynamicCache(config=lm.config)
        with torch.no_grad():
            embedded = lm.model.embed_tokens(self.ids.to(lm.device)[None])
            self.hidden = run_layers(lm, embedded, None, lm.model.layers[:depth], self.cache)[0]

    def __len__(self) -> int:
        return len(self.ids)

    def starts(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> bool:
        """Whether every row begins with the prefix and has at least one real token after it."""
        n = len(self)
        return (input_ids.shape[1] > n and bool((input_ids[:, :n].cpu() == self.ids).all())
                and bool(attention_mask[:, : n + 1].all()))

    def expanded(self, rows: int) -> Cache:
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(rows)
        return cache


def bottom_hidden(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, depth: int,
                  shared: SharedPrefix | None = None) -> torch.Tensor:
    """The hidden states entering decoder layer `depth` (`depth` = number of layers: the final norm's input); with
    `shared` (a prefix every row starts with) only the positions after it are computed."""
    lm = causal_lm(model)
    if shared is None or attention_mask is None or not shared.starts(input_ids, attention_mask):
        return run_layers(lm, lm.model.embed_tokens(input_ids), attention_mask, lm.model.layers[:depth])
    n, rows = len(shared), input_ids.shape[0]
    rest = run_layers(lm, lm.model.embed_tokens(input_ids[:, n:]), attention_mask, lm.model.layers[:depth],
                      shared.expanded(rows))
    return torch.cat([shared.hidden.expand(rows, -1, -1), rest], 1)


@contextmanager
def memory_ids(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
               prompt_lengths: torch.Tensor | None) -> Iterator[None]:
    """For an EngramModel: record this batch's ids in its context, as its id hook does at the start of a full
    forward, so the memories' hooks on the layers (or the final norm) that run next see them. A no-op otherwise."""
    if not isinstance(model, EngramModel):
        yield
        return
    with model.context.call(prompt_lengths):
        model.context.begin_forward(input_ids, attention_mask, 0, prompt_lengths)
        yield


def final_states(model: nn.Module, hidden: torch.Tensor, input_ids: torch.Tensor,
                 attention_mask: torch.Tensor | None, prompt_lengths: torch.Tensor | None, depth: int) -> torch.Tensor:
    """`hidden` (entering layer `depth`) through layers[depth:]: the final norm's input (memories at those layers
    included; a memory at "final" is added by the norm's own hook, see `top_logits`)."""
    lm = causal_lm(model)
    with memory_ids(model, input_ids, attention_mask, prompt_lengths):
        return run_layers(lm, hidden, attention_mask, lm.model.layers[depth:])


def top_logits(model: nn.Module, hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
               prompt_lengths: torch.Tensor | None, depth: int, rows: torch.Tensor,
               cols: torch.Tensor) -> torch.Tensor:
    """`hidden` (entering layer `depth`) through layers[depth:], the final norm (memories included) and the LM head
    at positions (rows[i], cols[i]) only: logits [N, V]."""
    lm = causal_lm(model)
    with memory_ids(model, input_ids, attention_mask, prompt_lengths):
        hidden = run_layers(lm, hidden, attention_mask, lm.model.layers[depth:])
        normed = lm.model.norm(hidden)
    return lm.lm_head(normed[rows, cols])
