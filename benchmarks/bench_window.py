"""Target 6 (issue 15): time per token of a forward pass, windowed attention + Engram vs full attention, as the
sequence grows. The model is experiment=long_recall's (model=scratch: 4 layers, 128 wide; Engram deepseek at layer
1), random weights, batch 1, no gradient.

Windowed attention is measured two ways, because on CPU they cost very differently:
- `sdpa`: transformers builds the sliding-window mask and hands it to torch's scaled_dot_product_attention, which
  still computes every query-key pair (the mask only hides them): no saving over full attention;
- `flex_attention`: the same mask as a block mask, so blocks outside the window are skipped: the cost per token
  stays flat. torch compiles it once per sequence length, in the warm-up (minutes on a CPU), not in the timing.
"""

from __future__ import annotations

from typing import Any

import torch

from benchmarks.common import Row, check, interleaved, median

WINDOW = 128
SHAPE = {"hidden_size": 128, "num_layers": 4, "num_heads": 4, "intermediate_size": 512}
MEMORY = {"hash": "deepseek", "layers": [1], "dim": 128, "table_size": 4096, "gate": "context"}
DATA = {"family": "long_recall", "long_recall": {"vocab_size": 512, "num_facts": 32}, "seed": 0}


def _models(attentions: tuple[str, ...]) -> dict[str, Any]:
    """{name: model}: full attention (sdpa), and windowed + Engram with each attention implementation; one set of
    weights for all."""
    from engram.models.inject import add_engram
    from engram.models.loading import load_model

    full, tok = load_model({"name": "scratch", **SHAPE, "attention_window": None}, data=DATA)
    models: dict[str, Any] = {"full": full.eval()}
    for attention in attentions:
        windowed, _ = load_model({"name": "scratch", **SHAPE, "attention_window": WINDOW}, data=DATA)
        windowed.config._attn_implementation = attention
        models[f"window+engram ({attention})"] = add_engram(windowed, MEMORY, tok).eval()
    return models


def window_scaling(lengths: list[int], rounds: int, attentions: tuple[str, ...] = ("sdpa", "flex_attention")
                   ) -> list[Row]:
    """Per length: µs per token of each model (info), then the ratio window+Engram / full (<= 1 passes); at the
    end the growth of each model's per-token time from the shortest to the longest length."""
    models = _models(attentions)
    per_token: dict[str, dict[int, float]] = {name: {} for name in models}
    rows: list[Row] = []
    for n in lengths:
        ids = torch.randint(10, 500, (1, n), generator=torch.Generator().manual_seed(n))

        def forward(model: Any, ids: torch.Tensor = ids) -> None:
            with torch.no_grad():
                model(input_ids=ids, logits_to_keep=1)

        times = interleaved({name: (lambda m=m: forward(m)) for name, m in models.items()}, rounds, warmup=1)
        for name in models:
            per_token[name][n] = median(times[name]) / n
            rows.append(Row(f"6 {name}, {n} tokens", f"{1e6 * per_token[name][n]:.1f} µs/token"))
        for name in models:
            if name != "full":
                ratio = per_token[name][n] / per_token["full"][n]
                rows.append(check(f"6 {name} / full attention, {n} tokens",
                                  f"{1e6 * per_token[name][n]:.1f} / {1e6 * per_token['full'][n]:.1f} µs/token",
                                  ratio, "<=", 1.0))
        print(f"  window: {n} tokens done", flush=True)
    first, last = lengths[0], lengths[-1]
    for name in models:
        growth = per_token[name][last] / per_token[name][first]
        rows.append(Row(f"6 {name}: per-token time {last} / {first} tokens",
                        f"{1e6 * per_token[name][last]:.1f} / {1e6 * per_token[name][first]:.1f} µs/token", growth))
    return rows
