"""Shared by the demo tests: a tiny run dir whose memory knows exactly two facts (engram=recall: answer keys,
fingerprint rows, gate=direct), so its gate is 1 on those facts' answer positions and 0 everywhere else."""

from __future__ import annotations

from pathlib import Path

from _training_utils import tiny_cfg
from omegaconf import OmegaConf

from engram import EngramModel
from engram.data import build_splits
from engram.models import load_model
from engram.training.writing import write_facts

RECALL = ("engram=recall", "engram.table_size=5000", "engram.dim=64", "engram.heads=4", "data.num_train=8",
          "data.num_eval=4")
WRITTEN = 2  # the first two training facts are in the memory; the other six are not


def tiny_memory_run(root: Path) -> tuple[Path, list[dict]]:
    """(run dir with .hydra/config.yaml + engram.safetensors, the facts written into it)."""
    run = root / "run"
    cfg = tiny_cfg(run, *RECALL)
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    model, tok = load_model(cfg.model)
    wrapped = EngramModel(model.requires_grad_(False), cfg.engram, tok)
    facts = build_splits(cfg.data)["train"][:WRITTEN]
    summary = write_facts(wrapped, tok, facts, prompt_format=cfg.data.prompt_format, progress=False)
    assert summary.written == WRITTEN, summary  # the tests below read gates of facts the memory really holds
    wrapped.save_pretrained(run)
    return run, [dict(f) for f in facts]
