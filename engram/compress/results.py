"""Results of an eval / sweep run: compress.json (rows + summary), compress.md (the table) and the run's loggers
(W&B offline by default, or any logger= option: engram/tracking/run_log.py, the same helpers as every training run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from engram.atomic import atomic_write_text
from engram.tracking.compress_plots import KEEP, RESULT_FILE, TABLE_FILE  # what report.py reads
from engram.tracking.run_log import build_loggers, finish, log_final


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Full-context / no-context exact match and the best compression ratio that keeps >= 80% of full context."""
    by_name = {r["condition"]: r for r in rows if r["condition"] in ("full", "none")}
    full = by_name.get("full", {}).get("exact_match")
    out: dict[str, Any] = {"full_exact_match": full, "none_exact_match": by_name.get("none", {}).get("exact_match"),
                           "keep_share": KEEP, "best_kept": None}
    engram_rows = [r for r in rows if r["condition"] == "engram"]
    if engram_rows:
        best = max(engram_rows, key=lambda r: (r["exact_match"], r["compression_ratio"] or 0))
        out["best_engram"] = {key: best[key] for key in ("layer", "k", "pooling", "exact_match", "compression_ratio")}
    if full:
        kept = [r for r in engram_rows if r["exact_match"] >= KEEP * full]
        if kept:
            top = max(kept, key=lambda r: r["compression_ratio"])
            out["best_kept"] = {key: top[key] for key in ("layer", "k", "pooling", "exact_match",
                                                          "compression_ratio")}
    return out


def _fmt(v: Any, share: bool = False) -> str:
    if v is None:
        return "-"
    if share:
        return f"{100 * v:.1f}%"
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def markdown(rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    lines = ["| condition | layer | k | pooling | exact match | token accuracy | compression | tokens/answer | "
             "retrieval hit | s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['compression_ratio']:.1f}x" if r.get("compression_ratio") else "-"
        lines.append(f"| {r['condition']} | {_fmt(r['layer'])} | {_fmt(r['k'])} | {_fmt(r['pooling'])} | "
                     f"{_fmt(r['exact_match'], True)} | {_fmt(r['token_accuracy'], True)} | {ratio} | "
                     f"{r['tokens_per_answer']:.1f} | {_fmt(r.get('retrieval_hit'), True)} | {r['seconds']:.0f} |")
    s = info["summary"]
    kept = s.get("best_kept")
    lines += ["", f"{info['questions']} questions about {info['documents']} documents "
              f"({info['doc_tokens']:.1f} tokens each on average), model {info['model']}; "
              f"runtime {info['runtime_s']:.0f} s.",
              f"Best compression ratio keeping >= {KEEP:.0%} of full-context exact match: "
              + (f"{kept['compression_ratio']:.1f}x (layer {kept['layer']}, k={kept['k']}, {kept['pooling']}: "
                 f"{100 * kept['exact_match']:.1f}%)" if kept else "none of the engram settings reaches it.")]
    return "\n".join(lines) + "\n"


def write_results(run_dir: Path, rows: list[dict[str, Any]], info: dict[str, Any]) -> Path:
    public = [{k: v for k, v in r.items() if k != "correct"} for r in rows]
    info = {**info, "summary": summary(rows)}
    atomic_write_text(run_dir / RESULT_FILE, json.dumps({"info": info, "rows": public}, indent=1))
    atomic_write_text(run_dir / TABLE_FILE, markdown(public, info))
    return run_dir / RESULT_FILE


def log_rows(cfg: DictConfig, run_dir: Path, command: str, rows: list[dict[str, Any]]) -> None:
    """Every row's metrics (prefixed by its setting) and one table row per row to the configured logger."""
    tracking = OmegaConf.create({**OmegaConf.to_container(cfg, resolve=True), "variant": {"name": "compress"},
                                 "data": {"family": str(cfg.docs)}, "task_name": command})
    loggers = build_loggers(tracking, run_dir, OmegaConf.to_container(cfg, resolve=True))
    metrics: dict[str, float] = {}
    table = []
    for r in rows:
        label = r["condition"] + ("" if r["k"] is None else f"/L{r['layer']}/k{r['k']}/{r['pooling']}")
        for key in ("exact_match", "token_accuracy", "tokens_per_answer", "compression_ratio", "retrieval_hit"):
            if r.get(key) is not None:
                metrics[f"compress/{label}/{key}"] = float(r[key])
        table.append({"prompt": label, "expected": "", "generated": "", "correct": r["exact_match"],
                      "category": r["condition"], "seen": False})
    try:
        log_final(loggers, metrics, table, step=0)
    finally:
        finish(loggers)
