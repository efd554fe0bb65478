"""Frozen-prefix activation cache: the layers below the lowest trainable point compute once per example.

When nothing trains below decoder layer `depth` (a memory at layer "final", LoRA on the top layers only), the hidden
states entering layer `depth` are the same in every epoch. `PrefixCache` keeps them per training example (keyed by
the example's real token ids) and a training step runs only layers[depth:] + norm + the LM head at the answer
positions (engram/models/layer_runner.py). Exactly the same loss and gradients as the full forward, to float
tolerance: right padding + causal attention means a real token's states never depend on the padding, and the
states of frozen, dropout-free layers depend on nothing else.

`cache_depth(model)` finds the point: the lowest layer holding a parameter that trains, a memory, or a dropout that
is active in training; 0 (no cache) if an embedding or anything outside the decoder trains (a gated LoRA's gate).
The cache re-checks that point on every use and refuses (`PrefixCacheError`) once something below it trains.
Entries belong to the dtype and device the frozen layers had when they were computed: when the trainer converts the
model afterwards (trainer.precision=64-true or bf16-true, a GPU), they are dropped and recomputed in the new one.
Entries beyond `max_bytes` are not stored (those examples run the bottom layers every time: slower, still exact).
Evaluation and generation never use it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from engram.models.engram_model import EngramModel, causal_lm
from engram.models.layer_runner import SharedPrefix, bottom_hidden

log = logging.getLogger(__name__)


class PrefixCacheError(RuntimeError):
    """The cached activations no longer hold: a weight below the cache point trains."""


def cache_depth(model: nn.Module) -> int:
    """The decoder layer whose input is the lowest point that can change in training (see the module doc)."""
    lm = causal_lm(model)
    layers = lm.model.layers
    depth = len(layers)
    if isinstance(model, EngramModel):
        depth = min([depth, *model.layers])
    layer_of = {id(p): i for i, layer in enumerate(layers) for p in layer.parameters()}
    top = {id(p) for m in (lm.model.norm, lm.lm_head) for p in m.parameters()}
    embeddings = {id(p) for p in lm.model.embed_tokens.parameters()}
    memories = {id(p) for p in model.memories.parameters()} if isinstance(model, EngramModel) else set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in memories:
            continue
        if id(p) in embeddings or (id(p) not in layer_of and id(p) not in top):
            return 0
        depth = min(depth, layer_of.get(id(p), depth))
    if float(getattr(lm.config, "attention_dropout", 0.0) or 0.0) > 0:
        return 0
    for i, layer in enumerate(layers[:depth]):
        if any(isinstance(m, nn.Dropout) and m.p > 0 for m in layer.modules()):
            return i
    return depth


def _key(ids: torch.Tensor) -> bytes:
    """One example's cache key: its real token ids (int64 bytes)."""
    return ids.detach().cpu().long().numpy().tobytes()


def _keys(input_ids: torch.Tensor, lengths: torch.Tensor) -> list[bytes]:
    return [_key(input_ids[i, : int(n)]) for i, n in enumerate(lengths.tolist())]


class PrefixCache:
    """Hidden states entering layer `depth`, per example; see the module doc."""

    def __init__(self, model: nn.Module, depth: int | None = None, max_bytes: float = 4 * 2**30) -> None:
        self.model = model
        self.depth = cache_depth(model) if depth is None else int(depth)
        if self.depth <= 0:
            raise PrefixCacheError("engram: nothing below the lowest trainable layer to cache (depth 0)")
        self.max_bytes = float(max_bytes)
        self.entries: dict[bytes, torch.Tensor] = {}
        self.bytes = 0
        self.hits = self.misses = 0
        self.shared: SharedPrefix | None = None  # set by fill(): the ids every training sequence starts with
        self.fill_seconds = 0.0  # time spent in fill()
        self.computed_in = self._frozen_kind()

    def _frozen_kind(self) -> tuple[torch.dtype, torch.device]:
        """The dtype and device the frozen layers compute in now."""
        weight = next(causal_lm(self.model).model.layers[0].parameters())
        return weight.dtype, weight.device

    def _follow_model(self) -> None:
        """Drop states computed in another dtype or on another device than the frozen layers' current ones (the
        trainer converts the model after `fill`): the steps must see what the full forward would compute."""
        now = self._frozen_kind()
        if now == self.computed_in:
            return
        log.info("prefix cache: the model now computes in %s on %s (was %s on %s); recomputing its %d entries",
                 *now, *self.computed_in, len(self.entries))
        self.entries.clear()
        self.bytes = 0
        if self.shared is not None:
            self.shared = SharedPrefix(self.model, self.shared.ids.tolist(), self.depth)
        self.computed_in = now

    def check(self) -> None:
        """Refuse once a weight below the cache point trains (the cached activations would be stale)."""
        now = cache_depth(self.model)
        if now < self.depth:
            raise PrefixCacheError(
                f"engram: the prefix cache holds activations entering layer {self.depth}, but layer {now} and below "
                "now train (or run dropout); turn it off (train.prefix_cache=false) or keep those layers frozen")

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, T, H] states entering layer `depth` for a right-padded batch (zeros at padding), computing and
        storing the examples not cached yet."""
        self.check()
        self._follow_model()
        lengths = attention_mask.sum(1)
        keys = _keys(input_ids, lengths)
        missing = [i for i, k in enumerate(keys) if k not in self.entries]
        fresh: dict[int, torch.Tensor] = {}
        if missing:
            rows = torch.tensor(missing, device=input_ids.device)
            width = int(lengths[rows].max())
            with torch.no_grad():
                states = bottom_hidden(self.model, input_ids[rows, :width], attention_mask[rows, :width], self.depth,
                                       self.shared)
            for j, i in enumerate(missing):
                fresh[i] = states[j, : int(lengths[i])]
                self._store(keys[i], fresh[i])
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        first = next(iter(fresh.values())) if fresh else self.entries[keys[0]]
        out = first.new_zeros((input_ids.shape[0], input_ids.shape[1], first.shape[-1]))
        for i, k in enumerate(keys):
            state = fresh.get(i)
            out[i, : int(lengths[i])] = state if state is not None else self.entries[k]
        return out

    def fill(self, sequences: Sequence[Sequence[int]], batch_size: int = 32, progress: bool = True) -> None:
        """Compute the states of `sequences` (token ids) in a pre-pass, shortest first so batches hold sequences
        of nearly equal length (little padding)."""
        t0 = time.perf_counter()
        device = next(self.model.parameters()).device
        todo = sorted({tuple(s) for s in sequences if len(s)}, key=len)
        todo = [s for s in todo if _key(torch.tensor(s)) not in self.entries]
        common = _common_prefix(todo)
        if self.shared is None and common >= 2:
            self.shared = SharedPrefix(self.model, todo[0][:common], self.depth)
        batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
        for batch in tqdm(batches, desc=f"prefix cache (layers 0-{self.depth - 1})", unit="batch",
                          disable=not progress):
            width = max(len(s) for s in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long, device=device)
            mask = torch.zeros_like(ids)
            for i, s in enumerate(batch):
                ids[i, : len(s)] = torch.tensor(s, device=device)
                mask[i, : len(s)] = 1
            self.hidden(ids, mask)
        self.fill_seconds += time.perf_counter() - t0
        log.info("prefix cache: %d examples, %.2f GiB, states entering layer %d", len(self.entries),
                 self.bytes / 2**30, self.depth)

    def _store(self, key: bytes, state: torch.Tensor) -> None:
        size = state.numel() * state.element_size()
        if self.bytes + size > self.max_bytes:
            return
        self.entries[key] = state.detach().clone()
        self.bytes += size


def _common_prefix(sequences: Sequence[Sequence[int]]) -> int:
    """How many leading ids all `sequences` share, leaving each at least one id of its own."""
    if len(sequences) < 2:
        return 0
    first, n = sequences[0], min(len(s) for s in sequences) - 1
    for s in sequences[1:]:
        n = next((i for i in range(n) if s[i] != first[i]), n)
    return max(n, 0)


def build_prefix_cache(model: nn.Module, enabled: bool, max_gb: float) -> PrefixCache | None:
    """A cache for training `model`, or None (switched off, or nothing frozen to cache), with one log line."""
    if not enabled:
        return None
    depth = cache_depth(model)
    if depth <= 0:
        log.info("prefix cache off: a weight at the embeddings (or outside the decoder layers) trains")
        return None
    top = len(causal_lm(model).model.layers)
    runs = f"layers {depth}-{top - 1} + norm + head" if depth < top else "norm + head (+ memory)"
    log.info("prefix cache on: layers 0-%d are frozen; training steps run %s from cached activations", depth - 1, runs)
    return PrefixCache(model, depth, max_gb * 2**30)


def train_sequences(datamodule: Any) -> list[list[int]]:
    """The training split's token ids (for `PrefixCache.fill`)."""
    datamodule.setup("fit")
    return [list(s) for s in datamodule.datasets["train"]["input_ids"]]
