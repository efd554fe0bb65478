"""hash=span: entity-keyed; one key per sequence from the whole prompt span, looked up at every answer position."""

from engram.lazy import implementation

__getattr__ = implementation(__name__, "Hash", "SpanHasher")  # the torch side: _span.py
