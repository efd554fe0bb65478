"""Typing a composed config: merge it onto a schema dataclass so a wrong type fails as one config line naming the
full key (engram/config.py's `validate` and evaluate.py's keys use it)."""

from __future__ import annotations

import functools
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from engram.config_rules import ConfigError, check, first_line


@functools.cache
def _schema(schema_cls: type) -> DictConfig:
    """The schema as a config, built once (~20 ms); merge copies it, so it is never changed."""
    return OmegaConf.structured(schema_cls)


def typed_config(cfg: DictConfig, schema_cls: type) -> DictConfig:
    """Merge onto the schema so wrong types fail with the full key (e.g. engram.table_size=abc)."""
    schema = _schema(schema_cls)
    for key in ("experiment_name", "task_name"):  # other values interpolate them: name them, not their users
        value = OmegaConf.select(cfg, key, throw_on_resolution_failure=False) if isinstance(cfg, DictConfig) else None
        check(value is None or isinstance(value, str | int | float), key, value, "must be a string")
    try:
        plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    except OmegaConfBaseException as e:  # e.g. a value `${nope}` that points nowhere
        raise ConfigError(getattr(e, "full_key", None) or "config", None,
                          f"cannot be resolved ({first_line(e)})") from None
    plain.pop("hydra", None)
    known = {k: v for k, v in plain.items() if k in schema}
    try:
        merged = OmegaConf.merge(schema, known)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or _bad_key(schema, known)
        value = getattr(e, "value", None) if getattr(e, "full_key", None) else OmegaConf.select(
            OmegaConf.create(known), key, default=None)
        raise ConfigError(key, value, f"has the wrong type or is unknown ({first_line(e)})") from None
    return merged


def _bad_key(schema: DictConfig, values: dict[str, Any], prefix: str = "") -> str:
    """The key a failed merge tripped on, when OmegaConf does not say (e.g. a mapping where a list belongs)."""
    for k, v in values.items():
        try:
            OmegaConf.merge(schema, {k: v})
        except OmegaConfBaseException:
            sub = schema.get(k) if k in schema else None
            if isinstance(v, dict) and OmegaConf.is_dict(sub):
                return _bad_key(sub, v, f"{prefix}{k}.")
            return f"{prefix}{k}"
    return prefix.rstrip(".") or "config"
