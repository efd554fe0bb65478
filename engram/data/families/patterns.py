"""data=patterns (engram/data/patterns.py)."""

from engram.data.patterns import build_patterns as build

__all__ = ["build"]
