"""What every peft-style wrapper around a causal LM shares (EngramModel, GatedLoRAModel): attribute delegation."""

from __future__ import annotations

from typing import Any

from torch import nn


class ModelWrapper(nn.Module):
    """A module around `self.base_model`; attributes it does not have itself come from the wrapped model."""

    def __getattr__(self, name: str) -> Any:
        """Anything else (config, generation_config, device, ...) comes from the wrapped model, as in peft."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_model":  # not set yet (inside __init__): no recursion
                raise
            return getattr(self.base_model, name)
