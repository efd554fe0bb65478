"""The end of a run: eval.json + eval.md in the run dir, and the evaluation table printed with rich."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from engram.atomic import atomic_write_text
from engram.evaluation.metrics import per_category_counts


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100.0 * v:.1f}%"


def summary_lines(metrics: dict[str, float]) -> list[tuple[str, str]]:
    """(label, value) pairs shown first in every rendering of a result."""
    m = metrics
    lines = [
        ("exact match", _pct(m.get("eval/exact_match"))),
        (f"  seen ({int(m.get('eval/num_seen', 0))})", _pct(m.get("eval/exact_match_seen"))),
        (f"  unseen ({int(m.get('eval/num_unseen', 0))})", _pct(m.get("eval/exact_match_unseen"))),
        ("retention (general prompts)", _pct(m.get("eval/retention"))),
    ]
    # the editing questions beside recall and retention: taught facts reworded, untaught questions about them
    if "edit/generalization" in m:
        lines.append((f"paraphrases of seen facts ({int(m.get('paraphrase/num_seen', 0))})",
                      _pct(m["edit/generalization"])))
    if "edit/neighbors" in m:
        lines.append((f"neighbour questions answered as the base ({int(m.get('neighbor/num_examples', 0))})",
                      _pct(m["edit/neighbors"])))
    lines += [
        ("latency", f"{m.get('eval/latency_ms', 0.0):.1f} ms/answer"),
        ("trainable params", f"{int(m.get('params/trainable', 0)):,} of {int(m.get('params/total', 0)):,}"),
    ]
    if "test/exact_match" in m:  # a user's test file (data.test_path), scored next to the eval split
        lines += [
            (f"test file exact match ({int(m.get('test/num_examples', 0))})", _pct(m.get("test/exact_match"))),
            (f"  seen ({int(m.get('test/num_seen', 0))})", _pct(m.get("test/exact_match_seen"))),
            (f"  unseen ({int(m.get('test/num_unseen', 0))})", _pct(m.get("test/exact_match_unseen"))),
        ]
    if "train/loss" in m:
        lines.append(("final train loss", f"{m['train/loss']:.4f}"))
    if "val/loss" in m:
        lines.append(("eval loss", f"{m['val/loss']:.4f}"))
    if "time/total_s" in m:
        lines.append(("wall time", f"{m['time/total_s']:.1f} s (train {m.get('time/train_s', 0.0):.1f} s)"))
    return lines


def write_results(
    run_dir: Path, info: dict[str, Any], metrics: dict[str, float], rows: list[dict[str, Any]],
    retention_rows: list[dict[str, Any]] | None = None, test_rows: list[dict[str, Any]] | None = None,
    markdown: str | None = None, neighbor_rows: list[dict[str, Any]] | None = None,
) -> tuple[Path, Path]:
    """eval.json (everything, machine-readable) and eval.md (the tables a person reads), each written atomically.
    `test_rows`: the test file's rows, kept apart from the eval split's `examples` (which comparisons check for
    equality). `markdown`: eval.md's text when the run has no fact tables (a language model's summary).
    `neighbor_rows`: the neighbour questions' rows ("expected" = the base model's reply)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    per_cat = per_category_counts(rows)
    payload = {"info": info, "metrics": metrics, "per_category": per_cat, "examples": rows,
               "retention_examples": retention_rows or []}
    if test_rows:
        payload["test_per_category"] = per_category_counts(test_rows)
        payload["test_examples"] = test_rows
    if neighbor_rows:
        payload["neighbor_examples"] = neighbor_rows
    json_path = run_dir / "eval.json"
    atomic_write_text(json_path, json.dumps(payload, indent=1, default=str))
    md_path = run_dir / "eval.md"
    if markdown is None:
        markdown = fact_markdown(info, metrics, rows, per_cat, test_rows, neighbor_rows)
    atomic_write_text(md_path, markdown)
    return json_path, md_path


def fact_markdown(info: dict[str, Any], metrics: dict[str, float], rows: list[dict[str, Any]],
                  per_cat: dict[str, Any], test_rows: list[dict[str, Any]] | None,
                  neighbor_rows: list[dict[str, Any]] | None = None) -> str:
    """eval.md of a fact run: the summary, exact match per category (eval split, test file), the first misses and
    the first neighbour questions answered unlike the base."""
    md = [f"# {info.get('variant')} on {info.get('model')} / {info.get('data')}", ""]
    md += [f"- {k}: {v}" for k, v in info.items()] + ["", "| metric | value |", "|---|---|"]
    md += [f"| {label.strip()} | {value} |" for label, value in summary_lines(metrics)]
    md += ["", "| category | n | correct | exact match |", "|---|---:|---:|---:|"]
    md += [f"| {c} | {v['n']} | {v['correct']} | {_pct(v['exact_match'])} |" for c, v in per_cat.items()]
    if test_rows:
        md += ["", "Test file (data.test_path):", "", "| category | n | correct | exact match |",
               "|---|---:|---:|---:|"]
        md += [f"| {c} | {v['n']} | {v['correct']} | {_pct(v['exact_match'])} |"
               for c, v in per_category_counts(test_rows).items()]
    wrong = [r for r in rows if not r["correct"]][:20]
    if wrong:
        md += ["", "First misses:", "", "| prompt | expected | generated |", "|---|---|---|"]
        md += [f"| {_cell(r['prompt'])} | {_cell(r['expected'])} | {_cell(r['generated'])} |" for r in wrong]
    changed = [r for r in neighbor_rows or () if not r["correct"]][:20]
    if changed:
        md += ["", "First neighbour questions answered unlike the base model:", "",
               "| prompt | base model | this model |", "|---|---|---|"]
        md += [f"| {_cell(r['prompt'])} | {_cell(r['expected'])} | {_cell(r['generated'])} |" for r in changed]
    return "\n".join(md) + "\n"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")[:80]


def print_results(metrics: dict[str, float], rows: list[dict[str, Any]], run_dir: Path, title: str,
                  console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for label, value in summary_lines(metrics):
        table.add_row(label, value)
    for cat, v in per_category_counts(rows).items():
        table.add_row(f"  {cat} ({v['n']})", _pct(v["exact_match"]))
    console.print(table)
    console.print(f"run dir: [bold]{run_dir}[/bold]")
