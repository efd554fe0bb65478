"""Greedy-generation evaluation: exact match overall / per category / seen-unseen, latency, per-example rows."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from transformers import StoppingCriteria, StoppingCriteriaList

from engram.data.collate import teacher_forced_batch
from engram.evaluation.metrics import clean_generation, exact_match, match_decided, summarize_rows


@dataclass
class EvalResult:
    metrics: dict[str, float]
    rows: list[dict[str, Any]] = field(default_factory=list)
    test_rows: list[dict[str, Any]] = field(default_factory=list)  # the test file's rows, when there is one


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def teacher_forced_batches(model: torch.nn.Module, prompts: Sequence[Sequence[int]],
                           answers: Sequence[Sequence[int]], max_length: int, pad_token_id: int,
                           batch_size: int = 16) -> Iterator[dict[str, torch.Tensor]]:
    """(prompt ids, answer ids) pairs joined as training joins them, `batch_size` at a time, on the model's device,
    inside eval_mode (no gradients; addresses claim no rows). The caller runs the forward it needs."""
    device = next(model.parameters()).device
    with eval_mode(model):
        for start in range(0, len(prompts), batch_size):
            batch = teacher_forced_batch(prompts[start:start + batch_size], answers[start:start + batch_size],
                                         max_length, pad_token_id)
            yield {k: v.to(device) for k, v in batch.items()}


def progress_bar(disable: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold blue]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        disable=disable,
    )


def new_token_ids(tokenizer: Any, sequences: torch.Tensor, prompt_len: int, keep_eos: bool = False) -> list[list[int]]:
    """What generate appended, cut at the first eos/pad token; `keep_eos`: an eos that ended it is kept (teacher
    forcing then checks that the model stops there too)."""
    stop_ids = {i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None}
    out = []
    for seq in sequences[:, prompt_len:].tolist():
        cut = next((i for i, t in enumerate(seq) if t in stop_ids), len(seq))
        out.append(seq[:cut + 1] if keep_eos and cut < len(seq) and seq[cut] == tokenizer.eos_token_id else seq[:cut])
    return out


def decode_new_tokens(tokenizer: Any, sequences: torch.Tensor, prompt_len: int) -> list[str]:
    """Decode what generate appended, cut at the first eos/pad token."""
    return [tokenizer.decode(ids, skip_special_tokens=True) for ids in new_token_ids(tokenizer, sequences, prompt_len)]


class CachedGenerationError(RuntimeError):
    """Cached and uncached greedy decoding disagree: scoring would measure a generation bug, not the model."""


class AnswerDecided(StoppingCriteria):
    """Stops each row of a greedy batch once `match_decided`: the rest of its decoding cannot change its exact match
    against `answers`, so a scorer that keeps only the match (not the text) spends no tokens on it."""

    def __init__(self, tokenizer: Any, answers: Sequence[str], prompt_len: int) -> None:
        self.tokenizer, self.answers, self.prompt_len = tokenizer, list(answers), prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor | None, **kwargs: Any) -> torch.Tensor:
        texts = decode_new_tokens(self.tokenizer, input_ids, self.prompt_len)
        decided = [match_decided(t, a) for t, a in zip(texts, self.answers, strict=True)]
        return torch.tensor(decided, dtype=torch.bool, device=input_ids.device)


def greedy_ids(
    model: Any, tokenizer: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
    use_cache: bool = True, stop_when_decided: Sequence[str] | None = None,
) -> torch.Tensor:
    """Greedy continuation ids of a left-padded batch (prompt included). `stop_when_decided`: the expected answer
    of each row; a row stops once its exact match is decided (`AnswerDecided`), so its text may be cut short."""
    device = next(model.parameters()).device
    extra = {} if stop_when_decided is None else {"stopping_criteria": StoppingCriteriaList(
        [AnswerDecided(tokenizer, stop_when_decided, input_ids.shape[1])])}
    return model.generate(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        temperature=None,
        top_p=None,
        top_k=None,
        use_cache=use_cache,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **extra,
    )


def greedy_generate(
    model: Any, tokenizer: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
    stop_when_decided: Sequence[str] | None = None,
) -> list[str]:
    """Greedy continuations of a left-padded batch (`stop_when_decided`: see greedy_ids)."""
    out = greedy_ids(model, tokenizer, input_ids, attention_mask, max_new_tokens,
                     stop_when_decided=stop_when_decided)
    return decode_new_tokens(tokenizer, out, input_ids.shape[1])


def check_cached_generation(
    model: Any, tokenizer: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
    rows: int = 2, tokens: int = 8,
) -> None:
    """Decode the first `rows` prompts (at most `tokens` new ones) with and without the KV cache; raise
    CachedGenerationError if the greedy tokens differ. Scoring uses the cached path, so a dependency update that
    breaks the memories' id history would otherwise give a silently wrong table (it did once: transformers renamed
    the cache keyword). A broken history shows from the second new token on; the uncached path recomputes the whole
    sequence per token, so the check stays short."""
    ids, mask = input_ids[:rows], attention_mask[:rows]
    steps = min(max_new_tokens, tokens)
    with eval_mode(model):
        cached = greedy_ids(model, tokenizer, ids, mask, steps, use_cache=True)
        uncached = greedy_ids(model, tokenizer, ids, mask, steps, use_cache=False)
    if not torch.equal(cached, uncached):
        differ = int((cached != uncached).any(1).sum()) if cached.shape == uncached.shape else len(ids)
        raise CachedGenerationError(
            f"evaluation stopped: cached and uncached greedy decoding differ on {differ} of {len(ids)} sample "
            "prompts, so the scores would be wrong (a transformers version the memories' id history does not "
            "support? install from requirements.lock)"
        )


def generate_texts(
    model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int, batch_size: int = 16,
    description: str = "generate", show_progress: bool = True, check_cache: bool = False,
) -> list[str]:
    """Greedy answers for already formatted prompt strings (left padding, batched); `check_cache` runs
    `check_cached_generation` on the first batch."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    answers: list[str] = []
    try:
        with eval_mode(model), progress_bar(disable=not show_progress) as bar:
            task = bar.add_task(description, total=len(prompts))
            for start in range(0, len(prompts), batch_size):
                chunk = prompts[start : start + batch_size]
                enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
                if check_cache and start == 0:
                    check_cached_generation(model, tokenizer, enc["input_ids"], enc["attention_mask"], max_new_tokens)
                answers += greedy_generate(model, tokenizer, enc["input_ids"], enc["attention_mask"], max_new_tokens)
                bar.advance(task, len(chunk))
    finally:
        tokenizer.padding_side = side
    return answers


def evaluate_generation(
    model: Any, tokenizer: Any, batches: Iterable[dict[str, Any]], max_new_tokens: int,
    total: int | None = None, show_progress: bool = True, prefix: str = "eval", check_cache: bool = True,
    match_only: bool = False,
) -> EvalResult:
    """Greedy-decode every eval prompt and score it; batches come from `EngramDataModule.generation_batches`.
    Metric names start with `prefix` ("eval", or "test" for a user's test file). The first batch is first decoded
    with and without the KV cache (`check_cached_generation`). `match_only`: a row stops decoding once its exact
    match is decided (the same scores; the rows' `generated` texts may be cut short)."""
    rows: list[dict[str, Any]] = []
    seconds = 0.0
    with eval_mode(model), progress_bar(disable=not show_progress) as bar:
        task = bar.add_task(f"{prefix} (greedy)", total=total)
        for i, batch in enumerate(batches):
            if i == 0 and check_cache:
                check_cached_generation(model, tokenizer, batch["input_ids"], batch["attention_mask"], max_new_tokens)
            t0 = time.perf_counter()
            answers = [str(r["answer"]) for r in batch["records"]] if match_only else None
            texts = greedy_generate(model, tokenizer, batch["input_ids"], batch["attention_mask"], max_new_tokens,
                                    stop_when_decided=answers)
            seconds += time.perf_counter() - t0
            for rec, text in zip(batch["records"], texts, strict=True):
                rows.append({
                    "prompt": rec["prompt"],
                    "expected": rec["answer"],
                    "generated": clean_generation(text),
                    "correct": exact_match(text, rec["answer"]),
                    "category": rec.get("category", "all"),
                    "seen": bool(rec.get("seen", False)),
                    "key": rec.get("key", ""),
                })
            bar.advance(task, len(texts))
    metrics = summarize_rows(rows, prefix)
    metrics[f"{prefix}/latency_ms"] = 1000.0 * seconds / max(1, len(rows))
    return EvalResult(metrics, rows)


def evaluate_splits(model: Any, tokenizer: Any, dm: Any, batch_size: int, max_new_tokens: int) -> EvalResult:
    """The eval split, and the test split when there is one (jsonl `data.test_path`): its metrics get the `test/`
    prefix and its rows are kept apart in `result.test_rows`. Seen/unseen comes from the records (by key)."""
    result = evaluate_generation(model, tokenizer, dm.generation_batches(batch_size), max_new_tokens,
                                 total=len(dm.eval_records))
    if "test" not in dm.splits:
        return result
    if dm.splits["test"] == dm.eval_records:  # jsonl without a valid file: the test file is the eval split
        test = EvalResult({**summarize_rows(result.rows, "test"), "test/latency_ms": result.metrics["eval/latency_ms"]},
                          result.rows)  # the same prompts: decoded once
    else:
        test = evaluate_generation(model, tokenizer, dm.generation_batches(batch_size, split="test"), max_new_tokens,
                                   total=len(dm.splits["test"]), prefix="test")
    result.metrics.update(test.metrics)
    result.test_rows = test.rows
    return result
