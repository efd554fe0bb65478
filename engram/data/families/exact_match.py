"""data=exact_match (engram/data/exact_match.py)."""

from engram.data.exact_match import build_exact_match as build

__all__ = ["build"]
