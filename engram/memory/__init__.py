"""The Engram algorithm: hashing (token ids -> slots), gates, and the per-layer EngramMemory.

The classes are imported lazily: `engram.memory.budget` is read at config validation, which must not pay for
importing torch (~2 s) just to reject a bad value.
"""

from engram.lazy import lazy_attributes

_LAZY = {
    "ContextGate": "engram.memory.gates",
    "MLPGate": "engram.memory.gates",
    "NgramHasher": "engram.memory.hashing",
    "PocHasher": "engram.memory.hashing",
    "SpanHasher": "engram.memory.hashing",
    "build_token_map": "engram.memory.hashing",
    "EngramMemory": "engram.memory.memory",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_attributes("engram.memory", _LAZY)
