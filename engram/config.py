"""Structured configs for every Hydra group, and validation that names the bad key.

The dataclasses are the schema: `validate(cfg)` merges a composed config onto them (type errors) and then
checks values (range errors). Both raise `ConfigError` with one line: `config error: <key>=<value> <rule>`.
Nothing here imports torch or transformers, so a bad config fails in well under a second.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

MODEL_NAMES = ("smollm", "tiny", "hf")
VARIANT_NAMES = ("baseline", "lora", "engram", "combined")
DATA_FAMILIES = ("exact_match", "patterns", "long_recall", "jsonl")
HASH_KINDS = ("poc", "deepseek", "span")
GATE_KINDS = ("mlp", "context")
INIT_KINDS = ("normal", "zeros", "prepopulate")
PROMPT_FORMATS = ("chat", "plain")
LOGGER_NAMES = ("wandb", "csv", "none")


class ConfigError(ValueError):
    """A config value is invalid; the message is the single line shown to the user."""

    def __init__(self, key: str, value: Any, rule: str) -> None:
        self.key, self.value, self.rule = key, value, rule
        super().__init__(f"config error: {key}={value} {rule}")


@dataclass
class ModelConfig:
    name: str = "smollm"
    path: str | None = None  # explicit local directory (smollm) — skips cache/hub/GGUF lookup
    name_or_path: str | None = None  # hub id or local path (model=hf)
    dtype: str = "float32"
    # tiny random Llama (model=tiny)
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 128
    seed: int = 0


@dataclass
class EngramConfig:
    table_size: Any = 5000  # int, or one int per n-gram order (deepseek)
    heads: int = 4
    max_ngram: int = 3
    layers: Any = field(default_factory=lambda: [1])  # list of layer indices, or "all"
    dim: int = 256
    gate: str = "context"
    gate_bias: float = 0.0
    hash: str = "deepseek"
    init: str = "normal"
    init_std: float = 0.02
    lr_multiplier: float = 5.0
    sparse: bool = True
    seed: int = 0
    compress_vocab: bool = True
    conv_kernel: int = 4


@dataclass
class VariantConfig:
    name: str = "engram"
    finetune: str = "none"  # baseline only: "none" (frozen) or "full"


@dataclass
class LoraConfig:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class DataConfig:
    family: str = "exact_match"
    num_train: int = 500
    num_eval: int = 100
    categories: list[str] | None = None  # None = every category of the family
    seed: int = 0
    prompt_format: str = "chat"
    eval_seen_fraction: float = 0.5
    path: str | None = None  # jsonl: the messages-format file
    valid_path: str | None = None
    test_path: str | None = None
    split_fraction: float = 0.1
    batch_size: int = 16
    eval_batch_size: int = 32
    max_length: int = 256
    num_workers: int = 0
    # long_recall
    vocab_size: int = 512
    num_facts: int = 32
    distraction_min: int = 300
    distraction_max: int = 500


@dataclass
class LoggerConfig:
    name: str = "wandb"
    project: str = "engram-lab"
    mode: str = "offline"
    group: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class CheckpointConfig:
    every_n_steps: int = 16  # last.ckpt every N optimizer steps (0 = only at epoch ends); a crash loses < N steps


@dataclass
class TrainConfig:
    """Root schema for conf/train.yaml. Trainer kwargs stay open (they go straight to lightning.Trainer)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    engram: EngramConfig = field(default_factory=EngramConfig)
    variant: VariantConfig = field(default_factory=VariantConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    data: DataConfig = field(default_factory=DataConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    trainer: Any = field(default_factory=dict)
    optim: Any = field(default_factory=dict)
    experiment_name: str = "default"
    seed: int = 0
    optimized_metric: str = "eval/exact_match"
    ckpt_path: str | None = None
    eval_max_new_tokens: int = 24
    task_name: str = "train"
    paths: Any = field(default_factory=dict)


def register_configs() -> None:
    """Register the schemas in Hydra's ConfigStore (group `schema/<name>`), for composition and docs."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for group, node in (
        ("model", ModelConfig),
        ("engram", EngramConfig),
        ("variant", VariantConfig),
        ("lora", LoraConfig),
        ("data", DataConfig),
        ("logger", LoggerConfig),
    ):
        cs.store(group=f"schema/{group}", name=group, node=node)


# ---------------------------------------------------------------- validation


def _typed(cfg: DictConfig) -> DictConfig:
    """Merge onto the schema so wrong types fail with the full key (e.g. engram.table_size=abc)."""
    schema = OmegaConf.structured(TrainConfig)
    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    plain.pop("hydra", None)
    known = {k: v for k, v in plain.items() if k in schema}
    try:
        merged = OmegaConf.merge(schema, known)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "config"
        value = getattr(e, "value", None)
        reason = str(e).splitlines()[0]
        raise ConfigError(key, value, f"has the wrong type or is unknown ({reason})") from None
    return merged


def _check(ok: bool, key: str, value: Any, rule: str) -> None:
    if not ok:
        raise ConfigError(key, value, rule)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _one_of(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    _check(value in allowed, key, value, f"is not one of {', '.join(allowed)}")


def validate_engram(e: Any, prefix: str = "engram") -> None:
    sizes = list(e.table_size) if isinstance(e.table_size, list | tuple) or OmegaConf.is_list(e.table_size) else [
        e.table_size
    ]
    for s in sizes:
        _check(_is_int(s) and s > 0, f"{prefix}.table_size", e.table_size, "must be a positive integer")
    _check(_is_int(e.heads) and e.heads >= 1, f"{prefix}.heads", e.heads, "must be an integer >= 1")
    _check(e.heads <= min(sizes), f"{prefix}.heads", e.heads, f"must be <= engram.table_size ({min(sizes)})")
    _check(_is_int(e.max_ngram) and e.max_ngram >= 2, f"{prefix}.max_ngram", e.max_ngram, "must be an integer >= 2")
    if len(sizes) > 1:
        _check(
            len(sizes) == e.max_ngram - 1,
            f"{prefix}.table_size",
            e.table_size,
            f"must be one int or one per n-gram order ({e.max_ngram - 1} for max_ngram={e.max_ngram})",
        )
    _check(_is_int(e.dim) and e.dim >= 1, f"{prefix}.dim", e.dim, "must be a positive integer")
    _one_of(f"{prefix}.hash", e.hash, HASH_KINDS)
    _one_of(f"{prefix}.gate", e.gate, GATE_KINDS)
    _one_of(f"{prefix}.init", e.init, INIT_KINDS)
    _check(
        isinstance(e.gate_bias, int | float) and not isinstance(e.gate_bias, bool) and math.isfinite(e.gate_bias),
        f"{prefix}.gate_bias",
        e.gate_bias,
        "must be a finite number",
    )
    _check(e.lr_multiplier > 0, f"{prefix}.lr_multiplier", e.lr_multiplier, "must be > 0")
    layers = e.layers
    if isinstance(layers, str):
        _check(layers == "all", f"{prefix}.layers", layers, 'must be a list of layer indices or "all"')
    else:
        _check(len(layers) > 0, f"{prefix}.layers", list(layers), "must name at least one layer")
        for layer in layers:
            _check(_is_int(layer) and layer >= 0, f"{prefix}.layers", list(layers), "must hold integers >= 0")


def validate_layers(layers: Any, num_layers: int, key: str = "engram.layers") -> list[int]:
    """Resolve `layers` against the model depth (known from its config, before weights load)."""
    if layers == "all":
        return list(range(num_layers))
    resolved = [int(x) for x in layers]
    for layer in resolved:
        rule = f"is outside the model's {num_layers} layers (0..{num_layers - 1})"
        _check(0 <= layer < num_layers, key, resolved, rule)
    return resolved


def validate_data(d: Any) -> None:
    _one_of("data.family", d.family, DATA_FAMILIES)
    _one_of("data.prompt_format", d.prompt_format, PROMPT_FORMATS)
    _check(d.num_train >= 1, "data.num_train", d.num_train, "must be >= 1")
    _check(d.num_eval >= 0, "data.num_eval", d.num_eval, "must be >= 0")
    _check(0.0 <= d.eval_seen_fraction <= 1.0, "data.eval_seen_fraction", d.eval_seen_fraction, "must be in [0, 1]")
    _check(d.batch_size >= 1, "data.batch_size", d.batch_size, "must be >= 1")
    _check(
        0 < d.distraction_min <= d.distraction_max,
        "data.distraction_min",
        d.distraction_min,
        f"must be > 0 and <= data.distraction_max ({d.distraction_max})",
    )
    _check(d.eval_batch_size >= 1, "data.eval_batch_size", d.eval_batch_size, "must be >= 1")
    _check(d.max_length >= 2, "data.max_length", d.max_length, "must be >= 2")
    _check(0.0 <= d.split_fraction < 1.0, "data.split_fraction", d.split_fraction, "must be in [0, 1)")
    if d.family == "long_recall":
        _check(d.num_facts >= 1, "data.num_facts", d.num_facts, "must be >= 1")
        _check(d.vocab_size >= max(d.num_facts, 3), "data.vocab_size", d.vocab_size,
               f"must be >= 3 and >= data.num_facts ({d.num_facts})")
    if d.family == "jsonl":
        _check(bool(d.path), "data.path", d.path, "is required for data=jsonl (a messages-format .jsonl file)")
    for key in ("path", "valid_path", "test_path"):
        p = getattr(d, key)
        if p:
            _check(Path(os.path.expanduser(p)).is_file(), f"data.{key}", p, "does not exist or is not a file")


def validate(cfg: DictConfig) -> DictConfig:
    """Check a composed config; returns it typed. Raises ConfigError (one line) on the first problem."""
    typed = _typed(cfg)
    _one_of("model.name", typed.model.name, MODEL_NAMES)
    if typed.model.name == "hf":
        _check(bool(typed.model.name_or_path), "model.name_or_path", None, "is required for model=hf")
    _check(typed.model.num_layers >= 2, "model.num_layers", typed.model.num_layers, "must be >= 2")
    _one_of("variant.name", typed.variant.name, VARIANT_NAMES)
    _one_of("variant.finetune", typed.variant.finetune, ("none", "full"))
    validate_engram(typed.engram)
    _check(typed.lora.r >= 1, "lora.r", typed.lora.r, "must be >= 1")
    _check(0.0 <= typed.lora.dropout < 1.0, "lora.dropout", typed.lora.dropout, "must be in [0, 1)")
    validate_data(typed.data)
    _check(typed.checkpoint.every_n_steps >= 0, "checkpoint.every_n_steps", typed.checkpoint.every_n_steps,
           "must be >= 0 (0 = checkpoint only at epoch ends)")
    _one_of("logger.name", typed.logger.name, LOGGER_NAMES)
    _check(typed.logger.mode in ("offline", "online", "disabled"), "logger.mode", typed.logger.mode,
           "is not one of offline, online, disabled")
    return typed
