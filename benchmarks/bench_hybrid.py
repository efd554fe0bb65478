"""Target 7 (issue 16): the content lookup of engram.address=hybrid vs table size. Product keys (Lample et al.
2019; engram/memory/product_keys.py) score 2 sqrt(N) half-keys and k x k combinations per query, O(sqrt(N) d + k^2);
the baseline scores every row's full key, O(N d) (a flat index, its [N, d] key matrix built once, outside the
timing). Both return the same top-k (tests/test_hybrid.py). No model: a batch of random queries, no gradient.
"""

from __future__ import annotations

import math

import torch

from benchmarks.common import Row, check, interleaved, median
from engram.memory.product_keys import ProductKeys

KEY_DIM = 64  # engram.hybrid.key_dim's default
TOPK = 8  # engram.hybrid.topk's default
QUERIES = 64  # positions per lookup (e.g. 2 sequences x 32 tokens); the flat index's scores are [64, N] floats


def hybrid_scaling(sizes: list[int], rounds: int, warmup: int = 1) -> list[Row]:
    """Per table size: product-key and exhaustive lookup time (medians, the sizes taking turns); PASS when the
    product-key time grows at most twice as fast as sqrt(N) from the smallest to the largest size."""
    q = torch.randn(QUERIES, KEY_DIM, generator=torch.Generator().manual_seed(0))
    fns = {}
    for n in sizes:
        index = ProductKeys(n, KEY_DIM, seed=0).requires_grad_(False)
        keys = index.full_keys()

        def product(index: ProductKeys = index) -> None:
            index.search(q, TOPK)

        def flat(index: ProductKeys = index, keys: torch.Tensor = keys) -> None:
            index.exhaustive(q, TOPK, keys)

        fns[f"pk{n}"], fns[f"flat{n}"] = product, flat
    with torch.no_grad():
        times = {k: median(v) for k, v in interleaved(fns, rounds, warmup).items()}
    rows = [Row(f"hybrid lookup, {n:,} rows ({QUERIES} queries, top-{TOPK})",
                f"product keys {times[f'pk{n}'] * 1e3:.2f} ms, all rows {times[f'flat{n}'] * 1e3:.2f} ms",
                times[f"pk{n}"] / times[f"flat{n}"], note="ratio = product keys / all rows")
            for n in sizes]
    lo, hi = min(sizes), max(sizes)
    growth = hi / lo
    pk = times[f"pk{hi}"] / times[f"pk{lo}"]
    rows.append(check(f"product-key lookup time, {hi:,} / {lo:,} rows", f"x{pk:.2f} (rows x{growth:g})", pk, "<=",
                      round(2 * math.sqrt(growth), 2), note="sub-linear: linear would be x rows, sqrt(N) the ideal"))
    full = times[f"flat{hi}"] / times[f"flat{lo}"]
    rows.append(Row(f"all-rows lookup time, {hi:,} / {lo:,} rows", f"x{full:.2f} (rows x{growth:g})", full))
    return rows
