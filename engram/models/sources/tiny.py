"""model=tiny: a tiny randomly initialised Llama with a small shipped tokenizer (seconds on CPU; the tests')."""

from __future__ import annotations

from typing import Any

from engram.config.rules import check_decoder_shape
from engram.models.loading import build_tiny_model, load_tiny_tokenizer

llama = True  # LoRA target modules are checked against the Llama module names


def check(m: Any) -> None:
    check_decoder_shape(m, "tiny")


class Source:
    @staticmethod
    def shape(cfg: dict[str, Any]) -> tuple[int, int]:
        return int(cfg.get("num_layers", 2)), int(cfg.get("hidden_size", 64))

    @staticmethod
    def load(cfg: dict[str, Any]) -> tuple[Any, Any]:
        return build_tiny_model(cfg), load_tiny_tokenizer()
