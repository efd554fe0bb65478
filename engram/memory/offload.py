"""HostTable: an Engram table kept outside the model (engram.offload.to=host), in host RAM or memory-mapped files.

The in-memory table is an `nn.Embedding(sparse=True)` trained by SparseAdam: the whole table and both Adam moments
are tensors of the process. A HostTable keeps the same three arrays in host memory (pinned when CUDA is present) or,
with `engram.offload.dir`, in three memory-mapped files (`<name>.weight.f32`, `.exp_avg.f32`, `.exp_avg_sq.f32`;
the moments start as sparse files, so disk is only used for rows that were ever trained). Each forward:

  1. takes the unique rows the batch looks up (prefetched on a background thread when the data loader announced the
     batch, engram/memory/prefetch.py; gathered now otherwise);
  2. copies them into a small dense leaf tensor (to the device of the ids: `non_blocking` from pinned memory on a
     GPU -- that path is written for trainer=gpu but untested here, there is no GPU);
  3. returns `leaf[inverse]`, so autograd gives the leaf a dense gradient over the looked-up rows only.

`adam_step` (called by `HostSparseAdam`, engram/training/host_optim.py) then applies SparseAdam's update to those
rows in place: the same formula in the same order as torch.optim.SparseAdam, so training matches an in-memory table
to float rounding (duplicate lookups are summed in a different order). Nothing per step depends on the table size,
and only the touched pages of a memory-mapped table are read or written: the operating system keeps the hot rows in
its page cache and the table may be larger than the RAM.

Initialisation draws the same random numbers as `nn.Embedding` + `normal_` (in chunks, bit for bit), so an offloaded
memory starts equal to the in-memory one built from the same seed. `state_dict()` holds `weight` as the in-memory
table does (engram.safetensors and checkpoints are unchanged; a table larger than RAM is better kept as its file).
"""

from __future__ import annotations

import json
import mmap
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engram.memory.prefetch import RowPrefetcher

CHUNK = 1 << 22  # floats per init chunk (16 MiB); a multiple of 16, see _fill_normal


def _fill_normal(out: torch.Tensor, std: float) -> None:
    """`out.normal_(0, std)` in chunks, drawing exactly what one call on the whole tensor draws: torch's CPU normal
    fills 16 values at a time from uniforms in order and redraws the last 16 when the size is not a multiple of 16,
    so chunks of a multiple of 16 (the last one >= 16) give the same numbers."""
    flat, n, i = out.view(-1), out.numel(), 0
    while i < n:
        j = min(n, i + CHUNK)
        if n - j < 16:
            j = n
        flat[i:j].normal_(0.0, std)
        i = j


def _draw_normal(numel: int) -> None:
    """Advance the global RNG as `normal_` on `numel` floats would, without keeping the numbers."""
    scratch = torch.empty(min(numel, CHUNK + 16))
    i = 0
    while i < numel:
        j = min(numel, i + CHUNK)
        if numel - j < 16:
            j = numel
        scratch[: j - i].normal_()
        i = j


class HostTable(nn.Module):
    """A `rows x dim` table trained by sparse row updates outside autograd's parameters (see the module doc)."""

    sparse = True  # what callers of nn.Embedding(sparse=True) check

    def __init__(self, rows: int, dim: int, init: str = "normal", init_std: float = 0.02,
                 directory: str | Path | None = None, name: str = "table", reuse: bool = False) -> None:
        super().__init__()
        self.rows, self.dim = int(rows), int(dim)
        self.directory = None if directory is None else Path(directory)
        self.name = name
        self._maps: list[mmap.mmap] = []
        self.weight = self._array("weight", reuse)
        self.exp_avg = self._array("exp_avg", reuse)
        self.exp_avg_sq = self._array("exp_avg_sq", reuse)
        self.step = self._read_step() if reuse else 0
        # the same draws as nn.Embedding(rows, dim) (reset_parameters: normal_) and then EngramMemory's init
        numel = self.rows * self.dim
        if reuse:
            _draw_normal(numel)
            if init == "normal":
                _draw_normal(numel)
        else:
            _fill_normal(self.weight, 1.0)
            if init == "normal":
                _fill_normal(self.weight, float(init_std))
            else:
                self.weight.zero_()
        # what an optimizer holds for this table (torch.optim needs a tensor per parameter; the rows live here)
        self.handle = torch.zeros(())
        self.prefetcher = RowPrefetcher(self._gather_host)
        self._gathered: list[tuple[torch.Tensor, torch.Tensor]] = []  # (unique rows, leaf) since the last step

    # ------------------------------------------------------------ storage
    def _file(self, part: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{self.name}.{part}.f32"

    def _array(self, part: str, reuse: bool) -> torch.Tensor:
        shape = (self.rows, self.dim)
        if self.directory is None:
            t = torch.zeros(shape)
            return t.pin_memory() if torch.cuda.is_available() else t
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._file(part)
        if reuse:
            expected = self.rows * self.dim * 4
            if not path.is_file() or path.stat().st_size != expected:
                found = path.stat().st_size if path.is_file() else "no file"
                raise ValueError(f"engram.offload.reuse: {path} should hold {self.rows} x {self.dim} float32 "
                                 f"({expected} bytes), found {found}")
        size = self.rows * self.dim * 4
        with open(path, "r+b" if reuse else "w+b") as f:
            f.truncate(size)  # a new file is sparse: disk is used only for pages that get written
            mapped = mmap.mmap(f.fileno(), size)
        # rows are looked up at random: no read-around (the default pulls ~32 neighbouring pages per fault, which
        # fills the page cache with rows nobody asked for once the file is larger than the RAM)
        mapped.madvise(mmap.MADV_RANDOM)
        self._maps.append(mapped)
        return torch.frombuffer(mapped, dtype=torch.float32).view(shape)

    def _read_step(self) -> int:
        meta = self.directory / f"{self.name}.json" if self.directory is not None else None
        return int(json.loads(meta.read_text()).get("step", 0)) if meta is not None and meta.is_file() else 0

    def flush(self) -> None:
        """Write the memory-mapped pages (and the Adam step count) to the files; nothing to do in host RAM."""
        for mapped in self._maps:
            mapped.flush()
        if self.directory is not None:
            meta = {"rows": self.rows, "dim": self.dim, "step": self.step}
            (self.directory / f"{self.name}.json").write_text(json.dumps(meta))

    @property
    def memory_mapped(self) -> bool:
        return self.directory is not None

    # ------------------------------------------------------------ lookup
    def _gather_host(self, rows: torch.Tensor) -> torch.Tensor:
        out = self.weight.index_select(0, rows)
        return out.pin_memory() if torch.cuda.is_available() else out

    def prefetch(self, rows_fn: Any) -> None:
        """Gather on the worker thread the rows `rows_fn()` will return (unique, sorted, CPU long)."""
        self.prefetcher.submit(rows_fn)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """`rows`: any shape of row ids -> [*rows.shape, dim] (as nn.Embedding), gradient kept for `adam_step`."""
        unique, inverse = torch.unique(rows.reshape(-1), return_inverse=True)
        host_rows = unique.cpu()
        values = self.prefetcher.take(host_rows)
        if values is None:
            values = self._gather_host(host_rows)
        leaf = values.to(rows.device, non_blocking=True)
        if torch.is_grad_enabled():
            leaf.requires_grad_(True)
            self._gathered.append((host_rows, leaf))
        return leaf[inverse].view(*rows.shape, self.dim)

    # ------------------------------------------------------------ training
    def zero_grad(self) -> None:
        """Drop the gradients so far. A forward still waiting for its backward keeps its leaf: Lightning zeroes the
        gradients between the training step's forward and its backward."""
        self._gathered = [(rows, leaf) for rows, leaf in self._gathered if leaf.grad is None]

    def pending_gradient(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(unique rows, summed gradient) of the forwards since the last step, or None when nothing got one."""
        parts = [(rows, leaf.grad.cpu()) for rows, leaf in self._gathered if leaf.grad is not None]
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        rows, inverse = torch.unique(torch.cat([r for r, _ in parts]), return_inverse=True)
        grad = torch.zeros(len(rows), self.dim).index_add_(0, inverse, torch.cat([g for _, g in parts]))
        return rows, grad

    @torch.no_grad()
    def adam_step(self, lr: float, beta1: float, beta2: float, eps: float, maximize: bool = False) -> None:
        """torch.optim.SparseAdam's update on the rows looked up since the last step (nothing else is touched)."""
        pending = self.pending_gradient()
        self._gathered = []
        if pending is None:
            return
        rows, grad = pending
        grad = -grad if maximize else grad
        self.step += 1
        old_m, old_v = self.exp_avg.index_select(0, rows), self.exp_avg_sq.index_select(0, rows)
        update_m = grad.sub(old_m).mul_(1 - beta1)
        self.exp_avg.index_copy_(0, rows, old_m + update_m)
        update_v = grad.pow(2).sub_(old_v).mul_(1 - beta2)
        self.exp_avg_sq.index_copy_(0, rows, old_v + update_v)
        numer = update_m.add_(old_m)
        denom = update_v.add_(old_v).sqrt_().add_(eps)
        step_size = lr * (1 - beta2**self.step) ** 0.5 / (1 - beta1**self.step)
        self.weight.index_copy_(0, rows, self.weight.index_select(0, rows) + (-step_size * numer.div_(denom)))
        self.prefetcher.refresh(rows)

    # ------------------------------------------------------------ state_dict: `weight`, as nn.Embedding
    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        destination[prefix + "weight"] = self.weight

    def _load_from_state_dict(self, state_dict: dict, prefix: str, local_metadata: dict, strict: bool,
                              missing_keys: list, unexpected_keys: list, error_msgs: list) -> None:
        key = prefix + "weight"
        if key not in state_dict:
            if strict:
                missing_keys.append(key)
            return
        value = state_dict[key]
        if tuple(value.shape) != (self.rows, self.dim):
            error_msgs.append(f"size mismatch for {key}: copying {tuple(value.shape)} into {(self.rows, self.dim)}")
            return
        with torch.no_grad():
            self.weight.copy_(value)

    def extra_repr(self) -> str:
        where = f"file={self.name}.*.f32" if self.memory_mapped else "host RAM"
        return f"{self.rows}, {self.dim}, {where}"
