"""The arms of experiment=lm_allocation: at a fixed total of parameters, a share rho of the MoE's inactive expert
parameters moved into Engram table rows (arXiv 2601.07372's allocation study, at toy scale).

    python tools/allocation_arms.py            # prints each arm's model.experts and engram.table_size

rho = 0 is the MoE alone (alloc_rho0.yaml's experts, experiments/lm_allocation.yaml's experts_per_token active per
token); an arm of share rho keeps experts - rho * (experts - experts_per_token) of them and gives the memory (the
paper's, at layer 1) as many table rows as make its total parameters equal rho = 0's (its projections, gate and conv
counted too). The active parameters per token stay those of experts_per_token experts, plus what the memory reads
and multiplies. engram/conf/arm/alloc_*.yaml hold the numbers this prints; tests/test_allocation.py rebuilds every
arm (with `arm_model`, as benchmarks/bench_alloc.py does) and checks them with engram/models/accounting.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SHARES = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
MOE_ALONE, WITH_MEMORY = "alloc_rho0", "alloc_rho100"  # the arms whose shapes the others vary


def arm_config(arm: str, *overrides: str) -> Any:
    """The config `python train.py experiment=lm_allocation +arm=<arm> <overrides>` runs (seed 0)."""
    from hydra import compose, initialize_config_dir

    from engram.conf import CONF_DIR
    from engram.config.schema import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=["experiment=lm_allocation", f"+arm={arm}", "seed=0", *overrides])


def arm_model(arm: str, *overrides: str) -> tuple[Any, Any]:
    """(model, config) of an arm as the experiment builds it, with random weights and a vocabulary of the config's
    size (which tokens does not matter to a parameter count or a step's time); the memory without vocabulary
    compression, whose rows do not depend on it."""
    from omegaconf import OmegaConf

    from engram.models.inject import add_engram
    from engram.models.scratch import build_scratch_model
    from engram.variants.common import variant_spec

    cfg = arm_config(arm, *overrides)
    ids = {"bos_token_id": 1, "eos_token_id": 1, "pad_token_id": 0}
    model = build_scratch_model(OmegaConf.to_container(cfg.model, resolve=True), int(cfg.data.text.vocab_size), ids)
    if variant_spec(cfg.variant.name).engram:
        cfg.engram.compress_vocab = False
        model = add_engram(model, cfg.engram)
    return model, cfg


def total_of(arm: str, *overrides: str) -> int:
    from engram.models.accounting import account

    model, cfg = arm_model(arm, *overrides)
    return account(model, int(cfg.data.block_size)).total


def experts_at(rho: float) -> int:
    """Experts kept at share rho (the removed ones' parameters go to the table)."""
    moe = arm_config(MOE_ALONE).model
    experts, idle = int(moe.experts), int(moe.experts) - int(moe.experts_per_token)
    removed = rho * idle
    if abs(removed - round(removed)) > 1e-9:
        raise ValueError(f"rho={rho} removes {removed} experts; choose experts and experts_per_token so it is whole")
    return experts - round(removed)


def table_size_at(rho: float) -> int:
    """Rows per head that make the arm's total equal rho = 0's (the largest size at or below it)."""
    if rho == 0:
        return 0
    experts = experts_at(rho)

    def total(rows: int) -> int:
        return total_of(WITH_MEMORY, f"model.experts={experts}", f"engram.table_size={rows}")

    target = total_of(MOE_ALONE)
    per_row = (total(2000) - total(1000)) / 1000  # parameters a row per head adds
    low, high = int(arm_config(WITH_MEMORY).engram.heads), int(2 * (target - total(1000)) / per_row) + 2000
    while low < high:  # the total grows with the rows: the largest table within the budget
        mid = (low + high + 1) // 2
        low, high = (mid, high) if total(mid) <= target else (low, mid - 1)
    return low


def main() -> int:
    for rho in SHARES:
        print(f"rho={rho}: model.experts={experts_at(rho)} engram.table_size={table_size_at(rho)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
