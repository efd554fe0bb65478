"""Memory budget: the bytes an Engram config needs (tables + optimizer state), checked before anything is allocated.

A table of 10^7 rows x 576 floats is 23 GB on its own and Adam keeps two more of the same size, so a too-large
`engram.table_size` would otherwise die deep inside the first optimizer step (or take the machine down with it).
`check_memory_budget` refuses such sizes up front with one line naming `engram.table_size`.

The estimate counts, per injected layer: the table rows (one block per head and entry of the hash kind's
`table_sizes(cfg)`, each `dim // heads` wide; a `shared_table` hash such as poc: one shared block `dim` wide),
the optimizer state of the table (SparseAdam / Adam: two moments; dense training also keeps a dense gradient of
the same size) and the slot-hit buffer (one byte per row).
The gate weights are small (a few hidden x dim matrices) and counted with their gradient and Adam moments.
Prime table sizes sit a little above `table_size`; the estimate bounds that from above (tight for big tables).
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engram import registry
from engram.config import ConfigError
from engram.config.scale import offload_of

GIB = 1024**3


class MemoryBudgetError(ConfigError):
    """The tables and their optimizer state would not fit in the RAM available now."""


@dataclass(frozen=True)
class EngramBytes:
    rows: int  # table rows per layer
    row_dim: int  # floats per row
    layers: int
    tables: int  # bytes of the tables themselves
    optimizer: int  # optimizer state (and the dense gradient when the tables are not sparse)
    other: int  # gate weights with their grads and moments, slot-hit buffers

    @property
    def total(self) -> int:
        return self.tables + self.optimizer + self.other


def requested_sizes(cfg: Any) -> list[int]:
    """`engram.table_size` as a list (one int, or one per n-gram order): a hash kind's layout unless it says."""
    return sizes_of(cfg.table_size)


def sizes_of(table_size: Any) -> list[int]:
    """A table_size value (one int, or one per n-gram order) as a list of ints."""
    return [int(table_size)] if isinstance(table_size, int | str) else [int(s) for s in table_size]


def estimate_engram_bytes(cfg: Any, layers: int, hidden_size: int, dtype_bytes: int = 4) -> EngramBytes:
    """Bytes `add_engram(cfg)` plus training (Adam moments) will hold for `layers` injected layers. The hash kind
    says its layout (`Hash.shared_table`, `Hash.table_sizes(cfg)`); importing it imports torch, which is why
    engram.cli checks the budget after every torch-free check."""
    hash_kind = registry.get("hash", cfg.hash)
    table_sizes = getattr(hash_kind, "table_sizes", requested_sizes)  # optional: default one block per head
    sizes, heads, dim = [int(s) for s in table_sizes(cfg)], int(cfg.heads), int(cfg.dim)
    if hash_kind.shared_table:
        rows, row_dim, mem_dim = sizes[0], dim, dim
    else:
        row_dim = max(1, dim // heads)
        # Each head's rows are a distinct prime >= its size; with k primes taken before it (all heads of all
        # layers), it lies below size + 2 k ln(size) + 10 (prime gaps average ln(size)): a bound, tight for big tables
        taken = layers * heads * len(sizes)
        rows = heads * sum(s + int(2 * taken * (math.log(max(s, 2)) + 1)) + 10 for s in sizes)
        mem_dim = row_dim * heads * len(sizes)
    table = rows * row_dim * dtype_bytes
    state_copies = 2 if bool(cfg.sparse) else 3  # Adam moments (+ a dense gradient when not sparse)
    gate_params = 2 * mem_dim * hidden_size + hidden_size * hidden_size  # an upper bound for both gates
    other = rows + 4 * gate_params * dtype_bytes  # hit buffer; gate params + grad + 2 moments
    return EngramBytes(rows, row_dim, layers, layers * table, layers * table * state_copies, layers * other)


def available_memory_bytes() -> int | None:
    """RAM that can be allocated now without swapping (Linux MemAvailable; psutil elsewhere; None if unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil  # lazy and optional: not a declared dependency; only non-Linux systems get here

        return int(psutil.virtual_memory().available)
    except Exception:
        return None


def free_disk_bytes(directory: str | Path) -> int:
    """Free bytes on the file system that holds `directory` (or its nearest existing parent)."""
    path = Path(directory).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def check_disk_budget(cfg: Any, need: EngramBytes) -> None:
    """engram.offload.dir: the tables and both Adam moments are files there, so they need disk, not RAM (the moments
    start sparse, but may fill). Raise `MemoryBudgetError` (one line) when they would not fit."""
    offload = offload_of(cfg)
    if offload.reuse:
        return  # the files exist already
    files = need.tables + need.optimizer
    free = free_disk_bytes(offload.dir)
    if files > free:
        raise MemoryBudgetError(
            "engram.table_size", cfg.table_size,
            f"needs ~{files / GIB:.1f} GiB of disk in engram.offload.dir={offload.dir} (table + Adam moments, "
            f"{need.layers} layer(s) x {need.rows:,} rows x {need.row_dim} floats) but only {free / GIB:.1f} GiB is "
            "free; use a smaller engram.table_size or another engram.offload.dir",
        )


def check_memory_budget(cfg: Any, layers: int, hidden_size: int, dtype_bytes: int = 4) -> EngramBytes:
    """Raise `MemoryBudgetError` (one line, names engram.table_size) when the estimate exceeds the available RAM.

    `ENGRAM_MEMORY_LIMIT_GB` overrides the available RAM (e.g. to keep room for other jobs on a shared machine).
    Memory-mapped tables (engram.offload.to=host with engram.offload.dir) are checked against the free disk instead;
    only their small dense parts count against the RAM (the page cache holds what fits of the files).
    """
    need = estimate_engram_bytes(cfg, layers, hidden_size, dtype_bytes)
    if offload_of(cfg).to == "host" and offload_of(cfg).dir:
        check_disk_budget(cfg, need)
        need = replace(need, tables=0, optimizer=0)
    limit = os.environ.get("ENGRAM_MEMORY_LIMIT_GB")
    avail = int(float(limit) * GIB) if limit else available_memory_bytes()
    if avail is not None and need.total > avail:
        raise MemoryBudgetError(
            "engram.table_size",
            cfg.table_size,
            f"needs ~{need.total / GIB:.1f} GiB ({need.layers} layer(s) x {need.rows:,} rows x {need.row_dim} floats: "
            f"tables {need.tables / GIB:.1f} GiB + optimizer state {need.optimizer / GIB:.1f} GiB) but only "
            f"{avail / GIB:.1f} GiB of RAM is available; use a smaller engram.table_size, engram.dim or fewer "
            "engram.layers",
        )
    return need
