"""data=long_recall (engram/data/long_recall.py)."""

from engram.data.long_recall import build_long_recall as build

__all__ = ["build"]
