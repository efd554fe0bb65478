"""logger=mlflow: a run in the experiment named after the run's group (the experiment name), with every scalar as a
metric, the config as params, the tags and seed as MLflow tags and the eval tables as JSON artifacts (eval/*.json).

The store: `logger.tracking_uri` (or MLFLOW_TRACKING_URI) for a shared one or a server (`http://host:5000`,
`sqlite:///path.db`, `postgresql://...`); by default a SQLite store <run dir>/mlflow.db with artifacts in
<run dir>/mlartifacts, local like W&B's offline files (`mlflow ui --backend-store-uri sqlite:///<run dir>/mlflow.db`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger, MLFlowLogger

from engram.tracking.loggers._common import run_name, run_record, run_tags


class EngramMLFlowLogger(MLFlowLogger):
    def log_histograms(self, hists: dict[str, Any], step: int) -> None:
        """MLflow has no histograms: the gate statistics arrive as scalars (GateStats)."""

    def log_tables(self, tables: dict[str, tuple[list[str], list[dict[str, Any]]]], step: int,
                   summary: dict[str, float] | None = None) -> None:
        for key, (cols, rows) in tables.items():
            self.experiment.log_dict(self.run_id, {"columns": cols, "data": [[r.get(c) for c in cols] for r in rows]},
                                     f"{key}.json")


def local_store(run_dir: Path) -> tuple[str, str]:
    """(tracking URI, artifact location) of the default store inside the run dir."""
    run_dir = run_dir.resolve()
    return f"sqlite:///{run_dir / 'mlflow.db'}", (run_dir / "mlartifacts").as_uri()


def mlflow_tags(cfg: Any) -> dict[str, str]:
    """`key:value` tags as MLflow tag key = value, the others as tag = "true"; all of them also in `tags`."""
    record = run_record(cfg)
    tags = {"tags": ",".join(run_tags(cfg)), "seed": str(record["seed"])}
    for tag in run_tags(cfg):
        key, _, value = tag.partition(":")
        tags.setdefault(key, value if value else "true")
    return tags


def build(cfg: Any, run_dir: Path) -> list[Logger]:
    uri = cfg.logger.get("tracking_uri")
    artifacts = None  # a server's or an existing experiment's own
    if not uri:
        uri, artifacts = local_store(run_dir)
    elif str(uri).startswith("sqlite:///"):  # a shared SQLite file: its artifacts beside it, not in the cwd
        artifacts = (Path(str(uri)[len("sqlite:///"):]).resolve().parent / "mlartifacts").as_uri()
    return [EngramMLFlowLogger(
        experiment_name=str(cfg.logger.get("group") or cfg.experiment_name),
        run_name=run_name(cfg),
        tracking_uri=str(uri),
        tags=mlflow_tags(cfg),
        save_dir=str(run_dir),
        artifact_location=artifacts,
        log_model=False,
    )]
