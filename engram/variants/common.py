"""What a variant declares (torch-free): the wrappers it puts around the base model, in this order."""

from __future__ import annotations


class VariantSpec:
    lora: bool = False  # a peft LoRA adapter (lora.*); only the adapter trains
    engram: bool = False  # an EngramModel (engram.*); the memory trains, in its own optimizer groups
    full_finetune: bool = False  # variant.finetune=full may train every base weight (a variant with no wrapper)
