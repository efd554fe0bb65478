"""The paper's memory in one file: DeepSeek Engram (arXiv 2601.07372) as `engram=deepseek` computes it.

Read top to bottom, a forward of `EngramLM` is, at each memory layer:
  1. hash: every position's last 2..max_ngram token ids (vocabulary-compressed) are mixed with per-layer odd
     multipliers (multiply, XOR) and taken modulo one distinct prime per head: one row per head;
  2. look up: the heads' rows of one embedding table (each head has its own block), concatenated;
  3. gate: alpha = sigmoid(signed_sqrt(<RMSNorm(h), RMSNorm(W_k e)> / sqrt(H)) + gate_bias), v = alpha * W_v e;
  4. short conv: out = v + SiLU(causal depthwise conv(RMSNorm(v))), kernel context.conv_kernel, dilation max_ngram;
  5. residual: the layer's input hidden state h becomes h + out.
A reading copy, not the code that trains: no registry, no other hash / gate / address kind, no offloaded tables, no
cached decoding (full forwards only), memories at decoder layers only, none of the controls (key_shuffle,
table_size=1). The modular path (engram/memory/, engram/models/engram_model.py) computes the same numbers
(tests/test_reference.py), and the state_dict keys are the same (`memories.{layer}.table.weight`,
`memories.{layer}.gate.*`), so its memories load here with `load_state_dict`.
"""

from __future__ import annotations

import math
from functools import partial
from itertools import count
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LAYER_SEED_STRIDE = 10007  # the official demo's per-layer offset of the multipliers' seed


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % f for f in range(2, math.isqrt(n) + 1))


def head_primes(cfg: Any) -> dict[int, list[int]]:
    """Each head's table size, layer -> [order 2 heads..., order 3 heads...]: distinct primes, each the smallest
    unused one above the previous head's (an order's first head: >= its engram.table_size)."""
    orders = cfg.max_ngram - 1
    sizes = [cfg.table_size] * orders if isinstance(cfg.table_size, int) else list(cfg.table_size)
    used: set[int] = set()
    out: dict[int, list[int]] = {}
    for layer in cfg.layers:  # distinct across layers too, so the layers' order matters
        out[layer] = []
        for size in sizes:
            last = size - 1
            for _ in range(cfg.heads):
                last = next(p for p in count(last + 1) if p not in used and is_prime(p))
                used.add(last)
                out[layer].append(last)
    return out


class NgramHash(nn.Module):
    """Token ids [B, T] -> table rows [B, T, (max_ngram - 1) * heads] (head blocks laid end to end)."""

    def __init__(self, cfg: Any, layer: int, vocab_size: int, pad_id: int, token_map: torch.Tensor | None,
                 primes: list[int]) -> None:
        super().__init__()
        self.max_ngram, self.pad_id, self.primes = cfg.max_ngram, pad_id, primes
        # the multipliers' bound lives in the compressed vocabulary: products of ids stay below int64's range
        compressed = vocab_size if token_map is None else int(token_map.max()) + 1
        bound = max(1, np.iinfo(np.int64).max // compressed // 2)
        draw = np.random.default_rng(cfg.seed + LAYER_SEED_STRIDE * layer)
        multipliers = draw.integers(0, bound, size=cfg.max_ngram, dtype=np.int64) * 2 + 1
        # non-persistent: derived from the config, so not part of the state_dict
        self.register_buffer("multipliers", torch.from_numpy(multipliers), persistent=False)
        self.register_buffer("offsets", torch.tensor([0, *np.cumsum(primes)[:-1]], dtype=torch.long),
                             persistent=False)
        identity = torch.arange(vocab_size)
        self.register_buffer("token_map", identity if token_map is None else token_map.long(), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.token_map[ids]  # ids whose text normalises alike share one compressed id
        T, back = x.shape[1], self.max_ngram - 1
        before = F.pad(x, (back, 0), value=int(self.token_map[self.pad_id]))  # positions before the start: pad
        heads = len(self.primes) // back
        mix, slots = x * self.multipliers[0], []
        for k in range(1, self.max_ngram):  # mix of order k + 1: XOR of the last k + 1 ids times their multipliers
            mix = mix ^ (before[:, back - k : back - k + T] * self.multipliers[k])  # within int64: the bound
            slots += [torch.remainder(mix, p) for p in self.primes[(k - 1) * heads : k * heads]]  # floor modulo
        return torch.stack(slots, dim=-1) + self.offsets


class ContextGate(nn.Module):
    """(h [B, T, H], e [B, T, E], keep [B, T]) -> the residual [B, T, H] (zero where not keep)."""

    def __init__(self, hidden_size: int, mem_dim: int, cfg: Any) -> None:
        super().__init__()
        self.gate_bias = float(cfg.gate_bias)
        self.query_norm, self.key_norm = nn.RMSNorm(hidden_size), nn.RMSNorm(hidden_size)
        self.key_proj, self.value_proj = nn.Linear(mem_dim, hidden_size), nn.Linear(mem_dim, hidden_size)
        for bias in (self.key_proj.bias, self.value_proj.bias):
            nn.init.zeros_(bias)
        # short causal depthwise conv, zero at the start (the identity on v); dilation max_ngram as the paper
        self.conv_norm = nn.RMSNorm(hidden_size, eps=1e-5)
        self.conv = nn.Conv1d(hidden_size, hidden_size, cfg.context.conv_kernel, dilation=cfg.max_ngram,
                              groups=hidden_size, bias=False)
        nn.init.zeros_(self.conv.weight)

    def forward(self, h: torch.Tensor, e: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        score = (self.query_norm(h) * self.key_norm(self.key_proj(e))).sum(-1) / math.sqrt(h.shape[-1])
        signed_sqrt = score.abs().clamp_min(1e-6).sqrt() * score.sign()
        alpha = torch.sigmoid(signed_sqrt + self.gate_bias)  # [B, T]
        keep = keep.unsqueeze(-1).to(e.dtype)
        v = alpha.unsqueeze(-1) * self.value_proj(e) * keep
        past = (self.conv.kernel_size[0] - 1) * self.conv.dilation[0]  # left padding only: causal
        y = self.conv(F.pad(self.conv_norm(v).transpose(1, 2), (past, 0))).transpose(1, 2)
        return (v + F.silu(y)) * keep


class EngramMemory(nn.Module):
    """One layer's memory: ids -> hash -> table rows -> gated residual."""

    def __init__(self, cfg: Any, layer: int, hidden_size: int, vocab_size: int, pad_id: int,
                 token_map: torch.Tensor | None, primes: list[int]) -> None:
        super().__init__()
        self.hash = NgramHash(cfg, layer, vocab_size, pad_id, token_map, primes)
        head_dim = max(1, cfg.dim // cfg.heads)
        self.table = nn.Embedding(sum(primes), head_dim)
        nn.init.normal_(self.table.weight, std=cfg.init_std)
        self.gate = ContextGate(hidden_size, head_dim * len(primes), cfg)

    def forward(self, h: torch.Tensor, ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        e = self.table(self.hash(ids)).flatten(-2)  # [B, T, heads * head_dim]: the heads side by side
        return self.gate(h, e.to(h.dtype), keep)


class EngramLM(nn.Module):
    """A Llama-family causal LM (`lm.model.layers`) with a memory at each of `cfg.layers`.

    `cfg`: an EngramConfig (engram/config/schema.py) with hash=deepseek, gate=context and `layers` a list.
    `token_map` [vocab_size]: the demo's vocabulary compression, `engram.memory.hashing.build_token_map(tokenizer,
    vocab_size)` (None: no compression). `pad_id`: what padded positions hash as (the tokenizer's pad id).
    """

    def __init__(self, lm: nn.Module, cfg: Any, token_map: torch.Tensor | None = None, pad_id: int = 0) -> None:
        super().__init__()
        self.lm, self.pad_id = lm, pad_id
        primes = head_primes(cfg)
        hidden, vocab = lm.config.hidden_size, lm.config.vocab_size
        self.memories = nn.ModuleDict({
            str(layer): EngramMemory(cfg, layer, hidden, vocab, pad_id, token_map, primes[layer])
            for layer in cfg.layers
        })

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any) -> Any:
        """The LM's forward (labels etc. pass through), each memory layer's input plus its memory's output."""
        keep = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        ids = torch.where(keep, input_ids, self.pad_id)  # padding hashes as the pad id, whatever it holds
        hooks = [self.lm.model.layers[int(layer)].register_forward_pre_hook(
                     partial(add_memory, memory, ids, keep), with_kwargs=True)
                 for layer, memory in self.memories.items()]
        try:
            return self.lm(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        finally:  # the hooks hold this call's ids: never leave them on the LM
            for hook in hooks:
                hook.remove()


def add_memory(memory: EngramMemory, ids: torch.Tensor, keep: torch.Tensor, layer: nn.Module, args: tuple,
               kwargs: dict) -> tuple[tuple, dict]:
    """Forward pre-hook on a decoder layer: its input hidden state h becomes h + memory(h)."""
    if args:
        return (args[0] + memory(args[0], ids, keep), *args[1:]), kwargs
    h = kwargs["hidden_states"]
    return args, {**kwargs, "hidden_states": h + memory(h, ids, keep)}
