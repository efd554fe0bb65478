"""W&B's environment: offline by default (never waits on the network). The logger: engram/tracking/loggers/wandb.py.

`logger.mode` is `offline` unless `WANDB_MODE` or `logger.mode=online` says otherwise; an offline run lives in
`<run dir>/wandb/offline-run-*` and can be uploaded later with `wandb sync`. Project `engram-lab`, group = the
experiment name, tags = variant / model / data family and the user's; the full resolved config is the run config.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

WANDB_ENV = ("WANDB_MODE", "WANDB_DIR", "WANDB_SILENT", "WANDB_CONSOLE", "WANDB_DISABLE_CODE")
# The environment as it was before this process's current W&B run. A run changes it (this module, and Lightning's
# WandbLogger sets WANDB_MODE=dryrun when offline); in a multirun the next job's config reads WANDB_MODE
# (engram/conf/logger/wandb.yaml) and its files belong in its own run dir, so finish() puts it back.
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


def restore_wandb_env() -> None:
    """The W&B environment variables as they were before `prepare_wandb_env` (no-op when it did not run)."""
    for key, value in _outer_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _outer_env.clear()
