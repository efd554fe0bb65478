"""HostSparseAdam: torch.optim.SparseAdam for tables kept outside the model (engram.offload.to=host).

A `HostTable` (engram/memory/offload.py) is not an nn.Parameter: its rows live in host memory or a memory-mapped file
and each forward hands autograd a small leaf of the looked-up rows. This optimizer steps those tables with the same
param-group interface as any torch optimizer (so `CombinedOptimizer`, the LR scheduler and Lightning drive it as they
drive SparseAdam): each group's "params" are the tables' `handle` tensors, and `step()` calls each table's
`adam_step` with the group's lr and betas. The state dict holds each table's step count and both moments (the
memory-mapped arrays themselves: loading copies back into them), so a resumed run continues exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from engram.memory.offload import HostTable


class HostSparseAdam(torch.optim.Optimizer):
    def __init__(self, tables: Sequence[HostTable], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, name: str = "tables") -> None:
        if not tables:
            raise ValueError("HostSparseAdam needs at least one HostTable")
        self.tables = {id(t.handle): t for t in tables}
        group = {"params": [t.handle for t in tables], "lr": lr, "name": name}
        super().__init__([group], {"lr": lr, "betas": tuple(betas), "eps": eps, "maximize": False})
        for t in tables:
            self._bind_state(t)

    def _bind_state(self, table: HostTable) -> None:
        self.state[table.handle] = {"step": torch.tensor(float(table.step)), "exp_avg": table.exp_avg,
                                    "exp_avg_sq": table.exp_avg_sq}

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for handle in group["params"]:
                table = self.tables[id(handle)]
                table.adam_step(float(group["lr"]), beta1, beta2, group["eps"], group.get("maximize", False))
                self.state[handle]["step"] = torch.tensor(float(table.step))
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for table in self.tables.values():
            table.zero_grad()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        with torch.no_grad():
            for handle in self.param_groups[0]["params"]:
                table, loaded = self.tables[id(handle)], self.state[handle]
                table.step = int(loaded["step"])
                table.exp_avg.copy_(loaded["exp_avg"])
                table.exp_avg_sq.copy_(loaded["exp_avg_sq"])
                self._bind_state(table)  # the state points at the table's own arrays again
