"""data=patterns (engram/data/patterns.py): several paraphrases per item, so runs also report eval/consistency."""

from engram.data.patterns import build_patterns as build

__all__ = ["build", "paraphrased"]

paraphrased = True  # eval/consistency: the share of items answered alike over their paraphrases
