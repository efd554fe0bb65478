"""Injection of engram vectors as synthetic tokens: each `[ENGRAM]` placeholder in the input ids is replaced by one
vector at the input of decoder layer N.

    token_id = add_engram_token(model, tokenizer)        # once: "[ENGRAM]" becomes one special token
    injector = EngramInjector(model, token_id, layer=N)  # two forward pre-hooks (PyTorch's public hook API)
    with injector.vectors([v0, v1, ...]):                # one [k_b, d] tensor per sequence of the batch
        model(input_ids=ids) / model.generate(input_ids=ids, ...)
    injector.remove()

Layer 0 is the token embeddings (the same as passing `inputs_embeds`), layer N the hidden state after layer N-1.
Placement is the prompt's business (engram/compress/prompts.py): placeholders at the very start (`prefix`) or where
the document would stand (`replace`). The hooks find the placeholders in each forward's own input ids, so cached
generation works: the prompt forward holds them, decoding steps hold none (generate must not emit the token:
`suppress_tokens=[token_id]`). Gradients flow into the vectors (the compression head trains through this).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

ENGRAM_TOKEN = "[ENGRAM]"


def add_engram_token(model: nn.Module, tokenizer: Any) -> int:
    """Add `[ENGRAM]` to the tokenizer (a special token, never split) and one embedding row for it (the mean of the
    existing rows, deterministic). Idempotent; returns its id. Logits over the original vocabulary do not change."""
    if ENGRAM_TOKEN in tokenizer.get_vocab():
        token_id = int(tokenizer.convert_tokens_to_ids(ENGRAM_TOKEN))
        if token_id < model.get_input_embeddings().weight.shape[0]:
            return token_id
    else:
        tokenizer.add_tokens([ENGRAM_TOKEN], special_tokens=True)
    token_id = int(tokenizer.convert_tokens_to_ids(ENGRAM_TOKEN))
    old = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(max(len(tokenizer), old), mean_resizing=False)
    with torch.no_grad():
        weight = model.get_input_embeddings().weight
        weight[old:] = weight[:old].mean(dim=0)
        out = model.get_output_embeddings()
        if out is not None and out.weight.data_ptr() != weight.data_ptr():
            out.weight[old:] = out.weight[:old].mean(dim=0)
    return token_id


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers of a Llama-family causal LM (`model.model.layers`)."""
    return model.get_decoder().layers


class EngramInjector:
    """Owns the hooks that put engram vectors at the placeholder positions of decoder layer `layer`'s input."""

    def __init__(self, model: nn.Module, token_id: int, layer: int) -> None:
        layers = decoder_layers(model)
        if not 0 <= layer < len(layers):
            raise ValueError(f"inject layer {layer} is outside the model's decoder layers 0..{len(layers) - 1}")
        self.token_id, self.layer = int(token_id), int(layer)
        self._ids: torch.Tensor | None = None
        self._vectors: list[torch.Tensor] | None = None
        self._handles = [
            model.get_decoder().register_forward_pre_hook(self._record_ids, with_kwargs=True),
            layers[layer].register_forward_pre_hook(self._replace, with_kwargs=True),
        ]

    @contextmanager
    def vectors(self, per_sequence: Sequence[torch.Tensor]) -> Iterator[None]:
        """Inject `per_sequence[b]` ([k_b, d]) into sequence b of every forward inside the block."""
        self._vectors = list(per_sequence)
        try:
            yield
        finally:
            self._vectors, self._ids = None, None

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    # ---------------------------------------------------------------- hooks

    def _record_ids(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        self._ids = ids if isinstance(ids, torch.Tensor) else None

    def _replace(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        if self._vectors is None or self._ids is None:
            return None
        mask = self._ids == self.token_id
        if not bool(mask.any()):
            return None  # a decoding step: the placeholders are in the KV cache already
        hidden = args[0] if args else kwargs["hidden_states"]
        if hidden.shape[:2] != mask.shape:
            raise RuntimeError(f"hidden states {tuple(hidden.shape[:2])} do not line up with the ids "
                               f"{tuple(mask.shape)}")
        counts = mask.sum(dim=1).tolist()
        if len(self._vectors) != len(counts):
            raise ValueError(f"{len(self._vectors)} sets of engram vectors for a batch of {len(counts)} sequences")
        for b, (count, vecs) in enumerate(zip(counts, self._vectors, strict=True)):
            if count != vecs.shape[0]:
                raise ValueError(f"sequence {b} has {count} {ENGRAM_TOKEN} placeholders but {vecs.shape[0]} vectors")
        source = torch.cat([v.to(hidden.dtype) for v in self._vectors], dim=0)
        hidden = hidden.masked_scatter(mask.unsqueeze(-1), source)
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}
