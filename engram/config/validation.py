"""Validation: merge a composed config onto the schema (engram/config/schema.py; wrong types) and check its values
(the rules in engram/config/rules.py and scale.py, and each kind's own). Raises `ConfigError` with one line:
`config error: <key>=<value> <rule>`. Nothing here imports torch or transformers."""

from __future__ import annotations

import copy

from omegaconf import DictConfig, OmegaConf

from engram import registry
from engram.config.merge import typed_config
from engram.config.rules import (
    FLOAT32_MAX,
    ConfigError,
    check,
    check_seed,
    evaluate_mode,
    finite,
    first_line,
    is_int,
    known_kind,
    one_of,
    validate_data,
    validate_engram,
    validate_logger,
    validate_lora,
    validate_model,
    validate_optim,
    validate_scratch,
    validate_sequential,
    validate_train,
    validate_trainer,
)
from engram.config.scale import validate_storage
from engram.config.schema import ROW_ORDER, EvaluateConfig, schema_of
from engram.variants.common import variant_spec


def load_plugins(cfg: DictConfig) -> None:
    """Import the modules `plugins` names (each registers its kinds in engram/registry.py) before any name is
    checked; one config line if one cannot be imported."""
    modules = OmegaConf.select(cfg, "plugins", default=None) if isinstance(cfg, DictConfig) else cfg.get("plugins")
    check(modules is None or isinstance(modules, list) or OmegaConf.is_list(modules), "plugins", modules,
          "must be a list of module names")
    for module in modules or []:
        try:
            registry.load_plugins([module])
        except Exception as e:  # noqa: BLE001 - whatever the plugin raises, as one config line
            raise ConfigError("plugins", module, f"cannot be imported ({first_line(e)})") from None


def validate(cfg: DictConfig, root_extra: tuple[str, ...] | None = None) -> DictConfig:
    """Check a composed config; returns it typed. Raises ConfigError (one line) on the first problem.
    `root_extra`: given for a command line (every root key must then be TrainConfig's or one of these); None for
    a saved run config, whose unknown root keys are dropped (merge.typed_config)."""
    load_plugins(cfg)
    typed = typed_config(cfg, schema_of("train"), root_extra)  # with the plugins' sections
    validate_model(typed.model)
    known_kind("variant", "variant.name", typed.variant.name)
    one_of("variant.finetune", typed.variant.finetune, ("none", "full"))
    check(is_int(typed.variant.gate_width) and 1 <= typed.variant.gate_width <= 65536, "variant.gate_width",
          typed.variant.gate_width, "must be an integer in [1, 65536]")
    check(finite(typed.variant.gate_init_bias) and abs(typed.variant.gate_init_bias) <= 30,
          "variant.gate_init_bias", typed.variant.gate_init_bias, "must be a number in [-30, 30]")
    if fixed := variant_spec(typed.variant.name).address:  # e.g. engram_hybrid's
        typed.engram.address = fixed
    validate_engram(typed.engram)
    validate_lora(typed.lora, typed.model.name)
    validate_data(typed.data)
    if run_rules := registry.attribute("family", typed.data.family, "check_run"):  # the family's rules on the run
        run_rules(typed)
    validate_scratch(typed)
    check(is_int(typed.checkpoint.every_n_steps) and typed.checkpoint.every_n_steps >= 0,
          "checkpoint.every_n_steps", typed.checkpoint.every_n_steps, "must be >= 0 (0 = only at epoch ends)")
    validate_optim(typed.optim)
    check(typed.optim.lr * typed.engram.lr_multiplier < FLOAT32_MAX, "engram.lr_multiplier",
          typed.engram.lr_multiplier, f"times optim.lr ({typed.optim.lr}) overflows float32 (the tables' lr)")
    validate_sequential(typed)  # before the trainer: sequential.batch > 0 lets trainer.max_epochs be 0
    validate_trainer(typed)
    validate_storage(typed)  # after the trainer's own keys: it counts the processes the trainer starts
    validate_train(typed.train)
    validate_logger(typed.logger)
    check_seed("seed", typed.seed)
    check(is_int(typed.eval_max_new_tokens) and 1 <= typed.eval_max_new_tokens <= 4096, "eval_max_new_tokens",
          typed.eval_max_new_tokens, "must be an integer in [1, 4096]")
    return typed


def for_variant(cfg: DictConfig, variant: str) -> DictConfig:
    """A validated copy of `cfg` for one comparison row: variant.name set, no full fine-tuning, the variant's own
    engram settings (engram_hybrid: engram.address=hybrid). ConfigError (one line) when they do not fit."""
    vcfg = copy.deepcopy(cfg)
    vcfg.variant.name = variant
    vcfg.variant.finetune = "none"
    return validate(vcfg)


def validate_evaluate_keys(cfg: DictConfig) -> DictConfig:
    """The keys evaluate.yaml adds, typed on EvaluateConfig (their files are checked in engram/inputs.py)."""
    keys = [k for k in EvaluateConfig.__dataclass_fields__ if k in cfg]
    typed = typed_config(OmegaConf.masked_copy(cfg, keys), EvaluateConfig)
    known = registry.names("variant")
    bad = [v for v in typed.variants if v not in known]
    check(not bad and len(typed.variants) > 0, "variants", list(typed.variants),
          f"must be a non-empty list of {', '.join(known)}")
    mode = evaluate_mode(typed)  # exactly one mode, or one line naming the keys
    check(mode == "train_variants" or list(typed.variants) == list(ROW_ORDER), "variants", list(typed.variants),
          f"chooses the rows of train_variants=true; it does nothing with the {mode} mode")
    return typed
