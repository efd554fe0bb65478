"""logger=csv: <run dir>/csv/metrics.csv (every scalar) and hparams.yaml (the config, tags and seed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger


def build(cfg: Any, run_dir: Path) -> list[Logger]:
    return [CSVLogger(save_dir=str(run_dir), name="csv", version="")]
