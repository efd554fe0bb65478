"""Data families (one module each in engram/data/families/), batches and the export command.

Every family gives records `{"prompt", "answer", "category", "key", "seen"}` through `build_splits(data_cfg)`.
Eval records may carry "paraphrases" (other wordings of the prompt); then `build_splits` adds a "paraphrase" split.
Likewise "neighbors" (untaught questions about the same entity) -> a "neighbor" split.
`EngramDataModule` (torch/lightning) is imported lazily so that building records stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from engram import registry
from engram.config import ConfigError
from engram.data.records import RECORD_KEYS, Record, as_data_cfg, neighbor_split, paraphrase_split


def build_splits(data_cfg: Any) -> dict[str, list[Record]]:
    """`{"train": [...], "eval": [...]}` for `data_cfg.family` (engram/data/families/, see engram/registry.py),
    deterministic in `seed`. Optional splits: "test" (jsonl with data.test_path) and "paraphrase": one record per
    other wording of each eval record (eval order, then wording order; `records.paraphrase_split`). "paraphrase" is
    present only when some eval record has paraphrases (always for exact_match), like "test" only with a file.
    "neighbor": one record per neighbour question of each seen eval record (`records.neighbor_split`), present only
    when there are some (exact_match always; entity / user_prefs unless data.facts_per_id uses every attribute)."""
    cfg = as_data_cfg(data_cfg)
    if cfg.family not in registry.names("family"):
        raise ConfigError("data.family", cfg.family, f"is not one of {', '.join(registry.names('family'))}")
    splits = registry.get("family", cfg.family)(cfg)
    if "paraphrase" not in splits:
        paraphrases = paraphrase_split(splits["eval"])
        if paraphrases:
            splits["paraphrase"] = paraphrases
    if "neighbor" not in splits:
        neighbors = neighbor_split(splits["eval"], splits["train"])
        if neighbors:
            splits["neighbor"] = neighbors
    return splits


def is_language_model(family: Any) -> bool:
    """Whether data family `family` trains a language model on raw text (it declares `language_model = True`, as
    data=text does): packed blocks, next-token loss everywhere, perplexity. False for a name this checkout does not
    know (an old run dir's plugin family)."""
    try:
        return bool(family) and bool(registry.attribute("family", str(family), "language_model", False))
    except KeyError:
        return False


def __getattr__(name: str) -> Any:
    if name == "EngramDataModule":
        return import_module("engram.data.datamodule").EngramDataModule
    raise AttributeError(f"module 'engram.data' has no attribute {name!r}")


__all__ = ["RECORD_KEYS", "EngramDataModule", "Record", "as_data_cfg", "build_splits", "is_language_model"]
