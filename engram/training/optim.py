"""Optimizers for every variant: AdamW on dense trainable weights, SparseAdam on sparse Engram tables.

Engram tables train at `lr * engram.lr_multiplier` with no weight decay (paper setting). When the tables are
`nn.Embedding(sparse=True)` their gradients are sparse, so they get `torch.optim.SparseAdam`, which touches only the
looked-up rows: step time does not grow with table_size. Lightning's automatic optimization takes one optimizer, so
the two are joined by `CombinedOptimizer`, whose param_groups are the inner groups themselves (an LR scheduler
scales each group from its own base lr).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from engram.memory.offload import HostTable
from engram.training.host_optim import HostSparseAdam


class CombinedOptimizer(torch.optim.Optimizer):
    """Several optimizers stepping as one; `param_groups` are the inner optimizers' group dicts (shared)."""

    def __init__(self, optimizers: Iterable[torch.optim.Optimizer]) -> None:
        self.optimizers = list(optimizers)
        if not self.optimizers:
            raise ValueError("CombinedOptimizer needs at least one optimizer")
        # The inner group dicts are registered as-is, so lr changes made through this object reach the inner ones.
        super().__init__([g for opt in self.optimizers for g in opt.param_groups], defaults={})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()  # forward + backward once, then every inner optimizer steps
        for opt in self.optimizers:
            opt.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        inner = state_dict["optimizers"]
        if len(inner) != len(self.optimizers):
            raise ValueError(f"checkpoint has {len(inner)} optimizers, this run builds {len(self.optimizers)}")
        for opt, sd in zip(self.optimizers, inner, strict=True):
            opt.load_state_dict(sd)
        # torch's load_state_dict gives each inner optimizer new group dicts: share them again, or the LR scheduler
        # (which updates these groups) would steer stale copies while the inner optimizers keep the loaded lr
        self.param_groups = [g for opt in self.optimizers for g in opt.param_groups]

    def __repr__(self) -> str:
        return "CombinedOptimizer(" + ", ".join(type(o).__name__ for o in self.optimizers) + ")"


def split_trainable(
    model: nn.Module, table_params: list[nn.Parameter], dense_engram_params: list[nn.Parameter]
) -> dict[str, list[nn.Parameter]]:
    """Trainable parameters by role: engram `tables`, engram `engram_dense`, and everything else `dense`."""
    table_ids = {id(p) for p in table_params}
    engram_ids = table_ids | {id(p) for p in dense_engram_params}
    groups: dict[str, list[nn.Parameter]] = {"tables": [], "engram_dense": [], "dense": []}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if id(p) in table_ids:
            groups["tables"].append(p)
        elif id(p) in engram_ids:
            groups["engram_dense"].append(p)
        else:
            groups["dense"].append(p)
    return groups


def build_optimizer(
    groups: dict[str, list[nn.Parameter]], optim_cfg: Any, lr_multiplier: float = 1.0, sparse_tables: bool = True,
    host_tables: Sequence[HostTable] = (),
) -> torch.optim.Optimizer | None:
    """One optimizer over the trainable groups (None when nothing trains). `host_tables`: offloaded tables
    (engram.offload.to=host, not parameters), stepped by HostSparseAdam at the tables' lr."""
    lr = float(optim_cfg.get("lr", 1e-3))
    wd = float(optim_cfg.get("weight_decay", 0.0))
    betas = tuple(float(b) for b in optim_cfg.get("betas", (0.9, 0.999)))
    eps = float(optim_cfg.get("eps", 1e-8))
    table_lr = lr * float(lr_multiplier)

    dense_groups: list[dict[str, Any]] = []
    if groups["dense"]:
        dense_groups.append({"params": groups["dense"], "lr": lr, "weight_decay": wd, "name": "dense"})
    if groups["engram_dense"]:
        dense_groups.append({"params": groups["engram_dense"], "lr": lr, "weight_decay": wd, "name": "engram_dense"})
    tables_group = {"params": groups["tables"], "lr": table_lr, "name": "tables"} if groups["tables"] else None
    if tables_group is not None and not sparse_tables:
        tables_group["weight_decay"] = 0.0
        dense_groups.append(tables_group)
        tables_group = None

    optimizers: list[torch.optim.Optimizer] = []
    if dense_groups:
        optimizers.append(torch.optim.AdamW(dense_groups, lr=lr, betas=betas, eps=eps, weight_decay=wd))
    if tables_group is not None:
        optimizers.append(torch.optim.SparseAdam([tables_group], lr=table_lr, betas=betas, eps=eps))
    if host_tables:
        optimizers.append(HostSparseAdam(host_tables, lr=table_lr, betas=betas, eps=eps))
    if not optimizers:
        return None
    return optimizers[0] if len(optimizers) == 1 else CombinedOptimizer(optimizers)


def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float = 0.1) -> Callable[[int], float]:
    """LR factor: linear warmup to 1, then cosine decay to `min_ratio` at `total_steps`."""
    total = max(1, int(total_steps))
    warmup = max(0, min(int(warmup_steps), total - 1))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, optim_cfg: Any, total_steps: int) -> Any:
    fn = warmup_cosine(total_steps, int(optim_cfg.get("warmup_steps", 0)), float(optim_cfg.get("min_lr_ratio", 0.1)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
