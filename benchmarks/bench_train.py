"""Targets 1 and 2: training step time vs table size (and RSS), and the Engram step vs the frozen baseline.

Every configuration is a `shared_clone` of one frozen base model (the weights exist once) with its own memory and
optimizer; the configurations take turns step by step and the medians are compared.
"""

from __future__ import annotations

import gc
from typing import Any

from benchmarks.common import (
    GIB,
    Row,
    TrainStep,
    check,
    grad_from_layer,
    interleaved,
    median,
    peak_rss_bytes,
    rss_bytes,
    shared_clone,
    spread,
)

# 64-dim rows: deepseek layout, 4 heads x 2 n-gram orders of dim 256 // 4 = 64, so rows = 8 x table_size
DEEPSEEK_64 = {"hash": "deepseek", "dim": 256, "heads": 4, "max_ngram": 3, "gate": "context", "layers": [1]}
# 576-dim rows: the seed's poc layout (one shared table, rows = table_size), at one layer as in target 1
POC_576 = {"hash": "poc", "dim": 576, "heads": 4, "max_ngram": 2, "gate": "mlp", "gate_bias": -5.0, "layers": [1]}


def _rows_to_table_size(cfg: dict, rows: int) -> int:
    return rows // 8 if cfg["hash"] == "deepseek" else rows


def table_scaling(base: Any, tok: Any, batch: dict, layout: dict, rows_list: list[int], rounds: int,
                  warmup: int, label: str) -> list[Row]:
    """Step time at each total table size (median of the interleaved steps), ratio largest / smallest <= 1.1;
    RSS growth per configuration against the estimate; RSS drift while stepping (must be ~0)."""
    from engram.memory.budget import MemoryBudgetError, estimate_engram_bytes
    from engram.models.inject import add_engram

    steps, grew, refused = {}, {}, []
    hidden = int(base.config.hidden_size)
    for rows in rows_list:
        cfg = {**layout, "table_size": _rows_to_table_size(layout, rows), "sparse": True, "lr_multiplier": 5.0}
        before = rss_bytes()
        try:
            model = add_engram(shared_clone(base), cfg, tok)
        except MemoryBudgetError as e:
            refused.append(Row(f"1 {label} rows={rows:.0e}", "refused", note=str(e)))
            continue
        step = TrainStep(model, "engram", batch, cfg, stats=True)
        for _ in range(max(1, warmup)):  # first step allocates the optimizer state
            step()
        name = f"{rows:.0e}"
        steps[name] = step
        from types import SimpleNamespace

        est = estimate_engram_bytes(SimpleNamespace(**{**_defaults(), **cfg}), 1, hidden)
        grew[name] = (rss_bytes() - before, est.total)
    settled = rss_bytes()
    times = interleaved(dict(steps), rounds, warmup=0)
    drift = rss_bytes() - settled
    out: list[Row] = []
    names = list(steps)
    for name in names:
        got, est = grew[name]
        out.append(Row(f"1 {label} step, rows={name}", spread(times[name]),
                       note=f"RSS {got / GIB:+.2f} GiB after build + first step (estimate: table + Adam state "
                            f"{est / GIB:.2f} GiB)"))
    if len(names) >= 2:
        small, large = names[0], names[-1]
        ratio = median(times[large]) / median(times[small])
        out.append(check(f"1 {label} step time rows {large} / {small}",
                         f"{median(times[large]):.3g} s / {median(times[small]):.3g} s", ratio, "<=", 1.1))
    out.append(Row(f"1 {label} RSS drift over {rounds * len(names)} timed steps", f"{drift / 2**20:+.0f} MiB",
                   note=f"peak RSS of the process so far {peak_rss_bytes() / GIB:.2f} GiB"))
    steps.clear()
    gc.collect()
    return out + refused


def _defaults() -> dict:
    from dataclasses import asdict

    from engram.config import EngramConfig

    return asdict(EngramConfig())


def overhead(base: Any, tok: Any, batch: dict, table_size: int, rounds: int, warmup: int,
             all_layers: bool = True) -> list[Row]:
    """Engram step (layers [1], default deepseek memory) vs the frozen baseline forward+backward on the same batch.
    The baseline's backward runs from the loss to layer 1's input: the path the memory at layer 1 also needs."""
    from engram.models.inject import add_engram

    baseline = shared_clone(base)
    grad_from_layer(baseline, 1)
    steps = {"baseline": TrainStep(baseline, "baseline", batch)}
    cfg = {"table_size": table_size, "layers": [1]}
    steps["engram[1]"] = TrainStep(add_engram(shared_clone(base), cfg, tok), "engram", batch, cfg)
    if all_layers:
        cfg_all = {"table_size": table_size, "layers": "all"}
        steps["engram[all]"] = TrainStep(add_engram(shared_clone(base), cfg_all, tok), "engram", batch, cfg_all)
    times = interleaved(steps, rounds, warmup)
    b = median(times["baseline"])
    rows = [Row("2 frozen baseline fwd+bwd", spread(times["baseline"]))]
    rows.append(check("2 engram[1] step / baseline", spread(times["engram[1]"]), median(times["engram[1]"]) / b,
                      "<=", 1.10))
    if all_layers:
        rows.append(Row("2 engram[all] step / baseline", spread(times["engram[all]"]),
                        median(times["engram[all]"]) / b, note="report only: backward reaches layer 0 and every "
                        "layer runs a memory"))
    return rows
