"""The configuration: the schema of every Hydra group, and validation that names the bad key.

    schema.py      the dataclasses (one per group and the root keys): every default lives here
    merge.py       typing a composed config on a schema: a wrong type or unknown key is one line naming it
    rules.py       value rules for every group (and `ConfigError`, the one-line error)
    trainer.py     rules for `trainer.*`, checked against lightning.Trainer's own signature
    scale.py       where the tables live: engram.offload / engram.shard against the trainer
    validation.py  `validate(cfg)`: merge onto the schema, then every rule, in order

    sections.py    a kind's own keys: the section its `Params` adds to its group (engram.hybrid.*, ...)
    renamed.py     keys under an older spelling: refused on a command line, translated in a saved config

`validate(cfg)` raises `ConfigError` with one line: `config error: <key>=<value> <rule>`. Nothing here imports torch
or transformers, so a bad config fails in well under a second. The public names are re-exported here:
`from engram.config import EngramConfig, validate, ConfigError`. EngramConfig, DataConfig and TrainConfig are
composed (the keys every memory / family has, plus each kind's section) on first use, not at import.
"""

from typing import Any

from engram.config.rules import ConfigError, validate_engram, validate_layers
from engram.config.scale import OffloadConfig
from engram.config.schema import (
    EVALUATE_KEYS,
    ROOT_GROUPS,
    ROW_ORDER,
    CheckpointConfig,
    DataKeys,
    EngramKeys,
    EvaluateConfig,
    LoggerConfig,
    LoraConfig,
    ModelConfig,
    OptimConfig,
    PrepopulateConfig,
    RetentionTrainingConfig,
    SequentialConfig,
    TrainKeys,
    VariantConfig,
    register_configs,
    schema_defaults,
    schema_of,
)
from engram.config.sections import build
from engram.config.validation import for_variant, load_plugins, validate, validate_evaluate_keys

__all__ = ["EVALUATE_KEYS", "ROOT_GROUPS", "ROW_ORDER", "SCHEMAS", "CheckpointConfig", "ConfigError", "DataConfig",
           "DataKeys", "EngramConfig", "EngramKeys", "EvaluateConfig", "LoggerConfig", "LoraConfig", "ModelConfig",
           "OffloadConfig", "OptimConfig", "PrepopulateConfig", "RetentionTrainingConfig", "SequentialConfig",
           "TrainConfig", "TrainKeys", "VariantConfig", "build", "for_variant", "load_plugins", "register_configs",
           "schema_defaults", "schema_of", "validate", "validate_engram", "validate_evaluate_keys", "validate_layers"]


def __getattr__(name: str) -> Any:
    """EngramConfig, DataConfig, TrainConfig and SCHEMAS are composed on first use (engram/config/schema.py)."""
    from engram.config import schema as module  # the submodule (`schema_of` is the function)

    return getattr(module, name)
