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

from engram.evaluation.editing import TokenScores
from engram.evaluation.generate_eval import evaluate_generation


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


def selectivity_metrics(facts: Sequence[dict[str, Any]], fact_scores: TokenScores | None, general: TokenScores,
                        correct: dict[str, bool]) -> dict[str, float]:
    """`selectivity/facts` (over the seen eval facts), `selectivity/general` (mean memory entering at kept
    positions of the general prompts that are not `taught` fact prompts, as in retention), and `collisions/*`: seen
    facts whose kept positions did not all get every head's row (a lost row: another key owns it, or it was never
    written), with the recall of facts with / without such a loss. Read from the traced teacher-forced passes of
    the editing metrics (`EditingScores.facts` over `facts`, `.general`); `correct`: prompt -> decoded exactly."""
    out = {"selectivity/general": general.mean_entering}
    if facts and fact_scores is not None:  # a file with no trained fact in its eval split has nothing to measure
        out["selectivity/facts"] = fact_scores.mean_entering
        lost = [not f for f in fact_scores.intact]
        out["collisions/facts_with_lost_rows"] = sum(lost) / len(lost)
        for name, group in (("lost", True), ("intact", False)):
            picked = [correct[str(f["prompt"])] for f, x in zip(facts, lost, strict=True) if x == group]
            if picked:
                out[f"collisions/recall_{name}"] = sum(picked) / len(picked)
    return out
