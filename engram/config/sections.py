"""A kind's own keys, as a section of its group's schema.

A kind module (engram/registry.py) may declare `Params`, a dataclass of the keys only that kind reads (each field with
a `# meaning` comment, as every schema field), and `check(cfg)`, its rules on the group's config (torch-free; they
raise ConfigError naming the key). Its group's schema then gets a section named after the kind:

    group    kinds                   sections (one per kind that declares Params)
    engram   hash, gate, address     engram.hybrid.* (address=hybrid), engram.question.* (hash=question), ...
    data     family                  data.long_recall.* (data=long_recall), ...

So the schema is composed, not written out: `EngramConfig` is `EngramKeys` (the keys every memory has) plus one
section per built-in kind (engram/config/schema.py). Plugins register after that; `schema(group)` there composes their
sections on top, and validation uses it. Only the chosen kinds' rules run (a section of a kind not chosen is typed,
not checked: it does nothing). Where a kind's own section comes from (`cfg.<name>`, else its defaults) is in
`section_of`, for the one path from config to object (registry.build).
"""

from __future__ import annotations

import functools
from dataclasses import field, fields, make_dataclass
from typing import Any

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
    clash = {name for name, _ in sections} & {f.name for f in fields(base)}
    if clash and not override:
        raise ValueError(f"engram: a kind named {sorted(clash)[0]} would hide the key {base.__name__}."
                         f"{sorted(clash)[0]}; rename the kind")
    own = [(name, params, field(default_factory=params)) for name, params in sections]
    composed = make_dataclass(name, own, bases=(base,), namespace={"__doc__": base.__doc__})
    composed.__module__ = base.__module__
    return composed


def section_of(cfg: Any, name: str, params: type) -> Any:
    """The kind `name`'s own section of a group config: `cfg.<name>` when it has one (a validated config, an
    EngramConfig), else the kind's defaults (a config composed before a plugin registered its kind)."""
    section = cfg.get(name) if hasattr(cfg, "get") else getattr(cfg, name, None)
    return params() if section is None else section
