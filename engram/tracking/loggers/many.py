"""logger=many: every logger named in `logger.loggers` (e.g. `logger.loggers=[tensorboard,mlflow,csv]`), each built
by its own module with the same `logger.*` keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger

from engram import registry


def build(cfg: Any, run_dir: Path) -> list[Logger]:
    return [lg for name in cfg.logger.loggers for lg in registry.get("logger", str(name))(cfg, run_dir)]
