"""address=hashed: every looked-up row contributes (plain hashing: colliding keys share their row)."""

from engram.lazy import implementation

__getattr__ = implementation(__name__, "Address")  # the torch side: _hashed.py
