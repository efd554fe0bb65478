"""The one evaluate-and-save path, shared by training (train.py) and re-evaluation (evaluate.py run_dir= /
engram_path=): greedy eval of the eval split (+ the user's test file when data.test_path is set), retention of
general answers, editing metrics (engram/evaluation/editing.py; neighbour questions: neighbors.py), the firing curve
of a question-keyed memory (firing.py), patterns consistency, parameter counts and final gate statistics (memories;
a gated LoRA's gate/* and lora_gate_tokens.png) -> eval.json + eval.md (atomic)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engram import registry
from engram.config.schema import DataConfig
from engram.evaluation.editing import editing_metrics
from engram.evaluation.firing import firing_metrics
from engram.evaluation.gate_stats import collect_gate_stats
from engram.evaluation.generate_eval import evaluate_splits
from engram.evaluation.lora_gate import lora_gate_metrics, save_gate_plot
from engram.evaluation.metrics import consistency_from_rows
from engram.evaluation.neighbors import BaseReplies, base_replies, neighbor_metrics
from engram.evaluation.results import print_results, write_results
from engram.evaluation.retention import measure_retention
from engram.evaluation.selectivity import knockout_metrics, selectivity_metrics
from engram.memory.trace import Traces
from engram.models.accounting import account, sequence_length
from engram.models.gated_lora import GatedLoRAModel
from engram.models.inject import engram_memories
from engram.models.params import count_parameters

LORA_GATE_PNG = "lora_gate_tokens.png"
RETENTION_BATCH = 64  # all ~50 general prompts in one generate call: per-step overhead dominates on CPU


@dataclass
class EvalOutcome:
    """What one evaluation wrote: its metrics and the per-example rows (for loggers that want them)."""

    metrics: dict[str, float]
    rows: list[dict[str, Any]] = field(default_factory=list)
    retention_rows: list[dict[str, Any]] = field(default_factory=list)
    test_rows: list[dict[str, Any]] = field(default_factory=list)
    neighbor_rows: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    """Adds the wall time of the block to `timings` as time/eval_<phase>_s: where an evaluation's time goes."""
    start = time.perf_counter()
    try:
        yield
    finally:
        key = f"time/eval_{phase}_s"
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - start


def eval_batch_size(cfg: Any) -> int:
    return int(cfg.data.get("eval_batch_size", DataConfig.eval_batch_size))


def neighbor_references(model: Any, tokenizer: Any, datamodule: Any, cfg: Any) -> BaseReplies | None:
    """The base model's replies to the neighbour questions (None: the data has none), decoded as evaluate_and_save
    decodes the model's. Call it on the untouched base, before the variant wraps it (as for `base_answers`)."""
    return base_replies(model, tokenizer, datamodule, int(cfg.eval_max_new_tokens), eval_batch_size(cfg))


def evaluate_and_save(
    model: Any, tokenizer: Any, datamodule: Any, cfg: Any, run_dir: Path, info: dict[str, Any],
    base_general: list[str], *, title: str, metrics: dict[str, float] | None = None, base_params: int | None = None,
    before_write: Callable[[dict[str, float], dict[str, Any]], None] | None = None,
    base_neighbors: BaseReplies | None = None,
) -> EvalOutcome:
    """Score `model` on `datamodule`'s eval split (and test file), write eval.json + eval.md in run_dir, print them.

    metrics: values known beforehand (e.g. the trainer's losses), kept first. base_params: the base model's size when
    nothing trained here, so params/trainable is what was added to it. before_write(metrics, info): runs after
    scoring and before the files are written (training saves its weights and adds its timings there).
    base_neighbors: `neighbor_references` of the base model; without them there is no edit/neighbors.
    """
    batch_size = eval_batch_size(cfg)
    max_new = int(cfg.eval_max_new_tokens)
    if not datamodule.eval_records:
        datamodule.setup("validate")
    timings: dict[str, float] = {}
    with timed(timings, "facts"):
        result = evaluate_splits(model, tokenizer, datamodule, batch_size, max_new)
    taught = {str(r["prompt"]) for r in datamodule.train_records}
    with timed(timings, "retention"):
        retention, retention_rows = measure_retention(model, tokenizer, base_general, max_new, RETENTION_BATCH,
                                                      taught=taught)

    metrics = dict(metrics or {})
    metrics.update(result.metrics)
    metrics["eval/retention"] = retention
    metrics["eval/retention_taught"] = float(sum(r["taught"] for r in retention_rows))  # left out: trained prompts
    memories = bool(engram_memories(model))
    with timed(timings, "editing"):
        editing = editing_metrics(model, tokenizer, datamodule, result.metrics, base_general,
                                  prompt_format=cfg.data.prompt_format, max_length=int(cfg.data.max_length),
                                  batch_size=batch_size, max_new_tokens=max_new, taught=taught, trace=memories)
    metrics.update(editing.metrics)
    metrics["edit/locality"] = retention
    neighbor_rows: list[dict[str, Any]] = []
    if base_neighbors is not None:
        with timed(timings, "neighbors"):
            found, neighbor_rows = neighbor_metrics(model, tokenizer, datamodule, base_neighbors,
                                                    max_length=int(cfg.data.max_length), batch_size=batch_size,
                                                    max_new_tokens=max_new)
        metrics.update(found)
    # the final/ gate statistics: the memories' traces of the last forward over the taught facts (else the general
    # prompts) of the traced teacher-forced passes
    traces: Traces = (editing.facts or editing.general).traces
    if memories:
        with timed(timings, "knockout"):
            metrics.update(knockout_metrics(model, tokenizer, datamodule, batch_size, max_new))
        seen = [r for r in datamodule.eval_records if r.get("seen")]
        correct = {str(r["prompt"]): bool(r["correct"]) for r in result.rows if r.get("seen")}
        metrics.update(selectivity_metrics(seen, editing.facts, editing.general, correct))
        with timed(timings, "firing"):
            metrics.update(firing_metrics(model, tokenizer, datamodule.splits, cfg, Path(run_dir), title))
    if isinstance(model, GatedLoRAModel):  # where the per-token gate opens: gate/* and lora_gate_tokens.png
        with timed(timings, "gate"):
            gate_metrics, groups = lora_gate_metrics(model, tokenizer, datamodule.eval_records, base_general,
                                                     prompt_format=cfg.data.prompt_format,
                                                     max_length=int(cfg.data.max_length), taught=taught)
        metrics.update(gate_metrics)
        save_gate_plot(tokenizer, groups, Path(run_dir) / LORA_GATE_PNG, title=f"{title}: gate per token")
    if registry.attribute("family", cfg.data.family, "paraphrased", False):
        metrics["eval/consistency"] = consistency_from_rows(result.rows)
    params = count_parameters(model)
    trainable = params["trainable"] if base_params is None else params["total"] - base_params
    metrics["params/trainable"] = float(trainable)
    metrics.update(account(model, sequence_length(cfg.data)).metrics())  # params/total, params/active, flops/token
    metrics.update({f"final/{k}": v for k, v in collect_gate_stats(model, traces).items()})  # none without a memory
    metrics.update(timings)

    if before_write is not None:
        before_write(metrics, info)
    write_results(run_dir, info, metrics, result.rows, retention_rows, result.test_rows, neighbor_rows=neighbor_rows)
    print_results(metrics, result.rows, run_dir, title=title)
    return EvalOutcome(metrics, result.rows, retention_rows, result.test_rows, neighbor_rows)
