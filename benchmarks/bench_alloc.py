"""Target 13: the allocation study's cost claim (arXiv 2601.07372: Engram rows cost almost no FLOPs). A training step of
each arm of experiment=lm_allocation (engram/conf/arm/alloc_*.yaml: a 22-expert MoE with rho of its idle expert
parameters moved into the paper's memory) against the dense arm of equal active FLOPs, as tokens/s on the same
blocks. Target: every arm with a memory >= 0.9x the dense arm. The MoE alone (rho = 0) is reported beside them:
transformers' MoE block runs its experts one after the other, which costs time the FLOP count does not show. So is
the memory on the dense decoder itself (`dense_memory`: no experts), which separates the memory's own cost from the
MoE's."""

from __future__ import annotations

import torch

from benchmarks.common import Row, TrainStep, check, interleaved, median, spread
from tools.allocation_arms import ARMS, arm_config, arm_model  # ARMS: the dense reference first

# arms reported beside the dense one, not held to the target
REPORTED = {"alloc_rho0": "MoE alone (rho 0)", "dense_memory": "memory on the dense decoder"}


def dense_memory() -> tuple[str, ...]:
    """The dense arm with the study's memory added, its rows as many as rho 0.25's (a row costs memory, not time)."""
    from engram.models.allocation import allocate

    return "alloc_dense", "variant=engram", f"engram.table_size={allocate(arm_config('alloc_rho25')).engram.table_size}"


def alloc_speed(block_size: int, blocks: int, rounds: int, warmup: int, arms: tuple[str, ...] = ARMS) -> list[Row]:
    from omegaconf import OmegaConf

    from engram.data.text_blocks import collate_blocks
    from engram.variants.common import variant_spec

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(2, 4096, (blocks, block_size), generator=generator)
    batch = collate_blocks([{"input_ids": row, "num_bytes": torch.tensor(0)} for row in ids])
    batch.pop("num_bytes")  # scoring's, not training's
    steps = {}
    builds = {name: (name,) for name in arms} | {"dense_memory": dense_memory()}
    for name, build in builds.items():
        model, cfg = arm_model(*build)
        memory = variant_spec(cfg.variant.name).engram
        engram = OmegaConf.to_container(cfg.engram, resolve=True) if memory else None
        steps[name] = TrainStep(model, "engram" if memory else "baseline", batch, engram, {"lr": 3e-3})
    times = interleaved(steps, rounds, warmup)
    tokens = ids.numel()
    dense = tokens / median(times["alloc_dense"])
    rows = [Row(f"13 alloc dense step ({tokens} tokens)", f"{dense:.0f} tokens/s", note=spread(times["alloc_dense"]))]
    for name in [*arms[1:], "dense_memory"]:
        speed = tokens / median(times[name])
        if name in REPORTED:
            rows.append(Row(f"13 alloc {REPORTED[name]} / dense", f"{speed:.0f} tokens/s", speed / dense,
                            note=spread(times[name])))
        else:
            rows.append(check(f"13 alloc {name} / dense", f"{speed:.0f} tokens/s", speed / dense, ">=", 0.9,
                              note=spread(times[name])))
    return rows
