"""model=smollm: SmolLM2-135M-Instruct, offline-first (model.path, the cache, the hub, the GGUF package; see
engram/models/loading.py)."""

from __future__ import annotations

from typing import Any

from engram.models.loading import config_shape, load_pretrained, resolve_smollm_dir, smollm_config_source

llama = True  # LoRA target modules are checked against the Llama module names


class Source:
    @staticmethod
    def shape(cfg: dict[str, Any]) -> tuple[int, int]:
        key, value = ("model.path", cfg.get("path")) if cfg.get("path") else ("model", "smollm")
        return config_shape(smollm_config_source(cfg.get("path")), key, value)

    @staticmethod
    def load(cfg: dict[str, Any]) -> tuple[Any, Any]:
        return load_pretrained(resolve_smollm_dir(cfg.get("path")), cfg)
