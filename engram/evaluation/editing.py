"""Knowledge-editing metrics, as EasyEdit reports them, for every variant (baseline, LoRA, memory, combined).

Three questions, each scored two ways: by free greedy generation (exact match of the cleaned answer) and teacher-
forced (EasyEdit's token accuracy: the share of answer tokens that are the model's argmax given the true prefix).

- efficacy: the facts that were taught (the seen half of the eval split).
- generalisation: the same taught facts asked in other wordings (the "paraphrase" split: exact_match's templates
  per category, or a JSONL line's "paraphrases").
- locality: unrelated prompts (the general retention prompts, taught fact prompts left out). Generation: the share
  answered exactly as the base model did (= eval/retention). Teacher-forced: the base model's own greedy answer is
  fed back and the share of its tokens the model still predicts is measured; for the base model that is ~1 by
  construction (the baseline row shows how close re-tokenising the answer text comes).
- neighbours (`edit/neighbors`, `_tf`): untaught questions about the taught entities (the "neighbor" split),
  answered as the base model answers them: engram/evaluation/neighbors.py, scored beside these by scoring.py.

A fact scores 1 under teacher forcing when every answer token (eos included) is the argmax: then greedy generation
reproduces it exactly, so `*_tf_exact` equals generation exact match up to the numerics of cached decoding.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from engram.data.collate import answer_window
from engram.data.formatting import encode_answers, encode_prompts, pad_id
from engram.evaluation.generate_eval import evaluate_generation, teacher_forced_batches
from engram.evaluation.retention import general_pairs
from engram.memory.trace import Traces
from engram.models.inject import engram_memories, memory_tracing

BATCH = 16


@dataclass
class TokenScores:
    """Teacher-forced scores of a set of (prompt, answer) pairs."""

    token_accuracy: list[float]  # per pair: share of answer tokens that are the argmax
    exact: list[bool]  # per pair: every answer token is the argmax
    # a traced pass (`trace=True`, a model with memories): the memory entering summed over the memories' kept
    # positions, how many there were, per pair whether every kept position got all its heads, and the traces of
    # the pass's last forward (engram/evaluation/selectivity.py and the final/ gate statistics read them)
    entering: float = 0.0
    positions: int = 0
    intact: list[bool] = field(default_factory=list)
    traces: Traces = field(default_factory=dict)

    @property
    def mean_accuracy(self) -> float:
        return sum(self.token_accuracy) / len(self.token_accuracy) if self.token_accuracy else float("nan")

    @property
    def mean_entering(self) -> float:
        return self.entering / self.positions if self.positions else float("nan")

    def observe(self, traces: Traces, rows: int, device: torch.device) -> None:
        """Adds the memories' traces of one forward over `rows` pairs."""
        intact = torch.ones(rows, dtype=torch.bool, device=device)
        for trace in traces.values():
            kept = trace.kept()
            self.entering += float(kept.sum())
            self.positions += kept.numel()
            intact &= trace.all_heads_passed()
        self.intact.extend(intact.tolist())

    @property
    def exact_share(self) -> float:
        return sum(self.exact) / len(self.exact) if self.exact else float("nan")


def token_scores(model: Any, prompts: Sequence[Sequence[int]], answers: Sequence[Sequence[int]], *,
                 max_length: int, pad_token_id: int, batch_size: int = BATCH, trace: bool = False) -> TokenScores:
    """Teacher-forced token accuracy of any causal LM (plain, peft, EngramModel) on (prompt ids, answer ids) pairs,
    joined as training joins them. Changes nothing (eval mode: no address claims a row). As in training, only
    positions from the shortest prompt on get logits (`answer_window`); the memories still see every position.
    `trace`: also record how much memory entered (`TokenScores.observe`), in the same forwards."""
    scores = TokenScores([], [])
    wants_prompt_lengths = bool(engram_memories(model))  # span hashes need to know where the prompt ends
    with memory_tracing(model) if trace else contextlib.nullcontext({}) as traces:
        for batch in teacher_forced_batches(model, prompts, answers, max_length, pad_token_id, batch_size):
            extra = {"prompt_lengths": batch["prompt_lengths"]} if wants_prompt_lengths else {}
            keep, labels = answer_window(batch)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           logits_to_keep=keep, **extra).logits
            if trace:
                scores.observe(traces, len(batch["input_ids"]), batch["input_ids"].device)
            counted = labels != -100
            right = (logits.argmax(-1) == labels) & counted
            for r, c in zip(right, counted, strict=True):
                n = int(c.sum())
                scores.token_accuracy.append(float(r.sum()) / n if n else float("nan"))
                scores.exact.append(bool(n) and int(r.sum()) == n)
    scores.traces = traces
    return scores


def fact_scores(model: Any, tokenizer: Any, facts: Sequence[dict[str, Any]], prompt_format: str,
                max_length: int, trace: bool = False) -> TokenScores:
    """Teacher-forced scores of fact records ({"prompt", "answer"}), encoded exactly as training encodes them."""
    prompts = encode_prompts(tokenizer, [str(f["prompt"]) for f in facts], prompt_format)
    answers = encode_answers(tokenizer, [str(f["answer"]) for f in facts], prompt_format)
    return token_scores(model, prompts, answers, max_length=max_length, pad_token_id=pad_id(tokenizer), trace=trace)


def locality_scores(model: Any, tokenizer: Any, base_general: Sequence[str], max_length: int,
                    taught: set[str] | None = None, trace: bool = False) -> TokenScores:
    """Teacher-forced agreement with the base model's own answers to the general prompts."""
    prompts, answers = general_pairs(tokenizer, list(base_general), taught)
    return token_scores(model, prompts, answers, max_length=max_length, pad_token_id=pad_id(tokenizer), trace=trace)


@dataclass
class EditingScores:
    """`edit/*` metrics and the two teacher-forced passes behind them (traced when asked), which selectivity reads
    instead of running them again."""

    metrics: dict[str, float]
    facts: TokenScores | None  # the taught facts of the eval split (None: there are none)
    general: TokenScores  # the general prompts, answered as the base model answered them


def editing_metrics(model: Any, tokenizer: Any, datamodule: Any, eval_metrics: dict[str, float],
                    base_general: Sequence[str], *, prompt_format: str, max_length: int, batch_size: int,
                    max_new_tokens: int, taught: set[str] | None = None, trace: bool = False) -> EditingScores:
    """`edit/*` (efficacy, generalization, locality; `_tf` = teacher-forced) plus `paraphrase/exact_match*` (the
    rewordings of taught facts) when the data has a paraphrase split. `eval_metrics`: the eval split's generation
    metrics, already computed. `trace`: the efficacy and locality passes also record the memories' traces."""
    seen = [r for r in datamodule.eval_records if r.get("seen")]
    out: dict[str, float] = {}
    if "eval/exact_match_seen" in eval_metrics:
        out["edit/efficacy"] = eval_metrics["eval/exact_match_seen"]
    facts = fact_scores(model, tokenizer, seen, prompt_format, max_length, trace) if seen else None
    if facts is not None:
        out["edit/efficacy_tf"] = facts.mean_accuracy
    # only the rewordings of taught facts are decoded: an untaught fact's rewording measures the base model
    seen_paraphrases = [r for r in (datamodule.splits or {}).get("paraphrase") or [] if r.get("seen")]
    if seen_paraphrases:
        result = evaluate_generation(model, tokenizer,
                                     datamodule.generation_batches(batch_size, split="paraphrase", seen_only=True),
                                     max_new_tokens, total=len(seen_paraphrases), prefix="paraphrase",
                                     check_cache=False, match_only=True)
        out.update({k: v for k, v in result.metrics.items()
                    if k.startswith(("paraphrase/exact_match", "paraphrase/num_"))})
        out["edit/generalization"] = out["paraphrase/exact_match_seen"]
        out["edit/generalization_tf"] = fact_scores(model, tokenizer, seen_paraphrases, prompt_format,
                                                    max_length).mean_accuracy
    locality = locality_scores(model, tokenizer, base_general, max_length, taught, trace)
    out["edit/locality_tf"] = locality.mean_accuracy
    return EditingScores(out, facts, locality)
