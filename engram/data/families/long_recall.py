"""data=long_recall (engram/data/long_recall.py); its word-level tokenizer is what model=scratch builds on."""

from typing import Any

from engram.config.rules import check as rule
from engram.config.rules import is_int
from engram.data.long_recall import build_long_recall as build
from engram.data.long_recall import build_word_tokenizer as tokenizer

__all__ = ["build", "check", "tokenizer"]

MAX_DISTRACTION = 100_000  # words; the examples are built in RAM


def check(d: Any) -> None:
    rule(d.num_facts >= 1, "data.num_facts", d.num_facts, "must be >= 1")
    rule(d.vocab_size >= max(d.num_facts, 3), "data.vocab_size", d.vocab_size,
         f"must be >= 3 and >= data.num_facts ({d.num_facts})")
    lengths = d.eval_distractions
    if lengths is not None:
        ok = len(lengths) > 0 and all(is_int(n) and 1 <= n <= MAX_DISTRACTION for n in lengths)
        rule(ok and len(set(lengths)) == len(lengths), "data.eval_distractions", list(lengths),
             f"must be null or a list of distinct integers in [1, {MAX_DISTRACTION}]")
