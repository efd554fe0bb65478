"""Training batch order that survives a restart: a shuffle fixed by (seed, epoch), and a loader that can resume.

`EpochShuffleSampler` draws each epoch's permutation from a generator seeded by (data seed, epoch), so the order of
epoch 3 does not depend on what ran before (Lightning calls `set_epoch` at every epoch start, and forwards it
through its distributed sampler wrapper under DDP). `ResumableDataLoader` adds `state_dict` / `load_state_dict`,
which Lightning (>= 2.3) stores in every checkpoint and hands back on resume: the state is how many batches of the
current epoch were already served, and the next pass skips exactly those, so a mid-epoch resume continues at the
next batch instead of replaying the epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 63-bit seed for (seed, epoch): unlike seed + epoch, (0, 1) and (1, 0) give unrelated orders."""
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class EpochShuffleSampler(Sampler[int]):
    """A permutation of range(n) that depends only on (seed, epoch); with `shuffle=False` (data.shuffle) range(n)
    itself, the records' own order, in every epoch."""

    def __init__(self, num_samples: int, seed: int, shuffle: bool = True) -> None:
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.num_samples))
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_samples


class ResumableDataLoader(DataLoader):
    """A DataLoader whose position within the epoch is part of the checkpoint (Lightning's stateful-loader hook).

    Counting happens where batches leave the loader, so it stays exact with worker processes prefetching ahead.
    """

    _served = 0  # batches handed out by the current pass
    # called with each batch as it leaves the loader, before the trainer runs it (Lightning already holds the next
    # batch while a step runs): an offloaded memory starts gathering its table rows (EngramModel.prefetch)
    lookahead: Callable[[Any], None] | None = None
    _resume: tuple[int, int] | None = None  # (epoch, batches to skip), set by load_state_dict

    def _epoch(self) -> int:
        # our sampler, or Lightning's DistributedSamplerWrapper around it under DDP: both carry the epoch
        return int(getattr(self.sampler, "epoch", 0))

    def __iter__(self) -> Iterator[Any]:
        skip = 0
        if self._resume is not None:
            epoch, served = self._resume
            self._resume = None
            # a checkpoint taken after the epoch's last batch resumes into a fresh epoch: nothing to skip
            if epoch == self._epoch() and served < len(self):
                skip = served
        self._served = skip
        batches = super().__iter__()
        for _ in range(skip):  # the skipped batches are collated and dropped: cheap next to one training step
            next(batches)
        for batch in batches:
            self._served += 1
            if self.lookahead is not None:
                self.lookahead(batch)
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._epoch(), "served": self._served}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._resume = (int(state_dict["epoch"]), int(state_dict["served"]))
