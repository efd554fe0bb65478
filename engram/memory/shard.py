"""engram.shard=rows: every table's rows split over the DDP processes, so the table (and its Adam moments) grows with
the number of processes/machines instead of being copied into each.

Process r of W holds rows [r*c, min(rows, (r+1)*c)) with c = ceil(rows / W) -- the layout of PyTorch DTensor's
`Shard(0)`. A lookup is the masked-lookup + sum scheme DTensor's row-wise embedding uses, written with
torch.distributed's autograd-aware collectives so that the shard stays an ordinary sparse `nn.Embedding` weight:

  1. all-gather every process's row ids (each process has its own batch under DDP);
  2. each process looks up the ids that fall in its rows (`F.embedding(..., sparse=True)` on its shard; nothing for
     the others, so the shard's gradient and SparseAdam touch only rows that were looked up);
  3. all-reduce (sum) the partial rows; each process keeps the rows of its own ids.

The backward of the all-reduce is an all-reduce, so each shard's sparse gradient sums what every process's loss
asks of its rows; it is divided by W, as DDP averages every other gradient, and SparseAdam steps each shard on its own
process. DDP is told to leave the shards alone (they differ per process). Why not DTensor or torchrec, see
docs/performance.md ("Beyond one machine"): DTensor's RowwiseParallel gives the same outputs, but its backward
materialises a replicated dense gradient of the whole table on every process (measured on torch 2.13, gloo), and
torchrec is a large CUDA-oriented dependency this project does not have.

`shard_tables` runs once the processes exist (LightningModule.configure_model); `unshard_tables` gathers the full
tables back at the end of the fit, so evaluation and engram.safetensors see an ordinary memory.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
import torch.nn.functional as F
from torch import nn


def shard_range(rows: int, rank: int, world: int) -> tuple[int, int]:
    """[lo, hi) of the rows process `rank` of `world` holds (DTensor Shard(0) layout: equal chunks, last shorter)."""
    chunk = math.ceil(rows / world)
    lo = min(rows, rank * chunk)
    return lo, min(rows, lo + chunk)


class ShardedTable(nn.Module):
    """This process's rows of a `rows x dim` table; `forward` serves every process's lookups collectively (all
    processes must call it the same number of times, as DDP training does)."""

    sparse = True

    def __init__(self, full: torch.Tensor, group: dist.ProcessGroup | None = None) -> None:
        super().__init__()
        self.group = group
        self.rank, self.world = dist.get_rank(group), dist.get_world_size(group)
        self.rows, self.dim = int(full.shape[0]), int(full.shape[1])
        self.lo, self.hi = shard_range(self.rows, self.rank, self.world)
        self.weight = nn.Parameter(full[self.lo : self.hi].detach().clone(), requires_grad=full.requires_grad)
        world = self.world
        self.weight.register_hook(lambda grad: grad / world)  # DDP averages the other gradients over processes

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        flat = rows.reshape(-1)
        count = torch.tensor([flat.numel()], device=flat.device)
        counts = [torch.zeros_like(count) for _ in range(self.world)]
        dist.all_gather(counts, count, group=self.group)
        width = int(max(int(c) for c in counts))
        padded = torch.full((width,), -1, dtype=flat.dtype, device=flat.device)
        padded[: flat.numel()] = flat
        gathered = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(gathered, padded, group=self.group)
        everyone = torch.cat(gathered)  # [world * width], -1 = padding
        local = everyone - self.lo
        mine = ((everyone >= self.lo) & (everyone < self.hi)).nonzero().squeeze(1)
        found = F.embedding(local[mine], self.weight, sparse=True)
        partial = torch.zeros(len(everyone), self.dim, dtype=self.weight.dtype, device=self.weight.device)
        total = dist_fn.all_reduce(partial.index_copy(0, mine, found), group=self.group)
        start = self.rank * width
        return total[start : start + flat.numel()].view(*rows.shape, self.dim)

    @torch.no_grad()
    def full_weight(self) -> torch.Tensor:
        """The whole table, gathered from every process (a collective)."""
        chunk = math.ceil(self.rows / self.world)
        padded = torch.zeros(chunk, self.dim, dtype=self.weight.dtype, device=self.weight.device)
        padded[: self.hi - self.lo] = self.weight
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded, group=self.group)
        return torch.cat(parts)[: self.rows]

    def extra_repr(self) -> str:
        return f"rows {self.lo}..{self.hi} of {self.rows} x {self.dim}, process {self.rank} of {self.world}"


def _memories(model: nn.Module) -> list[nn.Module]:
    from engram.memory.memory import EngramMemory  # lazy: memory.py imports the table kinds

    return [m for m in model.modules() if isinstance(m, EngramMemory)]


def shard_tables(model: nn.Module, group: dist.ProcessGroup | None = None) -> list[str]:
    """Replace every memory's `nn.Embedding` table in `model` by this process's `ShardedTable`. Returns the
    parameter names (in `model`) of the shards, which DDP must not synchronise."""
    shards = set()
    for memory in _memories(model):
        if isinstance(memory.table, nn.Embedding):
            memory.table = ShardedTable(memory.table.weight, group)
        if isinstance(memory.table, ShardedTable):
            shards.add(id(memory.table.weight))
    return [name for name, p in model.named_parameters() if id(p) in shards]


def unshard_tables(model: nn.Module) -> None:
    """Gather every `ShardedTable` in `model` back into an ordinary sparse `nn.Embedding` (on every process)."""
    for memory in _memories(model):
        if isinstance(memory.table, ShardedTable):
            shard = memory.table
            table = nn.Embedding(shard.rows, shard.dim, sparse=True, _weight=shard.full_weight(),
                                 device=shard.weight.device, dtype=shard.weight.dtype)
            table.weight.requires_grad_(shard.weight.requires_grad)
            memory.table = table
