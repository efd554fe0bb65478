"""hash=poc: the seed module's unigram hash. Head h: `slot = (id * p_h) % table_size` with p_h from
(17, 31, 53, 79, 107, 131, 157, 181); all heads index one shared table and their rows are averaged."""

from engram.lazy import implementation

__getattr__ = implementation(__name__, "Hash", "PocHasher")  # the torch side: _poc.py
