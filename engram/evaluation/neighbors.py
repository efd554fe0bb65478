"""Neighbour questions: untaught questions about taught entities ("When was X founded?" when only "Who founded X?"
was taught; the data's "neighbor" split, engram/data/records.py). An edit must leave their answers as they were.

The reference is the base model's own greedy reply (`base_replies`), decoded from the untouched base before the
variant wraps it, where the general prompts' base answers are computed (engram/training/pipeline.py, evaluate.py),
so it is the base even for variants that train base weights (variant.finetune=full, model=scratch); cached per base
model like them. Scored two ways, beside edit/locality (engram/evaluation/editing.py):

- `edit/neighbors`: the share of neighbour prompts answered exactly as the base answered them (greedy, the cleaning
  exact match uses: first line, stripped);
- `edit/neighbors_tf`: the base reply's own tokens (its eos too, when the base stopped) fed back; the share the model
  still predicts as argmax (`token_scores`, as edit/locality_tf; replies of no token are left out).

The base replies are decoded from the same left-padded batches the model is scored on, so a model that computes as
its base scores exactly 1 greedy, and 1 teacher-forced up to the numerics of cached decoding (tests/test_neighbors.py).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engram.atomic import atomic_write_text
from engram.data.formatting import pad_id
from engram.evaluation.editing import token_scores
from engram.evaluation.generate_eval import eval_mode, evaluate_generation, greedy_ids, new_token_ids, progress_bar
from engram.evaluation.metrics import clean_generation
from engram.evaluation.retention import answers_cache_file
from engram.models.loading import cache_root

log = logging.getLogger(__name__)

SPLIT = "neighbor"


@dataclass
class BaseReplies:
    """The base model's greedy replies to the neighbour split, in split order."""

    answers: list[str]  # the cleaned reply (what exact match compares with)
    ids: list[list[int]]  # its new token ids, up to and including eos when the base stopped


def neighbor_records(datamodule: Any) -> list[dict[str, Any]]:
    """The data's neighbour split ([] when it has none)."""
    datamodule.setup()
    return list((datamodule.splits or {}).get(SPLIT) or [])


def prompt_ids(datamodule: Any) -> list[list[int]]:
    """The neighbour prompts' token ids, as generation starts from them."""
    return [list(p) for p in datamodule.datasets[SPLIT]["prompt_ids"]]


def base_replies(model: Any, tokenizer: Any, datamodule: Any, max_new_tokens: int, batch_size: int,
                 cache_dir: Path | None = None, show_progress: bool = True) -> BaseReplies | None:
    """`model`'s greedy replies to the neighbour split (None when the data has none), from the cache when present.
    Call it on the untouched base model, with the batch size and length the evaluation will use."""
    records = neighbor_records(datamodule)
    if not records:
        return None
    path = answers_cache_file(model, [prompt_ids(datamodule), batch_size], max_new_tokens,
                              Path(cache_dir or cache_root() / "neighbors"))
    if path.is_file():
        cached = BaseReplies(**json.loads(path.read_text()))
        if len(cached.answers) == len(records):
            return cached
    replies = BaseReplies([], [])
    with eval_mode(model), progress_bar(disable=not show_progress) as bar:
        task = bar.add_task("neighbours: base replies", total=len(records))
        for batch in datamodule.generation_batches(batch_size, split=SPLIT):
            out = greedy_ids(model, tokenizer, batch["input_ids"], batch["attention_mask"], max_new_tokens)
            for ids in new_token_ids(tokenizer, out, batch["input_ids"].shape[1], keep_eos=True):
                replies.ids.append(ids)
                replies.answers.append(clean_generation(tokenizer.decode(ids, skip_special_tokens=True)))
            bar.advance(task, len(batch["records"]))
    atomic_write_text(path, json.dumps(asdict(replies)))  # atomic: parallel jobs never read half a file
    log.info("cached the base model's neighbour replies in %s", path)
    return replies


def neighbor_metrics(model: Any, tokenizer: Any, datamodule: Any, base: BaseReplies, *, max_length: int,
                     batch_size: int, max_new_tokens: int) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """(`edit/neighbors`, `edit/neighbors_tf` and `neighbor/exact_match*` / `num_examples`, per-prompt rows whose
    "expected" is the base reply) of `model` on the neighbour split; `base` from `base_replies`."""
    records = neighbor_records(datamodule)
    if len(base.answers) != len(records):
        raise ValueError(f"{len(base.answers)} base replies for {len(records)} neighbour prompts: they were decoded "
                         "on other data")
    replies = iter(base.answers)
    batches = ({**b, "records": [{**r, "answer": next(replies)} for r in b["records"]]}
               for b in datamodule.generation_batches(batch_size, split=SPLIT))
    result = evaluate_generation(model, tokenizer, batches, max_new_tokens, total=len(base.answers), prefix=SPLIT,
                                 check_cache=False)
    out = {k: v for k, v in result.metrics.items() if k.startswith((f"{SPLIT}/exact_match", f"{SPLIT}/num_ex"))}
    out["edit/neighbors"] = result.metrics[f"{SPLIT}/exact_match"]
    pairs = [(p, a) for p, a in zip(prompt_ids(datamodule), base.ids, strict=True) if a]
    if pairs:
        out["edit/neighbors_tf"] = token_scores(model, [p for p, _ in pairs], [a for _, a in pairs],
                                                max_length=max_length, pad_token_id=pad_id(tokenizer)).mean_accuracy
    return out, result.rows
