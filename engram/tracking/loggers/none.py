"""logger=none: no logger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger


def build(cfg: Any, run_dir: Path) -> list[Logger]:
    return []
