"""hash=poc: the seed module's unigram hash. Head h: `slot = (id * p_h) % table_size` with p_h from `PRIMES`; all
heads index one shared table and their rows are averaged."""

from __future__ import annotations

from typing import Any

from engram.config.rules import check as rule
from engram.lazy import implementation

PRIMES = (17, 31, 53, 79, 107, 131, 157, 181)  # one per head, so at most eight heads


def check(e: Any) -> None:
    rule(e.heads <= len(PRIMES), "engram.heads", e.heads, f"must be <= {len(PRIMES)} with engram.hash=poc")


__getattr__ = implementation(__name__, "Hash", "PocHasher")  # the torch side: _poc.py
