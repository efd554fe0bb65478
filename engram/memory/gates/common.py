"""What the gates share: the signed square root."""

from __future__ import annotations

import torch


def signed_sqrt(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return x.abs().clamp_min(eps).sqrt() * x.sign()
