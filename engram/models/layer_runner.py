"""Run a slice of a Llama-family causal LM's decoder: embeddings -> layers[:k], or layers[k:] -> norm -> LM head.

The slices are the model's own modules, called as `LlamaModel.forward` calls them (transformers' causal-mask and
rotary helpers, positions from 0, no KV cache), so running `bottom` then `top` gives the full forward's hidden states
at every real position of a right-padded batch (padding only ever sits after a row's real tokens, and causal
attention never looks forward). Nothing is replaced or patched: hooks registered on a layer or on the final norm
(the Engram memories) fire as in a full forward. Used by the frozen-prefix activation cache
(engram/training/prefix_cache.py) to run only the layers that train.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from transformers.masking_utils import create_causal_mask

from engram.models.engram_model import EngramModel, causal_lm


def run_layers(lm: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor | None,
               layers: Sequence[nn.Module]) -> torch.Tensor:
    """`hidden` [B, T, H] (positions 0..T-1) through `layers`, with the model's causal mask and rotary embedding."""
    if not len(layers):
        return hidden
    position_ids = torch.arange(hidden.shape[1], device=hidden.device)[None]
    mask = create_causal_mask(config=lm.config, inputs_embeds=hidden, attention_mask=attention_mask, cache=None,
                              position_ids=position_ids)
    position_embeddings = lm.model.rotary_emb(hidden, position_ids=position_ids)
    for layer in layers:
        hidden = layer(hidden, attention_mask=mask, position_ids=position_ids, position_embeddings=position_embeddings)
    return hidden


def bottom_hidden(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                  depth: int) -> torch.Tensor:
    """The hidden states entering decoder layer `depth` (`depth` = number of layers: the final norm's input)."""
    lm = causal_lm(model)
    hidden = lm.model.embed_tokens(input_ids)
    return run_layers(lm, hidden, attention_mask, lm.model.layers[:depth])


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
