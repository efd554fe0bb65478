"""The evaluate-and-save path of language-model runs (data=text): perplexity on the test split -> eval.json + eval.md.

Metrics: `lm/loss`, `lm/ppl`, `lm/bpb` of the trained model; `lm/loss_base`, `lm/ppl_base`, `lm/bpb_base` of the
untouched base model on the same blocks (scored before the variant was applied); for a memory the knock-out
(`lm/ppl_knockout`: the same model with its memories off); `lm/tokens_per_s` of the scoring pass; parameter counts;
the memories' final gate statistics. The validation split is the trainer's (`val/loss`, for choosing settings: the
test split is scored once, here).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from engram.evaluation.gate_classes import BigramCounts, GateByClass
from engram.evaluation.gate_stats import collect_gate_stats
from engram.evaluation.perplexity import LMScore, score_blocks
from engram.evaluation.results import write_results
from engram.evaluation.scoring import EvalOutcome
from engram.models.accounting import account, sequence_length
from engram.models.inject import engram_memories, memory_tracing
from engram.models.params import count_parameters
from engram.tracking.token_gate_plot import GateRow, plot_token_gates

GATE_PNG = "gate_tokens.png"  # the memory's gate over the first test tokens

SUMMARY = (("perplexity", "lm/ppl", "{:.3f}"), ("bits per byte", "lm/bpb", "{:.4f}"),
           ("base perplexity", "lm/ppl_base", "{:.3f}"), ("knock-out perplexity", "lm/ppl_knockout", "{:.3f}"),
           ("tokens/s (scoring)", "lm/tokens_per_s", "{:.0f}"),
           ("trainable parameters", "params/trainable", "{:,.0f}"))


def evaluate_text(model: Any, datamodule: Any, cfg: Any, run_dir: Path, info: dict[str, Any], base: LMScore | None,
                  *, title: str, metrics: dict[str, float] | None = None, unchanged: bool = False,
                  before_write: Callable[[dict[str, float], dict[str, Any]], None] | None = None) -> EvalOutcome:
    """Score `model` on the test split, write eval.json + eval.md, print the summary. `unchanged`: `model` is the
    base itself (a frozen baseline), so its score is `base` (the same weights on the same blocks)."""
    metrics = dict(metrics or {})
    counts = count_parameters(model)
    unchanged = unchanged and base is not None
    by_class = GateByClass(datamodule.tokenizer, training_bigrams(datamodule)) if engram_memories(model) else None
    with memory_tracing(model) as traces:  # after the pass: the traces of the last test batch (gate statistics)
        after_batch = None if by_class is None else lambda batch: by_class(batch, traces)
        test = base if unchanged else score_blocks(model, datamodule.loader("test"), desc="perplexity (test)",
                                                   after_batch=after_batch)
    metrics.update(test.metrics())
    metrics["lm/tokens_per_s"] = test.tokens_per_s
    metrics["lm/tokens"] = float(test.tokens)
    if base is not None:
        metrics.update(base.metrics(suffix="_base"))
        metrics["lm/ppl_change"] = metrics["lm/ppl"] / metrics["lm/ppl_base"] - 1.0
    if engram_memories(model):
        with model.memories_off():
            metrics.update(score_blocks(model, datamodule.loader("test"), desc="perplexity (knock-out)")
                           .metrics(suffix="_knockout"))
        metrics.update(collect_gate_stats(model, traces))
        metrics.update(by_class.metrics())
        if by_class.examples:
            rows = [GateRow(f"test block {i}", pieces, gate, [False] * len(gate))
                    for i, (pieces, gate) in enumerate(by_class.examples)]
            plot_token_gates(rows, f"{title}: memory gate per token (test text)", Path(run_dir) / GATE_PNG)
    metrics["params/trainable"] = float(counts["trainable"])
    metrics.update(account(model, sequence_length(cfg.data)).metrics())  # params/total, params/active, flops/token
    info = {**info, "corpus": datamodule.corpus}
    if before_write is not None:
        before_write(metrics, info)
    write_results(run_dir, info, metrics, [], markdown=summary_markdown(title, info, metrics))
    print_summary(title, metrics, run_dir)
    return EvalOutcome(metrics)


def training_bigrams(datamodule: Any) -> BigramCounts:
    """Bigram counts of the training blocks (the frequency buckets of the gate statistics)."""
    blocks = datamodule.datasets["train"][:]["input_ids"]
    return BigramCounts(blocks, len(datamodule.tokenizer))


def summary_markdown(title: str, info: dict[str, Any], metrics: dict[str, float]) -> str:
    lines = [f"# {title}", "", *[f"- {k}: {v}" for k, v in info.items()], "", "| metric | value |", "|---|---|"]
    lines += [f"| {label} | {fmt.format(metrics[key])} |" for label, key, fmt in SUMMARY if key in metrics]
    gates = [k for k in metrics if k.startswith(("gate_class/", "gate_freq/"))]
    if gates:
        lines += ["", "Mean gate on the test text by token class and by training-bigram count "
                  "(engram/evaluation/gate_classes.py); share = fraction of test tokens:", "",
                  "| statistic | value |", "|---|---|"]
        lines += [f"| {k} | {metrics[k]:.4f} |" for k in gates]
    return "\n".join(lines) + "\n"


def print_summary(title: str, metrics: dict[str, float], run_dir: Path) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for label, key, fmt in SUMMARY:
        if key in metrics:
            table.add_row(label, fmt.format(metrics[key]))
    console = Console()
    console.print(table)
    console.print(f"run dir: {run_dir}")
