"""A run's loggers, whichever `logger=` chose them: built from the registry (engram/tracking/loggers/), then the
same records to each -- the config with the run's tags and seed, scalars (Lightning), gate histograms, the final
metrics and the per-example eval tables -- and closed at the end so the next multirun job starts fresh runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger

from engram import registry
from engram.tracking.loggers._common import run_record
from engram.tracking.wandb import restore_wandb_env

TABLE_COLUMNS = ["prompt", "expected", "generated", "correct", "category", "seen"]
RETENTION_COLUMNS = ["id", "kind", "base", "now", "unchanged"]


def build_loggers(cfg: Any, run_dir: Path, config: dict[str, Any] | None = None) -> list[Logger]:
    """The loggers of `cfg.logger.name` (the registry's `build`); `config` (the resolved config), with the run's tags
    and seed, becomes each one's hyperparameters."""
    loggers = list(registry.get("logger", str(cfg.logger.name))(cfg, run_dir))
    if config is not None:
        params = {**config, **run_record(cfg)}
        for lg in loggers:
            lg.log_hyperparams(params)
    return loggers


def log_histograms(loggers: list[Logger], hists: dict[str, Any], step: int) -> None:
    """Gate value histograms to the loggers that keep histograms (the others get the scalar statistics only)."""
    if not hists:
        return
    for lg in loggers:
        if hasattr(lg, "log_histograms"):
            lg.log_histograms(hists, step)


def log_final(
    loggers: list[Logger], metrics: dict[str, float], rows: list[dict[str, Any]], step: int,
    retention_rows: list[dict[str, Any]] | None = None,
) -> None:
    """End-of-run metrics to every logger, and the per-example tables to those that keep tables."""
    numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    tables = {"eval/examples": (TABLE_COLUMNS, rows)}
    if retention_rows:
        tables["eval/retention_examples"] = (RETENTION_COLUMNS, retention_rows)
    for lg in loggers:
        lg.log_metrics(numeric, step=step)
        if hasattr(lg, "log_tables"):
            lg.log_tables(tables, step, summary=numeric)


def finish(loggers: list[Logger], exit_code: int = 0) -> None:
    """Close the runs so the next multirun job starts a fresh one (with the environment it started with)."""
    for lg in loggers:
        lg.finalize("success" if exit_code == 0 else "failed")
    close_wandb(exit_code)


def close_wandb(exit_code: int) -> None:
    """Finish the W&B run this process started, if any, and put the W&B environment back."""
    import sys

    wandb = sys.modules.get("wandb")  # imported only when a W&B logger was built
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=exit_code)
    restore_wandb_env()
