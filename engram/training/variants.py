"""Wrap the base model as the variant declares (engram/variants/<name>.py: `lora`, `gated`, `engram`,
`full_finetune`) and set what trains: a LoRA adapter (peft) first, then its per-token gate (GatedLoRAModel) or an
EngramModel around it."""

from __future__ import annotations

from typing import Any

from peft import LoraConfig, get_peft_model
from torch import nn

from engram.config.rules import ConfigError, from_scratch
from engram.models.gated_lora import GatedLoRAModel
from engram.models.inject import add_engram, engram_param_groups, engram_parameters
from engram.variants.common import variant_spec


def apply_variant(model: nn.Module, cfg: Any, tokenizer: Any = None) -> nn.Module:
    """Wrap `model` for `cfg.variant.name` (peft PeftModel for LoRA, then EngramModel for the memory) and set
    requires_grad so exactly the right weights train."""
    variant = variant_spec(cfg.variant.name)
    # a model built from scratch has nothing pretrained to keep: all of it trains, beside any memory
    scratch = "model" in cfg and from_scratch(cfg.model.name)  # a partial config (tests, plugins) may name none
    full = scratch or (variant.full_finetune and cfg.variant.get("finetune", "none") == "full")
    for p in model.parameters():
        p.requires_grad_(full)
    for wrapper in variant.wrappers():  # innermost first; wrappers() refuses a gate without an adapter
        if wrapper == "lora":
            lora = LoraConfig(
                r=int(cfg.lora.r),
                lora_alpha=int(cfg.lora.alpha),
                lora_dropout=float(cfg.lora.dropout),
                target_modules=list(cfg.lora.target_modules),
                layers_to_transform=lora_layers(cfg.lora.get("layers"), int(model.config.num_hidden_layers)),
                task_type="CAUSAL_LM",
            )
            model = get_peft_model(model, lora)  # freezes everything but the adapters
        elif wrapper == "gate":  # the gate trains
            model = GatedLoRAModel(model, width=int(cfg.variant.gate_width),
                                   init_bias=float(cfg.variant.gate_init_bias), seed=int(cfg.seed))
        elif wrapper == "engram":
            model = add_engram(model, cfg.engram, tokenizer=tokenizer)
            for p in engram_parameters(model):
                p.requires_grad_(True)
    return model


def lora_layers(layers: Any, depth: int) -> list[int] | None:
    """`lora.layers` as peft's `layers_to_transform`: absolute indices (negative ones count from the top), or None
    for every layer. Adapters on the top layers only leave a frozen prefix (engram/training/prefix_cache.py)."""
    if layers is None:
        return None
    resolved = sorted({int(i) + depth if int(i) < 0 else int(i) for i in layers})
    if not resolved or resolved[0] < 0 or resolved[-1] >= depth:
        raise ConfigError("lora.layers", list(layers), f"must name decoder layers of the model (0..{depth - 1}, "
                          f"or -1..-{depth})")
    return resolved


def trainable_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def engram_groups(model: nn.Module, variant: str) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(table params, dense engram params), empty for variants without memory."""
    if not variant_spec(variant).engram:
        return [], []
    groups = engram_param_groups(model)
    return list(groups["tables"]), list(groups["dense"])
