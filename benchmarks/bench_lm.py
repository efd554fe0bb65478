"""Target 12: language modelling on real text, a training step with the paper's memory at layer 1 against the frozen
base's forward + backward (from the loss down to layer 1's input: the path the memory needs too), as tokens/s on
the same packed blocks of data=text (next-token loss on every position). Target: >= 0.9x the frozen base."""

from __future__ import annotations

from typing import Any

from benchmarks.common import Row, TrainStep, check, grad_from_layer, interleaved, median, shared_clone, spread


def text_batch(tok: Any, block_size: int, blocks: int) -> dict:
    """`blocks` packed test blocks of the built-in corpus (data=text), without the byte counts."""
    from engram.data.text_blocks import TextDataModule

    dm = TextDataModule({"family": "text", "block_size": block_size, "num_tokens": block_size,
                         "eval_tokens": block_size * blocks}, tok)
    batch = next(iter(dm.loader("test", blocks)))
    return {k: v for k, v in batch.items() if k != "num_bytes"}


def lm_speed(base: Any, tok: Any, block_size: int, blocks: int, table_size: int, rounds: int,
             warmup: int) -> list[Row]:
    from engram.models.inject import add_engram

    batch = text_batch(tok, block_size, blocks)
    tokens = batch["input_ids"].numel()
    baseline = shared_clone(base)
    grad_from_layer(baseline, 1)
    cfg = {"table_size": table_size, "layers": [1], "init": "zeros"}
    steps = {"frozen base": TrainStep(baseline, "baseline", batch),
             "engram[1]": TrainStep(add_engram(shared_clone(base), cfg, tok), "engram", batch, cfg)}
    times = interleaved(steps, rounds, warmup)
    base_tps = tokens / median(times["frozen base"])
    mem_tps = tokens / median(times["engram[1]"])
    return [Row(f"12 lm frozen base fwd+bwd ({tokens} tokens)", f"{base_tps:.0f} tokens/s",
                note=spread(times["frozen base"])),
            check("12 lm engram[1] training tokens/s / frozen base", f"{mem_tps:.0f} tokens/s", mem_tps / base_tps,
                  ">=", 0.9, note=spread(times["engram[1]"]))]
