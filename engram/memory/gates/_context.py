"""gate=context in torch (the kind, its keys and rules: context.py)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engram.memory.gates.common import signed_sqrt


class ContextGate(nn.Module):
    def __init__(
        self, hidden_size: int, mem_dim: int, gate_bias: float = 0.0, conv_kernel: int = 4, max_ngram: int = 3
    ) -> None:
        """`conv_kernel`: engram.context.conv_kernel; the conv's dilation is `max_ngram` (engram.max_ngram), so it
        steps over whole n-grams."""
        super().__init__()
        dilation = int(max_ngram)
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

    def forward(
        self, h: torch.Tensor, e: torch.Tensor, keep: torch.Tensor, cache: dict | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(residual, alpha [B, T]). `cache` (cached decoding): holds the last `context` normalised values of
        earlier steps; it is read (when present) and rewritten, so one token at a time gives the same result as the
        whole sequence."""
        k = self.key_norm(self.key_proj(e))
        q = self.query_norm(h)
        score = (k * q).sum(-1) / math.sqrt(self.hidden_size)
        alpha = torch.sigmoid(signed_sqrt(score) + self.gate_bias)  # [B, T]
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
        return (value + F.silu(y)) * mask, alpha


Gate = ContextGate  # what the registry builds for gate=context (engram/config/sections.py's build)
