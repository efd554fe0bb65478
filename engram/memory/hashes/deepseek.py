"""hash=deepseek: DeepSeek's Engram n-gram hash, bit-identical to the official demo (`engram_demo_v1.py`).

Optional vocabulary compression, per-layer odd multipliers from `numpy.random.default_rng(seed + 10007 * layer)`,
`mix_n = XOR_{k<n} (x_{t-k} * m_k)` (int64, wrapping; positions before the start read the pad id) for
n = 2..max_ngram, and `mix_n % P` for one distinct prime P per head (orders outer, heads inner).

Two controls for language-model claims (is it the table's n-gram memory that helps, or the parameters around it?):
`engram.table_size=1` gives every head exactly one row (every n-gram reads the same vector), and
`engram.key_shuffle=true` hashes fixed random ids of each position instead of its tokens (the same tables, heads,
gate and conv, but no n-gram identity in the keys).
"""

from engram.lazy import implementation

__getattr__ = implementation(__name__, "Hash", "NgramHasher")  # the torch side: _deepseek.py
