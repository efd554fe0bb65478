"""What the gates share: recording the last gate values, the signed square root."""

from __future__ import annotations

import torch
from torch import nn


class GateBase(nn.Module):
    last_gate: torch.Tensor | None = None  # None until the first forward
    live_gate: torch.Tensor | None = None

    def _record(self, gate: torch.Tensor, keep: torch.Tensor) -> None:
        """`last_gate`: detached values at the kept positions (statistics); `live_gate`: the gate [B, T] with its
        graph, zero where not kept, kept only while training (for engram.gate_l1)."""
        self.last_gate = gate.detach()[keep].float()
        self.live_gate = gate * keep.to(gate.dtype) if self.training and gate.requires_grad else None


def signed_sqrt(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return x.abs().clamp_min(eps).sqrt() * x.sign()
