"""The arms of experiment=lm_allocation: at a fixed total of parameters, a share rho of the MoE's inactive expert
parameters moved into Engram table rows (arXiv 2601.07372's allocation study, at toy scale).

    python tools/allocation_arms.py            # prints each arm's model.experts and engram.table_size

rho = 0 is the MoE alone (EXPERTS experts, PER_TOKEN of them active per token); an arm of share rho keeps
EXPERTS - rho * (EXPERTS - PER_TOKEN) experts and gives the memory (the paper's, at layer 1) as many table rows as
make its total parameters equal rho = 0's (its projections, gate and conv counted too). The active parameters per
token stay those of PER_TOKEN experts, plus what the memory reads and multiplies. engram/conf/arm/alloc_*.yaml hold
the numbers this prints; tests/test_allocation.py rebuilds every arm and checks them with
engram/models/accounting.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

EXPERTS, PER_TOKEN = 22, 2
SHARES = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
SHAPE = {"hidden_size": 128, "num_layers": 4, "num_heads": 4, "intermediate_size": 128, "attention_window": None,
         "experts_per_token": PER_TOKEN}
MEMORY = {"dim": 128, "heads": 4, "max_ngram": 3, "layers": [1]}
VOCAB = 4096


def experts_at(rho: float) -> int:
    """Experts kept at share rho (the removed ones' parameters go to the table)."""
    removed = rho * (EXPERTS - PER_TOKEN)
    if abs(removed - round(removed)) > 1e-9:
        raise ValueError(f"rho={rho} removes {removed} experts; choose EXPERTS and PER_TOKEN so it is whole")
    return EXPERTS - round(removed)


def total_of(experts: int, table_size: int | None) -> int:
    """Total parameters of the arm (a scratch decoder with `experts`, a memory of `table_size` rows per head)."""
    from omegaconf import OmegaConf

    from engram.models.accounting import account
    from engram.models.inject import add_engram
    from engram.models.scratch import build_scratch_model

    ids = {"bos_token_id": 1, "eos_token_id": 1, "pad_token_id": 0}
    model = build_scratch_model({**SHAPE, "experts": experts}, VOCAB, ids)
    if table_size:
        cfg = OmegaConf.merge(OmegaConf.structured(_engram_schema()), {**MEMORY, "table_size": table_size,
                                                                       "compress_vocab": False})
        model = add_engram(model, cfg)
    return account(model, 128).total


def _engram_schema() -> type:
    from engram.config.schema import EngramConfig

    return EngramConfig


def table_size_at(rho: float) -> int:
    """Rows per head that make the arm's total equal rho = 0's (the largest size at or below it)."""
    target, experts = total_of(EXPERTS, None), experts_at(rho)
    if rho == 0:
        return 0
    per_row = (total_of(experts, 2000) - total_of(experts, 1000)) / 1000  # parameters a row per head adds
    low, high = MEMORY["heads"], int(2 * (target - total_of(experts, 1000)) / per_row) + 2000
    while low < high:  # the total grows with the rows: the largest table within the budget
        mid = (low + high + 1) // 2
        low, high = (mid, high) if total_of(experts, mid) <= target else (low, mid - 1)
    return low


def main() -> int:
    for rho in SHARES:
        print(f"rho={rho}: model.experts={experts_at(rho)} engram.table_size={table_size_at(rho)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
