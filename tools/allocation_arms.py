"""The arms of experiment=lm_allocation as the experiment builds them: at a fixed total of parameters, a share rho
(`model.memory_share`) of the MoE's idle expert parameters moved into Engram table rows (arXiv 2601.07372's
allocation study, at toy scale; engram/models/allocation.py derives the experts and rows).

    python tools/allocation_arms.py            # each arm's model.experts, engram.table_size, rho and total

tests/test_allocation.py rebuilds every arm with `arm_model` (as benchmarks/bench_alloc.py does) and checks them
with engram/models/accounting.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ARMS = ("alloc_dense", "alloc_rho0", "alloc_rho10", "alloc_rho25", "alloc_rho50", "alloc_rho75", "alloc_rho100")


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

    from engram.models.allocation import allocate
    from engram.models.inject import add_engram
    from engram.models.scratch import build_scratch_model
    from engram.variants.common import variant_spec

    cfg = allocate(arm_config(arm, *overrides))
    ids = {"bos_token_id": 1, "eos_token_id": 1, "pad_token_id": 0}
    model = build_scratch_model(OmegaConf.to_container(cfg.model, resolve=True), int(cfg.data.text.vocab_size), ids)
    if variant_spec(cfg.variant.name).engram:
        cfg.engram.compress_vocab = False
        model = add_engram(model, cfg.engram)
    return model, cfg


def main() -> int:
    from engram.models.accounting import account

    for arm in ARMS:
        model, cfg = arm_model(arm)
        counts = account(model, int(cfg.data.block_size))
        rows = cfg.engram.table_size if counts.table else 0
        print(f"{arm}: model.experts={cfg.model.experts} engram.table_size={rows} rho={counts.memory_share} "
              f"params/total={counts.total}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
