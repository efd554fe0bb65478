"""Lazy package attributes: `from engram import add_engram` imports the module that defines it only when asked,
so `import engram` and config validation do not pay for torch (~2 s) up front."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_attributes(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """A module-level `__getattr__` for `package` that imports `where[name]` on first use of `name`."""

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def implementation(module: str, *names: str) -> Callable[[str], Any]:
    """A kind module's `__getattr__`: `names` come from its implementation, the module `_<name>` beside it (torch),
    imported on first use. The kind module itself is read at config validation, which runs before torch loads."""
    package, _, name = module.rpartition(".")
    return lazy_attributes(module, dict.fromkeys(names, f"{package}._{name}"))
