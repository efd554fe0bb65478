"""What a variant declares (torch-free): the wrappers it puts around the base model, in this order."""

from __future__ import annotations

from engram import registry


class VariantSpec:
    lora: bool = False  # a peft LoRA adapter (lora.*); only the adapter trains
    engram: bool = False  # an EngramModel (engram.*); the memory trains, in its own optimizer groups
    full_finetune: bool = False  # variant.finetune=full may train every base weight (a variant with no wrapper)
    gated: bool = False  # with lora: a GatedLoRAModel mixes base and LoRA logits per token (variant.gate_*)
    address: str | None = None  # with engram: the engram.address the variant fixes (engram_hybrid: hybrid)


def variant_spec(name: str) -> type[VariantSpec]:
    """The declaration of variant `name` (engram/variants/<name>.py or a plugin's); KeyError for an unknown name."""
    return registry.get("variant", name)


def wraps_engram(name: str) -> bool:
    """Variant `name` trains an Engram memory (False for a name no module declares, e.g. an old run dir's)."""
    return name in registry.names("variant") and bool(variant_spec(name).engram)


def wraps_gate(name: str) -> bool:
    """Variant `name` gates its LoRA adapter per token (False for a name no module declares)."""
    return name in registry.names("variant") and bool(variant_spec(name).gated)


def wraps_lora(name: str) -> bool:
    """Variant `name` trains a LoRA adapter (False for a name no module declares)."""
    return name in registry.names("variant") and bool(variant_spec(name).lora)
