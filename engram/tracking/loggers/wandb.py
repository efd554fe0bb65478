"""logger=wandb: offline unless logger.mode=online (engram/tracking/wandb.py sets the environment); the run's
project, group (the experiment name), tags, gate histograms (`wandb.Histogram`) and eval tables (`wandb.Table`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import wandb
from lightning.pytorch.loggers import Logger, WandbLogger

from engram.tracking.loggers._common import run_name, run_tags, table_rows
from engram.tracking.wandb import prepare_wandb_env


class EngramWandbLogger(WandbLogger):
    def log_histograms(self, hists: dict[str, Any], step: int) -> None:
        payload = {k: wandb.Histogram(v.float().numpy()) for k, v in hists.items() if v.numel()}
        if payload:
            self.experiment.log({**payload, "trainer/global_step": step})

    def log_tables(self, tables: dict[str, tuple[list[str], list[dict[str, Any]]]], step: int,
                   summary: dict[str, float] | None = None) -> None:
        run = self.experiment
        run.summary.update(summary or {})
        payload = {k: wandb.Table(columns=cols, data=table_rows(cols, rows)) for k, (cols, rows) in tables.items()}
        run.log({**payload, "trainer/global_step": step})


def build(cfg: Any, run_dir: Path) -> list[Logger]:
    mode = str(cfg.logger.get("mode") or "offline")
    prepare_wandb_env(mode, run_dir)
    return [EngramWandbLogger(
        project=cfg.logger.get("project") or "engram-lab",
        group=cfg.logger.get("group") or cfg.experiment_name,
        tags=run_tags(cfg),
        name=run_name(cfg),
        job_type=cfg.get("task_name", "train"),
        save_dir=str(run_dir),
        offline=mode == "offline",
        mode=mode,
    )]
