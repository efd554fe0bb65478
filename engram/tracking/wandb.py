"""Experiment tracking: W&B offline by default (never waits on the network), CSV, or none.

`logger.mode` is `offline` unless `WANDB_MODE` or `logger.mode=online` says otherwise; an offline run lives in
`<run dir>/wandb/offline-run-*` and can be uploaded later with `wandb sync`. Project `engram-lab`, group = the
experiment name, tags = variant / model / data family; the full resolved config is the run config.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import wandb
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger

log = logging.getLogger(__name__)

TABLE_COLUMNS = ("prompt", "expected", "generated", "correct", "category", "seen")


def run_tags(cfg: Any) -> list[str]:
    tags = [f"variant:{cfg.variant.name}", f"model:{cfg.model.name}", f"data:{cfg.data.family}"]
    return tags + [str(t) for t in (cfg.logger.get("tags") or [])]


WANDB_ENV = ("WANDB_MODE", "WANDB_DIR", "WANDB_SILENT", "WANDB_CONSOLE", "WANDB_DISABLE_CODE")
# The environment as it was before this process's current W&B run. A run changes it (this module, and Lightning's
# WandbLogger sets WANDB_MODE=dryrun when offline); in a multirun the next job's config reads WANDB_MODE
# (conf/logger/wandb.yaml) and its files belong in its own run dir, so finish() puts it back.
_outer_env: dict[str, str | None] = {}


def prepare_wandb_env(mode: str, run_dir: Path) -> None:
    """Environment for a W&B run that stays local unless mode is online; set before wandb.init and undone by
    `restore_wandb_env` (finish() calls it)."""
    if not _outer_env:
        _outer_env.update({k: os.environ.get(k) for k in WANDB_ENV})
    os.environ["WANDB_MODE"] = mode
    os.environ["WANDB_DIR"] = _outer_env["WANDB_DIR"] or str(run_dir)
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_CONSOLE", "off")  # keep stdout to rich and Lightning
    os.environ.setdefault("WANDB_DISABLE_CODE", "true")


def build_loggers(cfg: Any, run_dir: Path, config: dict[str, Any] | None = None) -> list[Logger]:
    """Loggers for `cfg.logger.name`; `config` (the resolved config) becomes the run config."""
    name = cfg.logger.name
    if name == "none":
        return []
    if name == "csv":
        logger: Logger = CSVLogger(save_dir=str(run_dir), name="csv", version="")
    else:
        mode = str(cfg.logger.get("mode") or "offline")
        prepare_wandb_env(mode, run_dir)
        logger = WandbLogger(
            project=cfg.logger.get("project") or "engram-lab",
            group=cfg.logger.get("group") or cfg.experiment_name,
            tags=run_tags(cfg),
            name=f"{cfg.variant.name}-{cfg.model.name}-{cfg.data.family}",
            job_type=cfg.get("task_name", "train"),
            save_dir=str(run_dir),
            offline=mode == "offline",
            mode=mode,
        )
    if config is not None:
        logger.log_hyperparams(config)
    return [logger]


def _wandb_loggers(loggers: list[Logger]) -> list[WandbLogger]:
    return [lg for lg in loggers if isinstance(lg, WandbLogger)]


def log_histograms(loggers: list[Logger], hists: dict[str, Any], step: int) -> None:
    """Gate value histograms (`wandb.Histogram`); other loggers get the scalar statistics only."""
    wandb_loggers = _wandb_loggers(loggers)
    if not wandb_loggers or not hists:
        return

    payload = {k: wandb.Histogram(v.float().numpy()) for k, v in hists.items() if v.numel()}
    for lg in wandb_loggers:
        lg.experiment.log({**payload, "trainer/global_step": step})


def log_final(
    loggers: list[Logger], metrics: dict[str, float], rows: list[dict[str, Any]], step: int,
    retention_rows: list[dict[str, Any]] | None = None,
) -> None:
    """End-of-run metrics to every logger; on W&B also the summary and per-example tables."""
    numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    for lg in loggers:
        lg.log_metrics(numeric, step=step)
    for lg in _wandb_loggers(loggers):
        run = lg.experiment
        run.summary.update(numeric)
        table = wandb.Table(columns=list(TABLE_COLUMNS), data=[[r.get(c) for c in TABLE_COLUMNS] for r in rows])
        payload: dict[str, Any] = {"eval/examples": table}
        if retention_rows:
            cols = ["id", "kind", "base", "now", "unchanged"]
            payload["eval/retention_examples"] = wandb.Table(columns=cols,
                                                            data=[[r[c] for c in cols] for r in retention_rows])
        run.log({**payload, "trainer/global_step": step})


def restore_wandb_env() -> None:
    """The W&B environment variables as they were before `prepare_wandb_env` (no-op when it did not run)."""
    for key, value in _outer_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _outer_env.clear()


def finish(loggers: list[Logger], exit_code: int = 0) -> None:
    """Close the runs so the next multirun job starts a fresh one (with the environment it started with)."""
    for lg in loggers:
        lg.finalize("success" if exit_code == 0 else "failed")
    if _wandb_loggers(loggers):
        if wandb.run is not None:
            wandb.finish(exit_code=exit_code)
    restore_wandb_env()
