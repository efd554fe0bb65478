"""hash=deepseek: DeepSeek's Engram n-gram hash, bit-identical to the official demo (`engram_demo_v1.py`).

Optional vocabulary compression, per-layer odd multipliers from `numpy.random.default_rng(seed + 10007 * layer)`,
`mix_n = XOR_{k<n} (x_{t-k} * m_k)` (int64, wrapping; positions before the start read the pad id) for
n = 2..max_ngram, and `mix_n % P` for one distinct prime P per head (orders outer, heads inner).

Two controls for language-model claims (is it the table's n-gram memory that helps, or the parameters around it?):
`engram.table_size=1` gives every head exactly one row (every n-gram reads the same vector), and
`engram.deepseek.key_shuffle=true` hashes fixed random ids of each position instead of its tokens (the same tables,
heads, gate and conv, but no n-gram identity in the keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engram.config.rules import check as rule
from engram.lazy import implementation

one_row_control = True  # engram.table_size=1 is allowed: the capacity-1 control, one row per head


@dataclass
class Params:
    """`engram.deepseek.*` (hash=deepseek): its control of the n-gram identity."""

    # hash fixed random ids of each position instead of its tokens (no n-gram identity); table_size=1 is the other
    # control (one row per head)
    key_shuffle: bool = False


def check(e: Any) -> None:
    rule(isinstance(e.deepseek.key_shuffle, bool), "engram.deepseek.key_shuffle", e.deepseek.key_shuffle,
         "must be true or false")
    per_order = not isinstance(e.table_size, int | str)  # a list takes one size per n-gram order, even of one
    rule(not per_order or len(e.table_size) == e.max_ngram - 1, "engram.table_size", e.table_size,
         f"must be one int or one per n-gram order ({e.max_ngram - 1} for max_ngram={e.max_ngram})")


__getattr__ = implementation(__name__, "Hash", "NgramHasher")  # the torch side: _deepseek.py
