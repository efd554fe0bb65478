"""A kind's own keys, as a section of its group's schema, and the one path from a config to a kind's object.

A kind module (engram/registry.py) may declare `Params`, a dataclass of the keys only that kind reads (each field with
a `# meaning` comment, as every schema field), and `check(cfg)`, its rules on the group's config (torch-free; they
raise ConfigError naming the key). Its group's schema then gets a section named after the kind:

    group    kinds                   sections (one per kind that declares Params)
    engram   hash, gate, address     engram.hybrid.* (address=hybrid), engram.question.* (hash=question), ...
    data     family                  data.long_recall.* (data=long_recall), ...

So the schema is composed, not written out: `EngramConfig` is `EngramKeys` (the keys every memory has) plus one
section per built-in kind (engram/config/schema.py). Plugins register after that; `schema_of(group)` there composes
their sections on top, and validation uses it. Only the chosen kinds' rules run (a section of a kind not chosen is
typed, not checked: it does nothing).

From config to object, one path for every hash, gate and address (`build`): the kind's constructor, from
registry.get, is called with each parameter it declares, by name, from what the caller gives (hidden_size, rows,
layers, ...), else the kind's own section, else the group's key of that name. No adapter class reads the config,
and a constructor default must equal the schema's (`default_drift`; tests/test_protocols.py holds every kind to it).
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import MISSING, field, fields, is_dataclass, make_dataclass
from typing import Any

from omegaconf import OmegaConf

from engram import registry

SECTION_KINDS: dict[str, tuple[str, ...]] = {"engram": ("hash", "gate", "address"), "data": ("family",)}


def declared(group: str, builtin: bool = False) -> dict[str, type]:
    """{kind name: its Params} of the kinds of `group` that declare one (the built-in ones only with `builtin`);
    ValueError when two kinds of the group would own the same section."""
    out: dict[str, type] = {}
    owner: dict[str, str] = {}
    for kind in SECTION_KINDS[group]:
        for name in registry.builtin_names(kind) if builtin else registry.names(kind):
            params = registry.attribute(kind, name, "Params")
            if params is None:
                continue
            if name in out:
                raise ValueError(f"engram: {owner[name]} {name} and {kind} {name} both declare {group}.{name}.*; "
                                 "rename one")
            out[name], owner[name] = params, kind
    return out


def compose(base: type, sections: dict[str, type], name: str | None = None, override: bool = False) -> type:
    """A dataclass `name` (default: base's name) deriving from `base`, with one field per section, `kind: Params =
    Params()`, and base's module and docstring (the configuration reference reads them). `override`: the sections
    replace fields of base of the same name (TrainConfig's `engram` and `data`); otherwise a clash is a ValueError.
    The same arguments give the same class (cached), so a typed config's schema is built once."""
    return _compose(base, tuple(sections.items()), name or base.__name__, override)


@functools.cache
def _compose(base: type, sections: tuple[tuple[str, type], ...], name: str, override: bool) -> type:
    if not sections and name == base.__name__:
        return base
    clash = sorted({key for key, _ in sections} & {f.name for f in fields(base)})
    if clash and not override:
        raise ValueError(f"engram: a kind named {clash[0]} would hide the key {base.__name__}.{clash[0]}; rename the "
                         "kind")
    own = [(key, params, field(default_factory=params)) for key, params in sections]
    composed = make_dataclass(name, own, bases=(base,), namespace={"__doc__": base.__doc__})
    composed.__module__ = base.__module__
    return composed


def section_of(cfg: Any, name: str, params: type) -> Any:
    """The kind `name`'s own section of a group config: `cfg.<name>` when it has one (a validated config, an
    EngramConfig), else the kind's defaults (a config composed before a plugin registered its kind)."""
    section = cfg.get(name) if hasattr(cfg, "get") else getattr(cfg, name, None)
    return params() if section is None else section


def build(kind: str, name: str, cfg: Any, **given: Any) -> Any:
    """The object of kind `name` (e.g. gate=context): its constructor called with `arguments`."""
    return registry.get(kind, name)(**arguments(kind, name, cfg, given))


def arguments(kind: str, name: str, cfg: Any, given: dict[str, Any]) -> dict[str, Any]:
    """{parameter: value} for each parameter the constructor of `name` declares: from `given`, else the kind's own
    section of `cfg` (its Params' field of that name), else `cfg`'s key of that name; one none of them holds keeps its
    default, and one without a default is a TypeError naming it."""
    params = registry.attribute(kind, name, "Params")
    own = section_of(cfg, name, params) if params is not None else None
    out = {}
    for p in inspect.signature(registry.get(kind, name)).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in given:
            out[p.name] = given[p.name]
        elif own is not None and p.name in _names(params):
            out[p.name] = _plain(getattr(own, p.name))
        elif p.name in _names(type(cfg)) or (OmegaConf.is_dict(cfg) and p.name in cfg):
            out[p.name] = _plain(getattr(cfg, p.name))
        elif p.default is p.empty:
            raise TypeError(f"engram: {kind}={name} takes {p.name}, which is neither given "
                            f"({', '.join(given)}) nor a key of its section or its group")
    return out


def default_drift(kind: str, name: str, group: type) -> list[str]:
    """The constructor defaults of `name` that differ from the schema's (its section's, else `group`'s field of that
    name), as `param=constructor default, schema default`: a second home for a default, bound to drift."""
    params = registry.attribute(kind, name, "Params")
    schema = {**_defaults(group), **(_defaults(params) if params is not None else {})}
    return [f"{p.name}={p.default!r}, schema {schema[p.name]!r}"
            for p in inspect.signature(registry.get(kind, name)).parameters.values()
            if p.default is not p.empty and p.name in schema and p.default != schema[p.name]]


def _names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)} if is_dataclass(cls) else set()


def _defaults(cls: type) -> dict[str, Any]:
    return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


def _plain(value: Any) -> Any:
    """A typed config's list (ListConfig) as a list: the constructors take plain values."""
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
