"""Data families (exact_match, patterns, long_recall, jsonl), batches and the export command.

Every family gives records `{"prompt", "answer", "category", "key", "seen"}` through `build_splits(data_cfg)`.
`EngramDataModule` (torch/lightning) is imported lazily so that building records stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from engram.config import ConfigError
from engram.data.records import RECORD_KEYS, Record, as_data_cfg

FAMILIES = {
    "exact_match": ("engram.data.exact_match", "build_exact_match"),
    "patterns": ("engram.data.patterns", "build_patterns"),
    "long_recall": ("engram.data.long_recall", "build_long_recall"),
    "jsonl": ("engram.data.jsonl", "build_jsonl"),
}


def build_splits(data_cfg: Any) -> dict[str, list[Record]]:
    """`{"train": [...], "eval": [...]}` (jsonl may add "test") for `data_cfg.family`, deterministic in `seed`."""
    cfg = as_data_cfg(data_cfg)
    if cfg.family not in FAMILIES:
        raise ConfigError("data.family", cfg.family, f"is not one of {', '.join(FAMILIES)}")
    module, fn = FAMILIES[cfg.family]
    return getattr(import_module(module), fn)(cfg)


def __getattr__(name: str) -> Any:
    if name == "EngramDataModule":
        return import_module("engram.data.datamodule").EngramDataModule
    raise AttributeError(f"module 'engram.data' has no attribute {name!r}")


__all__ = ["FAMILIES", "RECORD_KEYS", "EngramDataModule", "Record", "as_data_cfg", "build_splits"]
