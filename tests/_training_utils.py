"""Shared by the training/tracking tests: compose the real train config (engram/conf/) for a tiny, fast run."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from engram.config import validate

CONF_DIR = Path(__file__).resolve().parent.parent / "engram" / "conf"

# Small enough that one job (fit 2 steps + greedy eval + retention) takes a few seconds on 2 cores.
FAST = [
    "model=tiny",
    "engram=deepseek",  # the paper's memory (tests of the default recipe, engram=recall, ask for it: test_recall.py)
    "trainer=debug",
    "logger=none",
    "eval_max_new_tokens=4",
    "data.num_train=32",
    "data.num_eval=8",
    "data.batch_size=8",
    "data.eval_batch_size=8",
    "engram.table_size=512",
    "engram.dim=32",
]


def fast_overrides(*overrides: str) -> list[str]:
    """FAST with `overrides` on top (also as train.py command-line arguments)."""
    given = {o.split("=", 1)[0] for o in overrides}
    base = [o for o in FAST if o.split("=", 1)[0] not in given]  # a group may be chosen only once
    return [*base, *overrides]


def tiny_cfg(run_dir: Path, *overrides: str) -> DictConfig:
    """The composed and validated train config for model=tiny, writing into `run_dir`."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*fast_overrides(*overrides), f"+paths.output_dir={run_dir}"])
    return validate(cfg)
