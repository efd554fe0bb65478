"""Does the memory act where it should and nowhere else? Knock-out and gate selectivity for eval.json.

- knock-out: the eval split decoded again with the memories switched off (`EngramModel.memories_off`). If the
  trained facts are still recalled, they live in the projections / LoRA, not in the table.
- selectivity: how much memory enters (`MemoryTrace.kept()` of each memory's traced forward: gate value times the
  share of heads the address let through), averaged over the answer positions of the trained facts and over the
  answer positions of the general prompts (their base model's own answers, teacher-forced). A selective memory has
  the first near 1 and the second near 0.
- collisions (address=fingerprint): the share of trained facts with an answer key that lost a head's row to
  another key, and the recall of facts with and without such a loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from engram.data.formatting import encode_answers, encode_prompts, pad_id
from engram.evaluation.generate_eval import evaluate_generation, teacher_forced_batches
from engram.evaluation.retention import general_pairs
from engram.models.inject import memory_tracing

BATCH = 16


def knockout_metrics(model: Any, tokenizer: Any, datamodule: Any, batch_size: int, max_new: int) -> dict[str, float]:
    """`knockout/exact_match_seen`: the taught facts of the eval split decoded with the memories off (untaught
    facts are not decoded: switching off a memory cannot take away what it was never taught)."""
    wrapper = next(m for m in model.modules() if hasattr(m, "memories_off"))
    seen = sum(bool(r.get("seen")) for r in datamodule.eval_records)
    if not seen:
        return {}
    with wrapper.memories_off():
        result = evaluate_generation(model, tokenizer, datamodule.generation_batches(batch_size, seen_only=True),
                                     max_new, total=seen, prefix="knockout", check_cache=False,
                                     match_only=True)
    return {"knockout/exact_match_seen": result.metrics["knockout/exact_match_seen"]}


def selectivity_metrics(model: Any, tokenizer: Any, seen_rows: Sequence[dict[str, Any]], base_general: Sequence[str],
                        prompt_format: str, max_length: int, taught: set[str] | None = None) -> dict[str, float]:
    """`selectivity/facts` (over the seen eval facts), `selectivity/general` (mean memory entering at kept
    positions; general prompts that are `taught` fact prompts are left out, as in retention), and
    `collisions/*`: seen facts whose kept positions did not all get every head's row (a lost row: another key
    owns it, or it was never written), with the recall of facts with / without such a loss."""
    facts = list(seen_rows)
    general_ids, general_answers = general_pairs(tokenizer, list(base_general), taught)
    on_general, _ = _mean_entering(model, tokenizer, general_ids, general_answers, max_length)
    out = {"selectivity/general": on_general}
    if facts:  # a file with no trained fact in its eval split has nothing to measure on facts
        fact_prompts = encode_prompts(tokenizer, [str(f["prompt"]) for f in facts], prompt_format)
        fact_answers = encode_answers(tokenizer, [str(f["expected"]) for f in facts], prompt_format)
        out["selectivity/facts"], full = _mean_entering(model, tokenizer, fact_prompts, fact_answers, max_length)
        lost = [not f for f in full]
        out["collisions/facts_with_lost_rows"] = sum(lost) / len(lost)
        for name, group in (("lost", True), ("intact", False)):
            picked = [bool(r["correct"]) for r, x in zip(facts, lost, strict=True) if x == group]
            if picked:
                out[f"collisions/recall_{name}"] = sum(picked) / len(picked)
    return out


def _mean_entering(model: Any, tokenizer: Any, prompts: list[list[int]], answers: list[list[int]],
                   max_length: int) -> tuple[float, list[bool]]:
    """(mean memory entering over kept positions, per sequence: did every kept position get all its heads).
    Eval mode throughout: training mode would let addresses claim rows for these prompts."""
    entering, positions = 0.0, 0
    full: list[bool] = []
    with memory_tracing(model) as traces:
        for batch in teacher_forced_batches(model, prompts, answers, max_length, pad_id(tokenizer), BATCH):
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                  prompt_lengths=batch["prompt_lengths"])
            intact = torch.ones(len(batch["input_ids"]), dtype=torch.bool, device=batch["input_ids"].device)
            for trace in traces.values():
                g = trace.kept()
                entering += float(g.sum())
                positions += g.numel()
                intact &= trace.all_heads_passed()
            full.extend(intact.tolist())
    return (entering / positions if positions else float("nan")), full
