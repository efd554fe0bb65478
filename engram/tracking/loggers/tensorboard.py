"""logger=tensorboard: event files in <run dir>/tensorboard (`tensorboard --logdir <run dir>`): every scalar, the
config as hparams, the tags and seed as text, gate histograms, and the eval tables as markdown text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger, TensorBoardLogger

from engram.tracking.loggers._common import run_record, table_rows


class EngramTensorBoardLogger(TensorBoardLogger):
    def log_histograms(self, hists: dict[str, Any], step: int) -> None:
        for key, values in hists.items():
            if values.numel():
                self.experiment.add_histogram(key, values.float(), global_step=step)

    def log_tables(self, tables: dict[str, tuple[list[str], list[dict[str, Any]]]], step: int,
                   summary: dict[str, float] | None = None) -> None:
        for key, (cols, rows) in tables.items():
            lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table_rows(cols, rows)]
            self.experiment.add_text(key, "\n".join(lines), global_step=step)
        self.experiment.flush()


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def build(cfg: Any, run_dir: Path) -> list[Logger]:
    logger = EngramTensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="", default_hp_metric=False)
    record = run_record(cfg)
    logger.experiment.add_text("run/tags", ", ".join(record["tags"]), global_step=0)
    logger.experiment.add_text("run/seed", str(record["seed"]), global_step=0)
    return [logger]
