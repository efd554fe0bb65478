"""Where an EngramMemory's table lives (`engram.offload.*`): an `nn.Embedding` in the model (default), or a
`HostTable` outside it (host RAM or memory-mapped files, engram/memory/offload.py). Both map row ids [*] to rows
[*, dim] and have `weight` (what state_dict saves). Row-sharding over DDP processes (`engram.shard=rows`) happens
later, once the processes exist (engram/memory/shard.py)."""

from __future__ import annotations

from typing import Any

from torch import nn

from engram.config.scale import offload_of
from engram.memory.offload import HostTable


def build_table(cfg: Any, layer: int, rows: int, dim: int) -> nn.Module:
    """The table of memory `layer`: `rows x dim`, initialised from the global RNG as cfg.init says."""
    offload = offload_of(cfg)
    if offload.to == "host":
        return HostTable(rows, dim, init=str(cfg.init), init_std=float(cfg.init_std), directory=offload.dir,
                         name=f"layer{layer}", reuse=bool(offload.reuse))
    table = nn.Embedding(rows, dim, sparse=bool(cfg.sparse))
    if cfg.init == "normal":
        nn.init.normal_(table.weight, std=float(cfg.init_std))
    else:  # zeros, or prepopulate: zero rows that engram/training/writing.py then writes facts into
        nn.init.zeros_(table.weight)
    return table
