"""data=long_recall (engram/data/long_recall.py)."""

from typing import Any

from engram.config_rules import check as rule
from engram.data.long_recall import build_long_recall as build

__all__ = ["build", "check"]


def check(d: Any) -> None:
    rule(d.num_facts >= 1, "data.num_facts", d.num_facts, "must be >= 1")
    rule(d.vocab_size >= max(d.num_facts, 3), "data.vocab_size", d.vocab_size,
         f"must be >= 3 and >= data.num_facts ({d.num_facts})")
