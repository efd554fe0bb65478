"""What each variant adds to the base model and what it trains.

    baseline  frozen base (variant.finetune=full: every weight trains)
    lora      peft LoRA on the attention projections; only LoRA trains
    engram    frozen base + Engram memory; only the memory trains
    combined  LoRA + Engram; both train, in separate optimizer groups
"""

from __future__ import annotations

from typing import Any

from peft import LoraConfig, get_peft_model
from torch import nn

from engram.models.inject import add_engram, engram_param_groups, engram_parameters

ENGRAM_VARIANTS = ("engram", "combined")
LORA_VARIANTS = ("lora", "combined")


def has_engram(variant: str) -> bool:
    return variant in ENGRAM_VARIANTS


def apply_variant(model: nn.Module, cfg: Any, tokenizer: Any = None) -> nn.Module:
    """Wrap `model` for `cfg.variant.name` (peft PeftModel for LoRA, then EngramModel for the memory) and set
    requires_grad so exactly the right weights train."""
    variant = cfg.variant.name
    full = variant == "baseline" and cfg.variant.get("finetune", "none") == "full"
    for p in model.parameters():
        p.requires_grad_(full)
    if variant in LORA_VARIANTS:
        lora = LoraConfig(
            r=int(cfg.lora.r),
            lora_alpha=int(cfg.lora.alpha),
            lora_dropout=float(cfg.lora.dropout),
            target_modules=list(cfg.lora.target_modules),
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)  # freezes everything but the adapters
    if variant in ENGRAM_VARIANTS:
        model = add_engram(model, cfg.engram, tokenizer=tokenizer)
        for p in engram_parameters(model):
            p.requires_grad_(True)
    return model


def trainable_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def engram_groups(model: nn.Module, variant: str) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(table params, dense engram params), empty for variants without memory."""
    if not has_engram(variant):
        return [], []
    groups = engram_param_groups(model)
    return list(groups["tables"]), list(groups["dense"])
