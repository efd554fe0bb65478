"""Part `data`: the speed claims that used to sit in the fast tests as wall-clock asserts (a loaded machine failed
them): building 20 000 exact-match records, and loading the model again once its cache exists."""

from __future__ import annotations

from typing import Any

from benchmarks.common import Row, check, interleaved, median, spread


def data_speed(model_name: str, rounds: int) -> list[Row]:
    from engram.data import build_splits
    from engram.models.loading import load_model

    def records() -> Any:
        return build_splits({"family": "exact_match", "num_train": 20_000, "num_eval": 100})

    load_model(model_name)  # the first load may build the cache (SmolLM2's GGUF -> safetensors); not timed
    times = interleaved({"records": records, "reload": lambda: load_model(model_name)}, rounds, warmup=0)
    return [
        check("20 000 exact-match records (ratio to 10 s)", spread(times["records"]), median(times["records"]) / 10.0,
              "<=", 1.0, "build_splits, num_eval 100: real facts first, then synthetic pairs"),
        check(f"load_model({model_name}) again (ratio to 3 s)", spread(times["reload"]),
              median(times["reload"]) / 3.0, "<=", 1.0, "weights from the local cache, tokenizer included"),
    ]
