"""hash=answer: the span key of the prompt plus the offset into the answer, so every answer token has its own rows.

hash=span looks up one key per prompt at every answer position, so a single row has to produce every answer
token. Here position `prompt_length - 1 + j` (the one predicting answer token j) looks up

    key_j = (span_key + (j + 1) * b) mod M,   M = 2**31 - 1, b drawn per layer from the seed,

so a fact with an n-token answer owns n keys (n + 1 with the end-of-turn token). Generation uses the same offsets:
the j-th generated token is predicted from key_j whatever the earlier tokens were.
"""

from engram.lazy import implementation

__getattr__ = implementation(__name__, "Hash")  # the torch side: _answer.py
