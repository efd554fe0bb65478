"""What the gates share: recording the last gate values, the signed square root."""

from __future__ import annotations

import torch
from torch import nn


class GateBase(nn.Module):
    last_gate: torch.Tensor | None

    def _record(self, gate: torch.Tensor, keep: torch.Tensor) -> None:
        self.last_gate = gate.detach()[keep].float()


def signed_sqrt(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return x.abs().clamp_min(eps).sqrt() * x.sign()
