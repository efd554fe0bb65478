"""address=fingerprint: a row contributes only to the key that wrote it (GRACE's "fire only near a stored key",
in hash form).

Every table row keeps the full key (before the modulo) of the first position that wrote it, `owner` (saved with the
engram file). A forward in training mode claims the still-free rows its kept positions look up (first writer wins,
so a row never changes hands; among positions of one batch that want the same free row, the smallest key); every
forward then lets a head's row through only where the position's key equals the row's owner. Inputs whose keys
were never trained (or lost their row to another key) get exactly nothing from that head: general prompts see the
base model unchanged, and a collision costs one head of one key instead of mixing two facts.
"""

from engram.lazy import implementation

__getattr__ = implementation(__name__, "Address", "FREE")  # the torch side: _fingerprint.py
