"""Gathering the rows a coming batch will look up, on a background thread (engram.offload.to=host).

The hash of a batch depends on its token ids only, so the rows it will read are known as soon as the data loader
hands the batch out, one step before the model runs it. `RowPrefetcher.submit` hashes and gathers them on a worker
thread while the current step computes; the forward that needs exactly those rows takes them (`take`), any other
forward gathers synchronously. A prefetch may overlap the optimizer step that writes rows it has read, so every
optimizer step calls `refresh` with the rows it wrote, which waits for the pending gathers and copies the new values
in: a prefetched row is always the row the forward would have read itself.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import torch

Gather = Callable[[torch.Tensor], torch.Tensor]  # unique row ids (CPU, long) -> their rows


class RowPrefetcher:
    """Pending background gathers of (unique, sorted) row ids, oldest first."""

    def __init__(self, gather: Gather, depth: int = 4) -> None:
        self.gather = gather
        self.depth = int(depth)
        self._pool: ThreadPoolExecutor | None = None  # created on first use (nothing to fork or pickle before)
        self._pending: deque[Future] = deque()
        self.hits = self.misses = 0

    def submit(self, rows_fn: Callable[[], torch.Tensor]) -> None:
        """Start computing `rows_fn()` (the unique row ids, CPU long) and gathering those rows on the worker."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="engram-prefetch")

        def work() -> tuple[torch.Tensor, torch.Tensor]:
            with torch.no_grad():
                rows = rows_fn()
                return rows, self.gather(rows)

        self._pending.append(self._pool.submit(work))
        while len(self._pending) > self.depth:  # a prefetch nobody took: drop the oldest
            self._pending.popleft().result()

    def take(self, rows: torch.Tensor) -> torch.Tensor | None:
        """The prefetched rows for exactly these ids, or None (then the caller gathers them itself). Prefetches
        older than the one taken are dropped (batches run in the order they were announced); newer ones stay."""
        for k, future in enumerate(self._pending):
            got, values = future.result()
            if got.shape == rows.shape and torch.equal(got, rows):
                for _ in range(k + 1):
                    self._pending.popleft()
                self.hits += 1
                return values
        self.misses += 1
        return None

    def refresh(self, written: torch.Tensor) -> None:
        """Rows `written` (CPU long) were just updated: re-read them in every pending prefetch that holds them."""
        for future in self._pending:
            rows, values = future.result()
            stale = torch.isin(rows, written)
            if bool(stale.any()):
                values[stale] = self.gather(rows[stale])

    def close(self) -> None:
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
