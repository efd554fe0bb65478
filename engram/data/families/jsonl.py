"""data=jsonl (engram/data/jsonl.py)."""

from engram.data.jsonl import build_jsonl as build

__all__ = ["build"]
