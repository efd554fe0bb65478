"""`EngramDataModule`: records of any family -> tokenised `datasets.Dataset`s -> padded batches.

Train and val batches: `input_ids`, `attention_mask`, `labels` (-100 on prompt and padding), `prompt_lengths`,
right-padded to the longest row. `generation_batches` yields left-padded prompts with their raw records. The train
order is a function of (data.seed, epoch) and resumes mid-epoch from a checkpoint (see `sampling.py`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import torch
from datasets import Dataset
from datasets.utils import logging as ds_logging
from torch.utils.data import DataLoader

from engram.data import build_splits
from engram.data.collate import GenerationCollator, TrainCollator
from engram.data.formatting import encode_batch, pad_id
from engram.data.records import RECORD_KEYS, Record
from engram.data.resumable import ResumableDataModule
from engram.data.sampling import ResumableDataLoader

TRAIN_COLUMNS = ["input_ids", "labels", "prompt_length"]


def encode_records(records: list[Record], tokenizer: Any, prompt_format: str, max_length: int, tag: str) -> Dataset:
    """An in-memory Dataset of the records' common columns plus their token columns (`datasets.map`, batched).
    Optional keys such as "paraphrases" stay on the records only: `from_list` takes the first record's columns."""
    ds = (Dataset.from_list([{k: r[k] for k in RECORD_KEYS} for r in records]) if records
          else Dataset.from_dict({k: [] for k in ("prompt", "answer")}))
    # an explicit fingerprint: hashing the tokenizer for datasets' cache key is slow and not always stable
    fingerprint = hashlib.sha1(
        json.dumps([tag, getattr(tokenizer, "name_or_path", ""), len(tokenizer), prompt_format, max_length,
                    ds._fingerprint]).encode()
    ).hexdigest()
    quiet = ds_logging.is_progress_bar_enabled()
    if quiet:  # tokenising takes ~1 s; a progress bar per split only clutters the run log
        ds_logging.disable_progress_bar()
    try:
        return ds.map(
            encode_batch,
            batched=True,
            batch_size=1000,
            fn_kwargs={"tokenizer": tokenizer, "prompt_format": prompt_format, "max_length": max_length},
            new_fingerprint=fingerprint,
        )
    finally:
        if quiet:
            ds_logging.enable_progress_bar()


class EngramDataModule(ResumableDataModule):
    """Fact records of any family as padded batches (config, tokenizer and the resumable train loader: the base)."""

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        self.splits = build_splits(self.cfg)
        for name, records in self.splits.items():
            self.datasets[name] = encode_records(
                records, self.tokenizer, self.cfg.prompt_format, int(self.cfg.max_length), name
            )

    # ---------------------------------------------------------------- records

    @property
    def train_records(self) -> list[Record]:
        self.setup()
        return self.splits["train"]

    @property
    def eval_records(self) -> list[Record]:
        self.setup()
        return self.splits["eval"]

    # ---------------------------------------------------------------- loaders

    def _loader(self, split: str, batch_size: int) -> DataLoader:
        """Record order, for evaluation."""
        self.setup()
        ds = self.datasets[split].select_columns(TRAIN_COLUMNS)
        return DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=TrainCollator(pad_id(self.tokenizer)),
                          num_workers=int(self.cfg.num_workers))

    def loader_of(self, records: list[Record], seed: int, tag: str = "records") -> DataLoader:
        """A shuffled training loader over any records (e.g. one batch of a sequential-writing run)."""
        ds = encode_records(records, self.tokenizer, self.cfg.prompt_format, int(self.cfg.max_length), tag)
        return DataLoader(ds.select_columns(TRAIN_COLUMNS), batch_size=int(self.cfg.batch_size), shuffle=True,
                          generator=torch.Generator().manual_seed(seed),
                          collate_fn=TrainCollator(pad_id(self.tokenizer)))

    def train_dataloader(self) -> ResumableDataLoader:
        self.setup()
        ds = self.datasets["train"].select_columns(TRAIN_COLUMNS)
        return self.resumable_loader(ds, TrainCollator(pad_id(self.tokenizer)))

    def val_dataloader(self) -> DataLoader:
        return self._loader("eval", int(self.cfg.eval_batch_size))

    def test_dataloader(self) -> DataLoader:
        """The "test" split when the family has one (jsonl with data.test_path), else eval."""
        self.setup()
        split = "test" if "test" in self.datasets else "eval"
        return self._loader(split, int(self.cfg.eval_batch_size))

    def generation_batches(self, batch_size: int | None = None, split: str = "eval",
                           seen_only: bool = False) -> Iterator[dict[str, Any]]:
        """Left-padded prompt batches, in record order, each with the raw `records` it holds. Optional splits ("test",
        "paraphrase", "neighbor") exist only when the data has them: check `split in dm.splits` first.
        seen_only: only the records of taught facts (`"seen"`)."""
        self.setup()
        if split not in self.splits:
            raise KeyError(f"no {split!r} split in data={self.cfg.family} (it has {', '.join(self.splits)})")
        size = int(batch_size or self.cfg.eval_batch_size)
        prompt_ids = self.datasets[split]["prompt_ids"] if len(self.splits[split]) else []
        records = self.splits[split]
        if seen_only:
            kept = [i for i, r in enumerate(records) if r.get("seen")]
            records, prompt_ids = [records[i] for i in kept], [prompt_ids[i] for i in kept]
        collate = GenerationCollator(pad_id(self.tokenizer))
        for start in range(0, len(records), size):
            yield collate(list(zip(prompt_ids[start : start + size], records[start : start + size], strict=True)))
