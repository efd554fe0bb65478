"""report.py on semantic-compression runs: compress.json -> report.md with the table and the two plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


def trained_row(docs: str, condition: str, exact: float, k: int | None = None, carrier: str | None = None,
                placement: str | None = None) -> dict:
    ratio = 64.0 / k if k else (1.0 if condition == "full" else None)
    return {"docs": docs, "condition": condition, "k": k, "carrier": carrier, "placement": placement,
            "doc_tokens": 64.0, "compression_ratio": ratio, "exact_match": exact, "share_of_full": exact / 0.8,
            "token_accuracy": exact, "n": 96}


def test_report_draws_trained_compressor_runs(tmp_path: Path) -> None:
    run = tmp_path / "trained"
    run.mkdir()
    rows = [trained_row(d, "full", 0.8) for d in ("bios", "towns")] + [trained_row(d, "none", 0.0)
                                                                       for d in ("bios", "towns")]
    rows += [trained_row(d, "compressor", 0.05 * k, k, c, p) for d in ("bios", "towns") for k in (1, 4, 16)
             for c, p in (("embedding", "prefix"), ("kv", "prefix"))]
    rows += [trained_row("bios", "retrieval", 0.04 * k, k, "embedding", "prefix") for k in (1, 4, 16)]
    (run / "compressor.json").write_text(json.dumps(rows))
    assert main([str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "## Trained compressor (`trained`)" in report
    assert "| towns | compressor | 16 | kv | prefix | 4.0x |" in report
    assert (tmp_path / "compressor_share_vs_ratio.png").stat().st_size > 1000
    assert "](compressor_share_vs_ratio.png)" in report


def test_compressor_plot_draws_each_setting_by_its_ratio(tmp_path: Path) -> None:
    from engram.tracking.compressor_plots import plot_share_vs_ratio

    rows = [trained_row("bios", "full", 0.8), trained_row("bios", "none", 0.0)]
    rows += [trained_row("bios", "compressor", 0.2, k, "kv", "prefix") for k in (4, 16)]
    pretrained = dict(trained_row("bios", "compressor", 0.4, 16, "kv", "prefix"), pretrain=["autoencode"],
                      pretrain_steps=100)
    drawn = plot_share_vs_ratio([*rows, pretrained], tmp_path / "p.png")
    assert drawn["bios"]["kv, prefix"] == [[4.0, 0.25], [16.0, 0.25]]
    assert drawn["bios"]["kv, prefix, autoencode 100"] == [[4.0, 0.5]]  # another recipe: a line of its own
    cloze = dict(pretrained, qa_sources=["bios", "cloze"])
    drawn = plot_share_vs_ratio([*rows, cloze], tmp_path / "c.png")
    assert drawn["bios"]["kv, prefix, autoencode 100, QA on bios + cloze"] == [[4.0, 0.5]]
    from engram.tracking.compressor_plots import with_recipes

    found = trained_row("bios", "retrieval", 0.3, 16, "kv", "prefix")  # a run that did not record it on this row
    joined = plot_share_vs_ratio(with_recipes([cloze, found]), tmp_path / "r.png")
    assert joined["bios"]["kv, prefix, autoencode 100, QA on bios + cloze (retrieved)"] == [[4.0, pytest.approx(0.375)]]
    assert drawn["bios"]["no document"][0][1] == 0.0


def test_trained_runs_of_one_grid_draw_as_one_sweep(tmp_path: Path) -> None:
    for k in (4, 16):
        run = tmp_path / f"k{k}"
        run.mkdir()
        rows = [trained_row("bios", "full", 0.8), trained_row("bios", "none", 0.0),
                trained_row("bios", "compressor", 0.01 * k, k, "kv", "prefix")]
        (run / "compressor.json").write_text(json.dumps(rows))
    assert main([str(tmp_path / "k4"), str(tmp_path / "k16"), "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert "(`k4`)" in report and "(`k16`)" in report and report.count("![compressor_share_vs_ratio]") == 1
    from engram.tracking.compressor_plots import plot_share_vs_ratio, read_compressor_runs

    both = [r for rows in read_compressor_runs([tmp_path]).values() for r in rows]
    drawn = plot_share_vs_ratio(both, tmp_path / "p.png")
    assert drawn["bios"]["kv, prefix"] == [[4.0, pytest.approx(0.2)], [16.0, pytest.approx(0.05)]]
