"""report.py on semantic-compression runs: compress.json -> report.md with the table and the two plots."""

from __future__ import annotations

import json
from pathlib import Path

from engram.tracking.report_cli import main


def row(condition: str, exact: float, k: int | None = None, layer: int | None = None,
        pooling: str | None = None) -> dict:
    return {"condition": condition, "layer": layer, "k": k, "pooling": pooling, "exact_match": exact,
            "token_accuracy": exact, "tokens_per_answer": 40.0 + (k or 0), "doc_tokens": 64.0,
            "compression_ratio": 64.0 / k if k else (1.0 if condition == "full" else None), "seconds": 1.0}


def test_report_draws_compress_runs(tmp_path: Path) -> None:
    run = tmp_path / "sweep"
    run.mkdir()
    rows = [row("full", 0.9), row("none", 0.0)] + [row("engram", 0.1 * k / 16, k, layer, pooling)
                                                   for layer in (2, 15) for pooling in ("mean", "head")
                                                   for k in (1, 4, 16)]
    (run / "compress.json").write_text(json.dumps({"info": {"retrieval_hit_by_key_layer": {"0": 0.9}}, "rows": rows}))
    (run / "compress.md").write_text("| full | ... |\n")
    assert main([str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "Semantic-compression engrams" in report and "layer 0: 90.0%" in report
    for png in ("compress_accuracy_vs_k.png", "compress_ratio_vs_accuracy.png"):
        assert (tmp_path / png).stat().st_size > 1000 and f"]({png})" in report
