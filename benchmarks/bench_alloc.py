"""Target 13: the allocation study's cost claim (arXiv 2601.07372: Engram rows cost almost no FLOPs). A training step of
each arm of experiment=lm_allocation (engram/conf/arm/alloc_*.yaml: a 22-expert MoE with rho of its idle expert
parameters moved into the paper's memory) against the dense arm of equal active FLOPs, as tokens/s on the same
blocks. Target: every arm with a memory >= 0.9x the dense arm. The MoE alone (rho = 0) is reported beside them:
transformers' MoE block runs its experts one after the other, which costs time the FLOP count does not show."""

from __future__ import annotations

from typing import Any

import torch

from benchmarks.common import Row, TrainStep, check, interleaved, median, spread

ARMS = ("alloc_dense", "alloc_rho0", "alloc_rho10", "alloc_rho25", "alloc_rho50", "alloc_rho75", "alloc_rho100")


def arm_model(name: str) -> tuple[Any, str, dict]:
    """(model, variant, engram config) of one arm, as experiment=lm_allocation builds it (random weights; the
    vocabulary's size only, since speed does not depend on which tokens)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from engram.conf import CONF_DIR
    from engram.config.schema import register_configs
    from engram.models.inject import add_engram
    from engram.models.scratch import build_scratch_model
    from engram.variants.common import variant_spec

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=lm_allocation", f"+arm={name}", "seed=0"])
    ids = {"bos_token_id": 1, "eos_token_id": 1, "pad_token_id": 0}
    model = build_scratch_model(OmegaConf.to_container(cfg.model, resolve=True), int(cfg.data.text.vocab_size), ids)
    if not variant_spec(cfg.variant.name).engram:
        return model, "baseline", {}
    engram = OmegaConf.to_container(OmegaConf.merge(cfg.engram, {"compress_vocab": False}), resolve=True)
    return add_engram(model, engram), "engram", engram


def alloc_speed(block_size: int, blocks: int, rounds: int, warmup: int, arms: tuple[str, ...] = ARMS) -> list[Row]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(2, 4096, (blocks, block_size), generator=generator)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone(),
             "prompt_lengths": torch.zeros(blocks, dtype=torch.long)}
    steps = {}
    for name in arms:
        model, variant, engram = arm_model(name)
        steps[name] = TrainStep(model, variant, batch, engram or None, {"lr": 3e-3})
    times = interleaved(steps, rounds, warmup)
    tokens = ids.numel()
    dense = tokens / median(times["alloc_dense"])
    rows = [Row(f"13 alloc dense step ({tokens} tokens)", f"{dense:.0f} tokens/s", note=spread(times["alloc_dense"]))]
    for name in arms[1:]:
        speed = tokens / median(times[name])
        if name == "alloc_rho0":
            rows.append(Row("13 alloc MoE alone (rho 0) / dense", f"{speed:.0f} tokens/s", speed / dense,
                            note=spread(times[name])))
        else:
            rows.append(check(f"13 alloc {name} / dense", f"{speed:.0f} tokens/s", speed / dense, ">=", 0.9,
                              note=spread(times[name])))
    return rows
