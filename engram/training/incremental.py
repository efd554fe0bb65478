"""Incremental writes into a trained memory (what `python -m engram.write` runs after its input checks).

Load base model + memory (+ LoRA adapter of a combined run), measure recall of the old facts, write the new facts
(engram/training/writing.py), measure again, and save the result to a new file (atomic; the input is untouched).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from engram.config import ConfigError
from engram.data import build_splits
from engram.data.families.jsonl import read_jsonl
from engram.evaluation.retention import base_answers, measure_retention
from engram.models.engram_model import EngramModel
from engram.models.headers import engram_file
from engram.models.loading import load_model
from engram.training.writing import recall_of, write_facts

RETENTION_BATCH = 16
MAX_NEW_TOKENS = 24


def write_incrementally(new_facts: list[dict[str, Any]], keys: dict[str, str]) -> dict[str, Any]:
    """`keys`: the checked command-line keys of engram.write. Returns the summary it prints."""
    source = engram_file(keys["engram"])
    run_cfg = _run_config(source.parent)
    model, tokenizer = _base_model(keys["model"], run_cfg)
    wrapped = EngramModel.from_pretrained(Path(keys["engram"]), model, tokenizer)
    prompt_format = keys["prompt_format"] or (run_cfg.data.prompt_format if run_cfg is not None else "chat")
    old = _old_facts(keys["old"], run_cfg)
    sizes = {"prompt_format": prompt_format, "batch_size": int(keys["batch_size"])}

    summary: dict[str, Any] = {"new_facts": len(new_facts), "old_facts": len(old)}
    if old:
        summary["old_recall_before"] = recall_of(wrapped, tokenizer, old, **sizes)
    t0 = time.perf_counter()
    written = write_facts(wrapped, tokenizer, new_facts, steps=int(keys["steps"]), lr=float(keys["lr"]),
                          margin=float(keys["margin"]), **sizes)
    summary["seconds_write"] = round(time.perf_counter() - t0, 1)
    summary["new_recall"] = written.recall
    if old:
        summary["old_recall_after"] = recall_of(wrapped, tokenizer, old, **sizes)
    if keys["retention"] == "true":
        with wrapped.memories_off():  # the bare LM's answers (cached per base model, as training caches them)
            base = base_answers(wrapped.lm, tokenizer, MAX_NEW_TOKENS, RETENTION_BATCH)
        taught = {str(f["prompt"]) for f in [*old, *new_facts]}
        summary["retention"], _ = measure_retention(wrapped, tokenizer, base, MAX_NEW_TOKENS, RETENTION_BATCH,
                                                    taught=taught)
    summary["out"] = str(wrapped.save_engram(keys["out"]))
    return summary


def _run_config(directory: Path) -> Any:
    cfg_file = directory / ".hydra" / "config.yaml"
    return OmegaConf.load(cfg_file) if cfg_file.is_file() else None


def _base_model(name: str, run_cfg: Any) -> tuple[Any, Any]:
    if name:
        return load_model(name)
    if run_cfg is None or "model" not in run_cfg:
        raise ConfigError("model", "(missing)", "is required when engram= is a file outside a run dir "
                          "(e.g. model=smollm)")
    return load_model(run_cfg.model)


def _old_facts(path: str, run_cfg: Any) -> list[dict[str, Any]]:
    if path:
        return read_jsonl(path)
    if run_cfg is None or "data" not in run_cfg:
        return []
    return build_splits(run_cfg.data)["train"]
