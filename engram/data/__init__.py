"""Data families (one module each in engram/data/families/), batches and the export command.

Every family gives records `{"prompt", "answer", "category", "key", "seen"}` through `build_splits(data_cfg)`.
`EngramDataModule` (torch/lightning) is imported lazily so that building records stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from engram import registry
from engram.config import ConfigError
from engram.data.records import RECORD_KEYS, Record, as_data_cfg


def build_splits(data_cfg: Any) -> dict[str, list[Record]]:
    """`{"train": [...], "eval": [...]}` (jsonl may add "test") for `data_cfg.family` (engram/data/families/, see
    engram/registry.py), deterministic in `seed`."""
    cfg = as_data_cfg(data_cfg)
    if cfg.family not in registry.names("family"):
        raise ConfigError("data.family", cfg.family, f"is not one of {', '.join(registry.names('family'))}")
    return registry.get("family", cfg.family)(cfg)


def __getattr__(name: str) -> Any:
    if name == "EngramDataModule":
        return import_module("engram.data.datamodule").EngramDataModule
    raise AttributeError(f"module 'engram.data' has no attribute {name!r}")


__all__ = ["RECORD_KEYS", "EngramDataModule", "Record", "as_data_cfg", "build_splits"]
