"""Targets 4 and 5: cached vs uncached greedy generation (identical tokens, speed), Engram vs plain generation, and
the n-gram hash throughput."""

from __future__ import annotations

import time
from typing import Any

import torch

from benchmarks.common import Row, check, interleaved, median, shared_clone, spread


def _prompts(tok: Any, n: int) -> dict[str, torch.Tensor]:
    from engram.data.datamodule import EngramDataModule

    dm = EngramDataModule({"family": "exact_match", "num_train": 16, "num_eval": n, "prompt_format": "plain"}, tok)
    b = next(dm.generation_batches(n))
    return {"input_ids": b["input_ids"], "attention_mask": b["attention_mask"]}


def generation(base: Any, tok: Any, n_prompts: int, new_tokens: int, rounds: int) -> list[Row]:
    """Greedy, exactly `new_tokens` per prompt (eos suppressed so every run does the same work)."""
    from engram.models.inject import add_engram

    prompts = _prompts(tok, n_prompts)
    plain = shared_clone(base).eval()
    engram = add_engram(shared_clone(base), {"table_size": 5000, "layers": [1]}, tok).eval()
    out: dict[str, torch.Tensor] = {}

    def run(model: Any, cache: bool, key: str) -> None:
        with torch.no_grad():
            out[key] = model.generate(**prompts, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                      do_sample=False, use_cache=cache, pad_token_id=tok.pad_token_id)

    times = interleaved({"plain": lambda: run(plain, True, "plain"), "engram": lambda: run(engram, True, "engram")},
                        rounds, warmup=1)
    t0 = time.perf_counter()
    run(engram, False, "engram_uncached")  # once: it re-feeds the whole sequence at every step
    uncached = time.perf_counter() - t0
    same = torch.equal(out["engram"], out["engram_uncached"])
    shape = f"{n_prompts} prompts x {new_tokens} new tokens, prompt length {prompts['input_ids'].shape[1]}"
    speedup = uncached / median(times["engram"])
    rows = [
        Row("4 engram generate use_cache=False", f"{uncached:.3g} s (n=1)", note=shape),
        check("4 cached speedup (uncached / cached)", spread(times["engram"]), speedup, ">=", 5.0),
        Row("4 cached == uncached tokens", "identical" if same else "DIFFERENT", passed=same, limit="identical"),
        Row("4 plain generate use_cache=True", spread(times["plain"])),
        check("4 engram / plain generation time", spread(times["engram"]),
              median(times["engram"]) / median(times["plain"]), "<=", 1.15),
    ]
    return rows


def hash_speed(tok: Any, vocab_size: int, n_tokens: int, rounds: int) -> list[Row]:
    """`NgramHasher.hash` (default deepseek config, with the tokenizer's vocabulary compression) on n_tokens ids."""
    from engram.memory.hashes.deepseek import NgramHasher
    from engram.memory.hashing import build_token_map

    token_map = build_token_map(tok, vocab_size=vocab_size)
    hasher = NgramHasher(vocab_size, 5000, 3, 4, [1], int(tok.pad_token_id or 0), 0, token_map)
    side = int(n_tokens**0.5)
    ids = torch.randint(0, vocab_size, (n_tokens // side, side), generator=torch.Generator().manual_seed(0))
    times = interleaved({"hash": lambda: hasher.hash(ids, 1)}, rounds, warmup=1)["hash"]
    return [check(f"5 NgramHasher.hash on {ids.numel() / 1e6:.2f} M tokens (ratio to 0.5 s)", spread(times),
                  median(times) / 0.5, "<=", 1.0, f"ids shaped {tuple(ids.shape)}, 8 heads, vocabulary compression on")]
