"""address=hybrid: the hash rows (every looked-up row contributes, as address=hashed) plus the top-k rows of the
same table found by content, so a position also reaches rows its n-gram does not hash to.

Content lookup (`ContentLookup`, built by the memory through `Address.retriever`): a query projection of the
layer's hidden state (`engram.hybrid_key_dim` wide) searches product keys over the table's rows
(engram/memory/product_keys.py: O(sqrt(rows) * d + k^2) per position, `engram.hybrid_topk` rows); the k rows are
averaged with softmax weights over their scores (times a trained inverse temperature, 10 at the start) and added to
every head's hash row with a trained per-head, per-dimension gain (`engram.hybrid_gain_init`, 1); the gate then
decides how much of the mix enters the residual, as for plain hash rows. A fresh memory changes nothing under the
same conditions as a hashed one: zero rows (engram.init=zeros / prepopulate) or a closed gate. (A gain starting at
zero, which makes a fresh memory exactly the hashed one, left the content path inert: 20 steps of AdamW at lr 3e-3
moved it to at most 0.03 on SmolLM2, docs/six_way.md.)
The retrieved rows are the same `nn.Embedding` rows the hash reads (sparse gradients for the k rows); the query,
the sub-keys, the temperature and the gain are dense weights.
"""

from engram.lazy import implementation

__getattr__ = implementation(__name__, "Address", "ContentLookup")  # the torch side: _hybrid.py
