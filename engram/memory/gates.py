"""Gates: decide per token how much of the retrieved memory enters the residual stream.

Both map `(h [B, T, H], e [B, T, E], keep [B, T])` to the residual `out [B, T, H]` (zero where `keep` is False) and
keep the last forward's gate values (detached, only where `keep`) in `last_gate` for statistics.

`gate_bias` means the same in every gate: a fixed offset (not trained) added to the gate's logit before the
sigmoid. -5 makes a fresh gate nearly closed (sigmoid(-5) = 0.007), 0 half open; training can still open or shut
the gate through its trained weights.

- `MLPGate` (gate=mlp, seed PoC): `r = proj(e)`, `g = sigmoid(MLP([h, r]) + gate_bias)`, `out = g * r`; the MLP's
  last bias starts at 0, so at initialisation this is the seed's MLP whose last bias started at `gate_bias`.
- `ContextGate` (gate=context, DeepSeek paper): `alpha = sigmoid(signed_sqrt(<RMSNorm(h), RMSNorm(W_k e)> / sqrt(H))
  + gate_bias)`, `v = alpha * W_v e`, `out = v + SiLU(causal depthwise conv1d(RMSNorm(v)))` with kernel
  `conv_kernel`, dilation `max_ngram`, zero-initialised (so it starts as the identity on v).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class _GateBase(nn.Module):
    last_gate: torch.Tensor | None

    def _record(self, gate: torch.Tensor, keep: torch.Tensor) -> None:
        self.last_gate = gate.detach()[keep].float()


class MLPGate(_GateBase):
    def __init__(self, hidden_size: int, mem_dim: int, gate_bias: float = -5.0) -> None:
        super().__init__()
        self.proj = nn.Identity() if mem_dim == hidden_size else nn.Linear(mem_dim, hidden_size, bias=False)
        width = max(16, hidden_size // 4)
        self.mlp = nn.Sequential(nn.Linear(2 * hidden_size, width), nn.SiLU(), nn.Linear(width, 1))
        nn.init.zeros_(self.mlp[-1].bias)
        self.gate_bias = float(gate_bias)
        self.last_gate = None

    def forward(
        self, h: torch.Tensor, e: torch.Tensor, keep: torch.Tensor, cache: dict | None = None
    ) -> torch.Tensor:
        r = self.proj(e)
        g = torch.sigmoid(self.mlp(torch.cat([h, r], dim=-1)) + self.gate_bias)  # [B, T, 1]
        self._record(g[..., 0], keep)
        return g * r * keep.unsqueeze(-1)


def signed_sqrt(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return x.abs().clamp_min(eps).sqrt() * x.sign()


class ContextGate(_GateBase):
    def __init__(
        self, hidden_size: int, mem_dim: int, gate_bias: float = 0.0, conv_kernel: int = 4, dilation: int = 3
    ) -> None:
        super().__init__()
        self.hidden_size, self.gate_bias = hidden_size, float(gate_bias)
        self.key_proj = nn.Linear(mem_dim, hidden_size)
        self.value_proj = nn.Linear(mem_dim, hidden_size)
        self.key_norm = nn.RMSNorm(hidden_size)
        self.query_norm = nn.RMSNorm(hidden_size)
        self.conv_norm = nn.RMSNorm(hidden_size, eps=1e-5)
        self.conv = nn.Conv1d(
            hidden_size, hidden_size, conv_kernel, groups=hidden_size, bias=False, dilation=dilation
        )
        nn.init.zeros_(self.conv.weight)
        # zero biases: a fresh memory (small rows) then adds ~alpha * |W_v e|, so gate_bias=-5 is close to a no-op
        nn.init.zeros_(self.key_proj.bias)
        nn.init.zeros_(self.value_proj.bias)
        self.context = (conv_kernel - 1) * dilation  # positions of past values the conv reads
        self.last_gate = None

    def forward(
        self, h: torch.Tensor, e: torch.Tensor, keep: torch.Tensor, cache: dict | None = None
    ) -> torch.Tensor:
        """`cache` (cached decoding): holds the last `context` normalised values of earlier steps; it is read
        (when present) and rewritten, so one token at a time gives the same result as the whole sequence."""
        k = self.key_norm(self.key_proj(e))
        q = self.query_norm(h)
        score = (k * q).sum(-1) / math.sqrt(self.hidden_size)
        alpha = torch.sigmoid(signed_sqrt(score) + self.gate_bias)  # [B, T]
        self._record(alpha, keep)
        mask = keep.unsqueeze(-1).to(e.dtype)
        value = alpha.unsqueeze(-1) * self.value_proj(e) * mask  # padded / memory-less positions stay zero
        normed = self.conv_norm(value)  # [B, T, H]
        T = normed.shape[1]
        if cache is not None and "conv" in cache:
            past = cache["conv"]
        else:
            past = normed.new_zeros(normed.shape[0], self.context, normed.shape[2])  # causal zero padding
        seq = torch.cat([past, normed], dim=1)
        if cache is not None:
            cache["conv"] = seq[:, -self.context :].detach().clone()
        # causal depthwise conv as k shifted multiply-adds (same maths as F.conv1d on seq, much faster on CPU for
        # the few positions of a decoding step): output t reads seq[t + j * dilation], j = 0..k-1
        w, d = self.conv.weight[:, 0, :], self.conv.dilation[0]
        y = sum(seq[:, j * d : j * d + T] * w[:, j] for j in range(w.shape[1]))
        return (value + F.silu(y)) * mask
