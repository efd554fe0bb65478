"""model=hf: any Llama-family causal LM by hub id or local path (model.name_or_path)."""

from __future__ import annotations

from typing import Any

from engram.config.rules import check as rule
from engram.models.loading import config_shape, hf_config_file, load_pretrained


def check(m: Any) -> None:
    rule(bool(m.name_or_path), "model.name_or_path", None, "is required for model=hf")


class Source:
    @staticmethod
    def shape(cfg: dict[str, Any]) -> tuple[int, int]:
        value = cfg.get("name_or_path")
        return config_shape(hf_config_file(str(value)), "model.name_or_path", value)

    @staticmethod
    def load(cfg: dict[str, Any]) -> tuple[Any, Any]:
        return load_pretrained(cfg["name_or_path"], cfg)
