"""engram-lab: Engram memory (hash-addressed, gated lookup tables) for pretrained causal LMs.

The peft-like public API is imported lazily so that `import engram` (and config validation) stays fast.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "EngramModel": "engram.models.engram_model",
    "add_engram": "engram.models.inject",
    "remove_engram": "engram.models.inject",
    "engram_memories": "engram.models.inject",
    "engram_parameters": "engram.models.inject",
    "engram_param_groups": "engram.models.inject",
    "engram_state_dict": "engram.models.inject",
    "save_engram": "engram.models.inject",
    "load_engram": "engram.models.inject",
    "read_engram_config": "engram.models.inject",
    "load_model": "engram.models.loading",
    "EngramConfig": "engram.config",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engram' has no attribute {name!r}")
