"""Training side of evaluate.py's `train_variants=true`: train + evaluate each of `variants` (by default the six
comparison rows) on one data config, for the comparison.

It lives in training (not evaluation) so the flow stays one-way: evaluate.py passes `train_variants` to
engram.evaluation.evaluate.run, which compares what it returns and never imports training itself.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from engram.config import for_variant
from engram.tracking.run_dirs import RunDir, read_run
from engram.training.pipeline import run_task

log = logging.getLogger(__name__)


def train_variants(cfg: DictConfig, out_dir: Path, variants: list[str]) -> list[RunDir]:
    """Train + evaluate each variant in this process (same data config, so the same split), one dir each.
    A variant that fails is recorded (FAILED.txt by the task wrapper) and the others still run."""
    runs = []
    for variant in variants:
        vcfg = for_variant(cfg, variant)  # checked up front by evaluate.py (check_config), so it validates here
        vcfg.paths = {"output_dir": str(out_dir / variant)}
        hydra_dir = out_dir / variant / ".hydra"  # like a multirun job: report.py and run_dir= can read it
        hydra_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(vcfg, hydra_dir / "config.yaml")
        OmegaConf.save(OmegaConf.create([f"variant={variant}"]), hydra_dir / "overrides.yaml")
        log.info("train_variants: training %s in %s", variant, out_dir / variant)
        try:
            run_task(vcfg)
        except Exception as e:  # noqa: BLE001 - one failing variant must not hide the others
            log.error("train_variants: %s failed: %s", variant, e)
        runs.append(read_run(out_dir / variant))
    return runs
