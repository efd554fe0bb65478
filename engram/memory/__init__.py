"""The Engram algorithm: hashes (token ids -> slots), addresses, gates (one module per kind, see engram/registry.py)
and the per-layer EngramMemory, with the trace of what its forward did (MemoryTrace).

The classes are imported lazily: `engram.memory.budget` is read at config validation, which must not pay for
importing torch (~2 s) just to reject a bad value.
"""

from engram.lazy import lazy_attributes

_LAZY = {
    "ContextGate": "engram.memory.gates._context",
    "MLPGate": "engram.memory.gates._mlp",
    "NgramHasher": "engram.memory.hashes._deepseek",
    "PocHasher": "engram.memory.hashes._poc",
    "SpanHasher": "engram.memory.hashes._span",
    "build_token_map": "engram.memory.hashing",
    "EngramMemory": "engram.memory.memory",
    "MemoryTrace": "engram.memory.trace",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_attributes("engram.memory", _LAZY)
