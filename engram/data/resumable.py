"""What every data module of a training run shares: its config and tokenizer, and a training loader whose position
in the epoch travels through Lightning checkpoints (engram/data/sampling.py).

The position also travels through the DataModule's checkpoint hooks: Lightning restores these before
configure_optimizers, whose `estimated_stepping_batches` builds the train loader early; the loader's own state,
restored later by the fit loop, is then never applied (Lightning issue #20550).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from datasets import Dataset

from engram.data.records import Record, as_data_cfg
from engram.data.sampling import EpochShuffleSampler, ResumableDataLoader


class ResumableDataModule(L.LightningDataModule):
    """Base of EngramDataModule (facts) and TextDataModule (text blocks)."""

    def __init__(self, data_cfg: Any, tokenizer: Any) -> None:
        super().__init__()
        self.cfg = as_data_cfg(data_cfg)
        self.tokenizer = tokenizer
        self.splits: dict[str, list[Record]] | None = None
        self.datasets: dict[str, Dataset] = {}
        self._train_loader: ResumableDataLoader | None = None
        self._train_resume: dict[str, int] | None = None  # from a checkpoint, for the next train loader
        self.lookahead: Callable[[Any], None] | None = None  # see ResumableDataLoader.lookahead

    def resumable_loader(self, ds: Dataset, collate: Callable[[list[Any]], dict[str, torch.Tensor]]
                         ) -> ResumableDataLoader:
        """The training loader over `ds`: order fixed by (data.seed, epoch), resumed mid-epoch from a checkpoint."""
        loader = ResumableDataLoader(
            ds,
            batch_size=int(self.cfg.batch_size),
            sampler=EpochShuffleSampler(len(ds), int(self.cfg.seed), bool(self.cfg.get("shuffle", True))),
            # its own generator for the worker seeds, so building an iterator never draws from the global RNG
            # (which LoRA dropout uses: a resumed run must see the same dropout masks as an uninterrupted one)
            generator=torch.Generator().manual_seed(int(self.cfg.seed)),
            collate_fn=collate,
            num_workers=int(self.cfg.num_workers),
        )
        loader.lookahead = self.lookahead
        if self._train_resume is not None:
            loader.load_state_dict(self._train_resume)
            self._train_resume = None
        self._train_loader = loader
        return loader

    def state_dict(self) -> dict[str, Any]:
        return {"train_loader": self._train_loader.state_dict()} if self._train_loader is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._train_resume = state_dict.get("train_loader")
