"""address=hybrid: the hash rows (every looked-up row contributes, as address=hashed) plus the top-k rows of the
same table found by content, so a position also reaches rows its n-gram does not hash to.

Content lookup (`ContentLookup`, built by the memory through `Address.retriever`): a query projection of the
layer's hidden state (`engram.hybrid.key_dim` wide) searches product keys over the table's rows
(engram/memory/product_keys.py: O(sqrt(rows) * d + k^2) per position, `engram.hybrid.topk` rows); the k rows are
averaged with softmax weights over their scores (times a trained inverse temperature, 10 at the start) and added to
every head's hash row with a trained per-head, per-dimension gain (`engram.hybrid.gain_init`, 1); the gate then
decides how much of the mix enters the residual, as for plain hash rows. A fresh memory changes nothing under the
same conditions as a hashed one: zero rows (engram.init=zeros / prepopulate) or a closed gate. (A gain starting at
zero, which makes a fresh memory exactly the hashed one, left the content path inert: 20 steps of AdamW at lr 3e-3
moved it to at most 0.03 on SmolLM2, docs/six_way.md.)
The retrieved rows are the same `nn.Embedding` rows the hash reads (sparse gradients for the k rows); the query,
the sub-keys, the temperature and the gain are dense weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engram.config.rules import check as rule
from engram.config.rules import finite, is_int
from engram.lazy import implementation

MAX_TOPK = 1024  # rows found by content per position, at most


@dataclass
class Params:
    """`engram.hybrid.*` (address=hybrid): the content lookup beside the hash rows."""

    topk: int = 8  # rows found by content per position (product keys over the table)
    key_dim: int = 64  # width of the content query and of the product keys
    gain_init: float = 1.0  # the content rows' gain at the start (0: a fresh memory is the hashed one)


def check(e: Any) -> None:
    """k rows by content from a table of at least `table_size` rows (any size: no square needed)."""
    h, rows = e.hybrid, min(e.table_size if not isinstance(e.table_size, int) else [e.table_size])
    rule(is_int(h.topk) and h.topk >= 1, "engram.hybrid.topk", h.topk,
         "must be an integer >= 1 (rows found by content per position)")
    rule(h.topk <= min(rows, MAX_TOPK), "engram.hybrid.topk", h.topk,
         f"must be <= engram.table_size ({rows}) and <= {MAX_TOPK}")
    rule(is_int(h.key_dim) and 2 <= h.key_dim <= 4096 and h.key_dim % 2 == 0, "engram.hybrid.key_dim", h.key_dim,
         "must be an even integer in [2, 4096] (two product-key halves)")
    rule(finite(h.gain_init), "engram.hybrid.gain_init", h.gain_init, "must be a finite number")


__getattr__ = implementation(__name__, "Address", "ContentLookup")  # the torch side: _hybrid.py
