"""gate=context (DeepSeek paper): `alpha = sigmoid(signed_sqrt(<RMSNorm(h), RMSNorm(W_k e)> / sqrt(H)) + gate_bias)`,
`v = alpha * W_v e`, `out = v + SiLU(causal depthwise conv1d(RMSNorm(v)))` with kernel `engram.context.conv_kernel`,
dilation `engram.max_ngram` (the conv steps over whole n-grams), zero-initialised (so it starts as the identity on
v)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engram.config.rules import check as rule
from engram.config.rules import is_int
from engram.lazy import implementation


@dataclass
class Params:
    """`engram.context.*` (gate=context): the causal conv on the gated values."""

    conv_kernel: int = 4  # kernel size of the causal depthwise conv on the gated values


def check(e: Any) -> None:
    k = e.context.conv_kernel
    rule(is_int(k) and 1 <= k <= 64, "engram.context.conv_kernel", k, "must be an integer in [1, 64]")


__getattr__ = implementation(__name__, "Gate", "ContextGate")  # the torch side: _context.py
