"""The one reader of run dirs: a job's `.hydra/config.yaml` + `overrides.yaml`, its eval.json and FAILED.txt, and
the one map from eval.json metric names to table columns. Used by report.py's sweep report and by evaluate.py's
comparison, so both read a run the same way.

A job dir is any directory holding `.hydra/config.yaml` (a run dir given by hand may lack it: then `cfg` is None).
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from engram.config.renamed import load_saved

# eval.json metric -> column name (report.py's results.csv and evaluate.py's comparison rows)
METRIC_COLUMNS = {
    "eval/exact_match": "exact_match", "eval/exact_match_seen": "exact_match_seen",
    "eval/exact_match_unseen": "exact_match_unseen", "eval/retention": "retention",
    "eval/consistency": "consistency", "eval/latency_ms": "latency_ms", "params/trainable": "trainable_params",
    "params/total": "total_params", "eval/num_examples": "num_examples",
    # what a token costs (engram/models/accounting.py)
    "params/active": "active_params", "flops/token": "flops_per_token", "params/table": "table_params",
    "params/idle_experts": "idle_expert_params",
    "val/loss": "eval_loss", "train/loss": "train_loss", "time/total_s": "wall_s",
    # does the memory act only where it should (engram/evaluation/selectivity.py)
    "knockout/exact_match_seen": "knockout_seen", "selectivity/facts": "entering_facts",
    "selectivity/general": "entering_general", "collisions/facts_with_lost_rows": "lost_rows",
    "time/prepopulate_s": "write_s",
    # editing metrics (engram/evaluation/editing.py, neighbors.py); efficacy = seen exact match, locality = retention
    "edit/efficacy_tf": "efficacy_tf", "edit/generalization": "generalization",
    "edit/generalization_tf": "generalization_tf", "edit/locality_tf": "locality_tf",
    "edit/neighbors": "neighbors", "edit/neighbors_tf": "neighbors_tf",
    # a gated LoRA's gate (engram/evaluation/lora_gate.py): on answer / prompt positions of seen facts, on general
    "gate/answer_seen": "lora_gate_answer", "gate/prompt_seen": "lora_gate_prompt", "gate/general": "lora_gate_general",
    # language modelling (engram/evaluation/lm_eval.py)
    **{f"lm/{m}": f"lm_{m}" for m in ("loss", "ppl", "bpb", "loss_base", "ppl_base", "bpb_base", "ppl_change",
                                      "loss_knockout", "ppl_knockout", "tokens_per_s")},
}
NOT_FINISHED = "no eval.json and no error recorded (killed, or still running)"


@dataclass
class RunDir:
    """One run dir as read from disk; `result` is eval.json (None when the job did not finish)."""

    run_dir: Path
    cfg: DictConfig | None
    result: dict[str, Any] | None
    error: str | None = None
    overrides: list[str] = field(default_factory=list)

    @property
    def variant(self) -> str:
        if self.result and self.result.get("info", {}).get("variant"):
            return str(self.result["info"]["variant"])
        return str(OmegaConf.select(self.cfg, "variant.name", default="?")) if self.cfg is not None else "?"

    @property
    def metrics(self) -> dict[str, Any]:
        return (self.result or {}).get("metrics", {})


def find_job_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Job dirs under each path (a multirun dir, a run dir, or a glob such as 'outputs/*/*'), in a stable order."""
    found: dict[Path, None] = {}
    for p in paths:
        matches = [Path(m) for m in sorted(glob.glob(str(p)))] or [Path(p)]
        for m in matches:
            for cfg in sorted(m.glob("**/.hydra/config.yaml"), key=lambda c: _natural_key(c.parent.parent)):
                found.setdefault(cfg.parent.parent.resolve(), None)
    return list(found)


def _natural_key(path: Path) -> list[Any]:
    """Multirun subdirs 0, 1, ..., 10 in numeric order."""
    return [int(part) if part.isdigit() else part for part in path.parts]


def read_error(job: Path) -> str | None:
    """The last informative line of FAILED.txt (the exception), or None when the job recorded no error."""
    note = job / "FAILED.txt"
    if not note.is_file():
        return None
    lines = [ln.strip() for ln in note.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "failed (empty FAILED.txt)"


def read_config(run_dir: Path) -> DictConfig | None:
    """The job's composed config (`.hydra/config.yaml`), None when there is none."""
    cfg_file = Path(run_dir) / ".hydra" / "config.yaml"
    return load_saved(cfg_file) if cfg_file.is_file() else None  # keys renamed since: their new spelling


def read_run(run_dir: str | Path) -> RunDir:
    """Config, overrides, eval.json and (for an unfinished job) the error of one run dir."""
    run_dir = Path(run_dir)
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    overrides = [str(o) for o in OmegaConf.load(overrides_file)] if overrides_file.is_file() else []
    eval_file = run_dir / "eval.json"
    result = json.loads(eval_file.read_text()) if eval_file.is_file() else None
    error = None if result else (read_error(run_dir) or NOT_FINISHED)
    return RunDir(run_dir, read_config(run_dir), result, error, overrides)


def metric_columns(metrics: dict[str, Any], keep_missing: bool = False) -> dict[str, Any]:
    """eval.json metrics renamed to their columns; missing ones as None when `keep_missing`, else left out."""
    if keep_missing:
        return {col: metrics.get(key) for key, col in METRIC_COLUMNS.items()}
    return {col: metrics[key] for key, col in METRIC_COLUMNS.items() if key in metrics}
