"""address=written: a row contributes only if training wrote it (a per-row record saved with the engram file).

A forward in training mode marks the rows its kept positions look up; every forward lets a head's row through only
where it was marked. Unlike address=fingerprint, any key that lands on a written row gets it (colliding keys share
it), so this measures what "the row was trained" alone buys.
"""

from engram.lazy import implementation

__getattr__ = implementation(__name__, "Address")  # the torch side: _written.py
