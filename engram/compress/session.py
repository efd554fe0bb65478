"""A loaded model ready for compression experiments: the frozen causal LM with `[ENGRAM]` in its vocabulary, one
injector per layer, and the helpers that turn documents and questions into states, keys and engrams."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from rich.progress import track
from torch import nn

from engram.compress.documents import Document
from engram.compress.extract import compress, layer_states, token_ids
from engram.compress.head import CompressionHead
from engram.compress.inject import EngramInjector, add_engram_token
from engram.compress.store import Engram, StoreSpec
from engram.models.loading import load_model


def model_id(model_cfg: Any) -> str:
    """What a store records as the model: its config name plus what pins its weights."""
    name = str(model_cfg.get("name"))
    if name == "tiny":
        return f"tiny(seed={model_cfg.get('seed', 0)},layers={model_cfg.get('num_layers', 2)}," \
               f"hidden={model_cfg.get('hidden_size', 64)})"
    source = model_cfg.get("path") or model_cfg.get("name_or_path")
    return f"{name}:{source}" if source else name


@dataclass
class Session:
    model: nn.Module
    tokenizer: Any
    token_id: int
    model_id: str
    _injectors: dict[int, EngramInjector] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        return int(self.model.config.num_hidden_layers)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id)

    def injector(self, layer: int) -> EngramInjector:
        if layer not in self._injectors:
            self._injectors[layer] = EngramInjector(self.model, self.token_id, layer)
        return self._injectors[layer]

    def spec(self, layer: int, pooling: str, key_layer: int, width: int = 0) -> StoreSpec:
        return StoreSpec(self.model_id, int(layer), self.dim, str(pooling), int(key_layer), int(width))

    def doc_states(self, docs: Sequence[Document], layers: Iterable[int],
                   label: str = "extracting") -> list[dict[int, torch.Tensor]]:
        """Per document, {layer: [T, d]} (one forward per document for all layers)."""
        wanted = sorted(set(layers))
        return [layer_states(self.model, token_ids(self.tokenizer, d.text), wanted)
                for d in track(docs, description=label, transient=True)]

    def key(self, text: str, layer: int) -> torch.Tensor:
        """Retrieval key of a text: the mean of its states at `layer`."""
        return layer_states(self.model, token_ids(self.tokenizer, text), [layer])[layer].mean(dim=0)

    def engram(self, doc: Document, states: dict[int, torch.Tensor], layer: int, key_layer: int, k: int,
               pooling: str, head: CompressionHead | None = None) -> Engram:
        vectors = compress(states[layer], k, pooling, head)
        return Engram(doc.doc_id, doc.title, vectors, states[key_layer].mean(dim=0), int(states[layer].shape[0]))


def open_session(model_cfg: Any) -> Session:
    """Load the model named by a model config (engram/models/loading.py), frozen, with `[ENGRAM]` added."""
    model, tokenizer = load_model(model_cfg)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    token_id = add_engram_token(model, tokenizer)
    return Session(model, tokenizer, token_id, model_id(model_cfg))
