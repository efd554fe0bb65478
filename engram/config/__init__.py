"""The configuration: the schema of every Hydra group, and validation that names the bad key.

    schema.py      the dataclasses (one per group and the root keys): every default lives here
    merge.py       typing a composed config on a schema: a wrong type or unknown key is one line naming it
    rules.py       value rules for every group (and `ConfigError`, the one-line error)
    trainer.py     rules for `trainer.*`, checked against lightning.Trainer's own signature
    scale.py       where the tables live: engram.offload / engram.shard against the trainer
    validation.py  `validate(cfg)`: merge onto the schema, then every rule, in order

`validate(cfg)` raises `ConfigError` with one line: `config error: <key>=<value> <rule>`. Nothing here imports torch
or transformers, so a bad config fails in well under a second. The public names are re-exported here:
`from engram.config import EngramConfig, validate, ConfigError`.
"""

from engram.config.rules import ConfigError, validate_engram, validate_layers
from engram.config.schema import (
    EVALUATE_KEYS,
    ROOT_GROUPS,
    ROW_ORDER,
    SCHEMAS,
    CheckpointConfig,
    DataConfig,
    EngramConfig,
    EvaluateConfig,
    LoggerConfig,
    LoraConfig,
    ModelConfig,
    OptimConfig,
    PrepopulateConfig,
    RetentionTrainingConfig,
    SequentialConfig,
    TrainConfig,
    VariantConfig,
    register_configs,
    schema_defaults,
)
from engram.config.validation import for_variant, load_plugins, validate, validate_evaluate_keys

__all__ = ["EVALUATE_KEYS", "ROOT_GROUPS", "ROW_ORDER", "SCHEMAS", "CheckpointConfig", "ConfigError", "DataConfig",
           "EngramConfig", "EvaluateConfig", "LoggerConfig", "LoraConfig", "ModelConfig", "OptimConfig",
           "PrepopulateConfig", "RetentionTrainingConfig", "SequentialConfig", "TrainConfig", "VariantConfig",
           "for_variant", "load_plugins", "register_configs", "schema_defaults", "validate", "validate_engram",
           "validate_evaluate_keys", "validate_layers"]
