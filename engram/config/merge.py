"""Typing a composed config: merge it onto a schema dataclass so a wrong type fails as one config line naming the
full key (engram/config.py's `validate` and evaluate.py's keys use it)."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Collection, Mapping
from dataclasses import is_dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from engram.config.renamed import first_old, rule
from engram.config.rules import ConfigError, check, first_line


@functools.cache
def _schema(schema_cls: type) -> DictConfig:
    """The schema as a config, built once (~20 ms); merge copies it, so it is never changed."""
    return OmegaConf.structured(schema_cls)


def typed_config(cfg: DictConfig, schema_cls: type, root_extra: Collection[str] | None = None) -> DictConfig:
    """Merge onto the schema so wrong types fail with the full key (e.g. engram.table_size=abc). A key the schema
    does not have is refused at any depth below the root; at the root only when `root_extra` is given (the keys
    another schema owns, e.g. evaluate.py's), since a saved run config may carry keys of an older version."""
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
    if (old := first_old(plain)) is not None:  # a key under its spelling before it moved into a kind's section
        raise ConfigError(old[0], old[1], rule(*old))
    known = {k: v for k, v in plain.items() if k in schema}
    check_known(plain if root_extra is not None else known, schema_cls, root_extra or ())
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


def check_known(values: Mapping[str, Any], schema_cls: type, extra: Collection[str] = ()) -> None:
    """ConfigError naming the first key of `values` that the schema lacks (a typo, or a `+key=` override would
    otherwise be dropped or merged silently). `extra`: root keys another schema owns; `hydra` is Hydra's."""
    found = unknown_key({k: v for k, v in values.items() if k not in (*extra, "hydra")}, _schema(schema_cls))
    if found is None:
        return
    key, value, options, parent = found
    close = difflib.get_close_matches(key[len(parent) + 1 if parent else 0 :].partition(".")[0], options, n=3)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    raise ConfigError(key, value, f"is not a config key{f' of {parent}' if parent else ''}{hint}")


def unknown_key(values: Mapping[str, Any], schema: DictConfig,
                prefix: str = "") -> tuple[str, Any, list[str], str] | None:
    """(full key, value, the keys there are, the known node it is under) of the first key the schema lacks, at any
    depth; None when all are known. Schema nodes typed Any or dict (trainer, paths) are open: their keys are checked
    elsewhere or free."""
    for key, value in values.items():
        if key not in schema:
            while isinstance(value, Mapping) and len(value) == 1:  # +a.b=1 composes as a={b: 1}: name a.b=1
                (inner, value), = value.items()
                key = f"{key}.{inner}"
            return f"{prefix}{key}", value, [str(k) for k in schema], prefix.rstrip(".")
        if isinstance(value, Mapping) and is_dataclass(OmegaConf.get_type(schema, key)):
            found = unknown_key(value, schema[key], f"{prefix}{key}.")
            if found is not None:
                return found
    return None
