"""The Engram algorithm: hashing (token ids -> slots), gates, and the per-layer EngramMemory."""

from engram.memory.gates import ContextGate, MLPGate
from engram.memory.hashing import NgramHasher, PocHasher, SpanHasher, build_token_map
from engram.memory.memory import EngramMemory

__all__ = ["ContextGate", "EngramMemory", "MLPGate", "NgramHasher", "PocHasher", "SpanHasher", "build_token_map"]
