"""data=text batches: each split's documents tokenised, joined with eos, and packed into `data.block_size` blocks.

Documents are taken in an order fixed by `data.seed` (so a token cap samples the whole corpus, not its first
modules); `data.num_tokens` caps the training blocks, `data.eval_tokens` the blocks of each evaluation split. A batch
is `input_ids`, `attention_mask` (all ones), `labels` (= input_ids: next-token loss on every position) and
`prompt_lengths` (zeros: nothing is prompt). Every block also records how many UTF-8 bytes its predicted tokens
spell (`num_bytes`), for bits per byte. Tokenising and packing are `datasets.map` calls.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import torch
from datasets import Dataset
from datasets.utils import logging as ds_logging
from torch.utils.data import DataLoader

from engram.data import build_splits
from engram.data.families.text import corpus_info
from engram.data.records import Record
from engram.data.resumable import ResumableDataModule
from engram.data.sampling import ResumableDataLoader

log = logging.getLogger(__name__)

CHARS_PER_TOKEN_BOUND = 12  # documents read before the cap: more characters than any tokenizer spends on a token


def ordered(records: list[Record], seed: int, split: str) -> list[Record]:
    out = list(records)
    random.Random(f"{seed}:text-order:{split}").shuffle(out)
    return out


def pack_documents(texts: list[str], tokenizer: Any, block_size: int, max_tokens: int | None) -> Dataset:
    """Blocks of exactly `block_size` tokens (the remainder after the last full block is dropped), at most
    `max_tokens // block_size` of them, each with `num_bytes`."""
    if max_tokens is not None:  # tokenise only as much text as the cap can use
        budget, kept = max_tokens * CHARS_PER_TOKEN_BOUND, []
        for t in texts:
            kept.append(t)
            budget -= len(t)
            if budget <= 0:
                break
        texts = kept
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("data=text needs a tokenizer with an eos token (it separates the documents)")

    def tokenise(batch: dict[str, list[str]]) -> dict[str, list[list[int]]]:
        ids = tokenizer(batch["text"], add_special_tokens=False)["input_ids"]
        return {"ids": [x + [eos] for x in ids]}

    def group(batch: dict[str, list[list[int]]]) -> dict[str, list[list[int]]]:
        flat = [t for ids in batch["ids"] for t in ids]
        n = len(flat) // block_size * block_size
        return {"input_ids": [flat[i : i + block_size] for i in range(0, n, block_size)]}

    quiet = ds_logging.is_progress_bar_enabled()
    if quiet:
        ds_logging.disable_progress_bar()
    try:
        ds = Dataset.from_dict({"text": texts})
        ds = ds.map(tokenise, batched=True, batch_size=64, remove_columns=["text"])
        # one group over large batches: a document's tail continues in the next block as run_clm packs
        ds = ds.map(group, batched=True, batch_size=4096, remove_columns=["ids"])
        if max_tokens is not None:
            ds = ds.select(range(min(len(ds), max_tokens // block_size)))
        ds = ds.map(lambda b: {"num_bytes": [len(tokenizer.decode(x[1:]).encode("utf-8")) for x in b["input_ids"]]},
                    batched=True, batch_size=256)
    finally:
        if quiet:
            ds_logging.enable_progress_bar()
    return ds.with_format("torch", columns=["input_ids", "num_bytes"])


def collate_blocks(features: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    ids = torch.stack([f["input_ids"] for f in features]).long()
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone(),
            "prompt_lengths": torch.zeros(len(ids), dtype=torch.long),
            "num_bytes": torch.stack([f["num_bytes"] for f in features]).long()}


class TextDataModule(ResumableDataModule):
    """Packed token blocks of the text family's train / eval (validation) / test documents."""

    def __init__(self, data_cfg: Any, tokenizer: Any) -> None:
        super().__init__(data_cfg, tokenizer)
        self.corpus: dict[str, Any] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        self.splits = build_splits(self.cfg)
        block, seed = int(self.cfg.block_size), int(self.cfg.seed)
        caps = {"train": self.cfg.num_tokens, "eval": int(self.cfg.eval_tokens), "test": int(self.cfg.eval_tokens)}
        for split, cap in caps.items():
            texts = [r["answer"] for r in ordered(self.splits[split], seed, split)]
            self.datasets[split] = pack_documents(texts, self.tokenizer, block, None if cap is None else int(cap))
            if len(self.datasets[split]) == 0:
                raise ValueError(f"data=text: the {split} split holds fewer than data.block_size={block} tokens "
                                 f"(lower data.block_size or give more text)")
        self.corpus = {**corpus_info(self.cfg, self.splits), "block_size": block,
                       "tokens": {s: len(ds) * block for s, ds in self.datasets.items()}}
        log.info("data=text: %s; training on %d tokens, scoring %d validation and %d test tokens",
                 self.corpus["source"], *(self.corpus["tokens"][s] for s in ("train", "eval", "test")))

    @property
    def num_train_tokens(self) -> int:
        self.setup()
        return len(self.datasets["train"]) * int(self.cfg.block_size)

    def loader(self, split: str, batch_size: int | None = None) -> DataLoader:
        """Blocks of a split in order (evaluation)."""
        self.setup()
        return DataLoader(self.datasets[split], batch_size=int(batch_size or self.cfg.eval_batch_size),
                          shuffle=False, collate_fn=collate_blocks)

    def train_dataloader(self) -> ResumableDataLoader:
        self.setup()
        return self.resumable_loader(self.datasets["train"], collate_blocks)

    def val_dataloader(self) -> DataLoader:
        return self.loader("eval")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")
