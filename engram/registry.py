"""One registry per kind: a kind's names are the module files of its package, plus what plugins register.

    kind      package                   each module exposes          chosen by
    hash      engram.memory.hashes      `Hash`                       engram.hash
    gate      engram.memory.gates       `Gate`                       engram.gate
    address   engram.memory.address     `Address`                    engram.address
    variant   engram.variants           `Variant`                    variant.name
    family    engram.data.families      `build(data_cfg)`            data.family
    model     engram.models.sources     `Source`                     model.name
    logger    engram.tracking.loggers   `build(cfg, run_dir)`        logger.name

A new kind is one module in its package (named after the kind, e.g. engram/memory/hashes/toy.py) and one YAML that
selects it; nothing else changes. `names(kind)` lists the module files without importing them; `attribute(kind,
name, attr, default)` reads an optional module attribute beside the main one (a data family's or model source's
`check`, ...; documented in each kind package's `__init__`) without touching the main one. Config validation reads
those attributes and must not import torch, so a built-in kind module imports without it: a kind whose main
attribute needs torch (every hash, gate and address) keeps that in the module `_<name>` beside it, imported on first
use of the main attribute (engram/lazy.py's `implementation`). Modules whose name starts with `_` or is `common`
are helpers, not kinds.

From config to object: engram/config/sections.py's `build(kind, name, cfg, **given)` calls what `get` returns with
the parameters it names, from `given`, the kind's own section (its `Params`) or the group's keys (no adapter class).

External kinds: the root config key `plugins: [dotted.module, ...]` names modules imported before validation; a
plugin calls `register(kind, name, obj)` at import, and its YAML is found through Hydra's searchpath
(`hydra.searchpath=[file://dir]` or `--config-dir`).

Torch-free and importing nothing of engram, so the config layer uses it (engram/config/rules.py checks names).
"""

from __future__ import annotations

import pkgutil
from importlib import import_module
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent

# kind -> (package, the attribute every module of the kind exposes, the config key that chooses it)
KINDS: dict[str, tuple[str, str, str]] = {
    "hash": ("engram.memory.hashes", "Hash", "engram.hash"),
    "gate": ("engram.memory.gates", "Gate", "engram.gate"),
    "address": ("engram.memory.address", "Address", "engram.address"),
    "variant": ("engram.variants", "Variant", "variant.name"),
    "family": ("engram.data.families", "build", "data.family"),
    "model": ("engram.models.sources", "Source", "model.name"),
    "logger": ("engram.tracking.loggers", "build", "logger.name"),
}
HELPERS = ("common",)  # module names in a kind package that are shared code, not kinds

_registered: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}


def _kind(kind: str) -> tuple[str, str, str]:
    if kind not in KINDS:
        raise KeyError(f"engram: no registry for kind {kind!r} (kinds: {', '.join(KINDS)})")
    return KINDS[kind]


def register(kind: str, name: str, obj: Any) -> Any:
    """Add `name` to `kind` (a plugin's class or function); returns `obj`, so it also works as a decorator
    argument. A name that a built-in module already has is refused (it would be ambiguous)."""
    _kind(kind)
    if name in builtin_names(kind):
        raise ValueError(f"engram: {kind} {name!r} is built in; pick another name for the plugin")
    _registered[kind][name] = obj
    return obj


def unregister(kind: str, name: str) -> None:
    _kind(kind)
    _registered[kind].pop(name, None)


def builtin_names(kind: str) -> tuple[str, ...]:
    """The module names of the kind's package, found on disk (nothing is imported)."""
    package = _kind(kind)[0]
    directory = ROOT.joinpath(*package.split(".")[1:])
    return tuple(sorted(m.name for m in pkgutil.iter_modules([str(directory)])
                        if not m.name.startswith("_") and m.name not in HELPERS))


def names(kind: str) -> tuple[str, ...]:
    """Every known name of `kind`: the built-in modules, then the registered ones."""
    return builtin_names(kind) + tuple(sorted(n for n in _registered[kind] if n not in builtin_names(kind)))


def get(kind: str, name: str) -> Any:
    """The class / function of `name` (importing its module on first use); KeyError naming the known names
    (config validation reports unknown names first, as one config line)."""
    if name in _registered[kind]:
        return _registered[kind][name]
    return getattr(_module(kind, name), _kind(kind)[1])


def attribute(kind: str, name: str, attr: str, default: Any = None) -> Any:
    """An optional attribute a kind may declare beside its main one (e.g. a data family's `check`): the built-in
    module's, or the registered object's (a plugin sets it on what it registers)."""
    _kind(kind)
    if name in _registered[kind]:
        return getattr(_registered[kind][name], attr, default)
    return getattr(_module(kind, name), attr, default)


def _module(kind: str, name: str) -> Any:
    """The built-in module of `name` (not its main attribute, which may import torch); KeyError naming the known
    names."""
    package, _, key = _kind(kind)
    if name not in builtin_names(kind):
        raise KeyError(f"engram: {key}={name} is not one of {', '.join(names(kind))}")
    return import_module(f"{package}.{name}")


def load_plugins(modules: Any) -> None:
    """Import each plugin module by its dotted name (it registers its kinds at import)."""
    for module in list(modules or []):
        import_module(str(module))
