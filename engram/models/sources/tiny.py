"""model=tiny: a tiny randomly initialised Llama with a small shipped tokenizer (seconds on CPU; the tests')."""

from __future__ import annotations

from typing import Any

from engram.config_rules import check as rule
from engram.config_rules import check_seed
from engram.models.loading import build_tiny_model, load_tiny_tokenizer

llama = True  # LoRA target modules are checked against the Llama module names


def check(m: Any) -> None:
    for key, low, high in (("hidden_size", 2, 4096), ("num_layers", 2, 128), ("num_heads", 1, 64),
                           ("intermediate_size", 1, 16384)):
        value = getattr(m, key)
        rule(low <= value <= high, f"model.{key}", value, f"must be in [{low}, {high}] for model=tiny")
    head_dim, rest = divmod(m.hidden_size, m.num_heads)
    rule(rest == 0 and head_dim % 2 == 0, "model.num_heads", m.num_heads,
         f"must divide model.hidden_size ({m.hidden_size}) into an even head size")
    check_seed("model.seed", m.seed)


class Source:
    @staticmethod
    def shape(cfg: dict[str, Any]) -> tuple[int, int]:
        return int(cfg.get("num_layers", 2)), int(cfg.get("hidden_size", 64))

    @staticmethod
    def load(cfg: dict[str, Any]) -> tuple[Any, Any]:
        return build_tiny_model(cfg), load_tiny_tokenizer()
