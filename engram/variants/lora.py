"""variant=lora: peft LoRA on the attention projections (lora.*); base weights frozen."""

from engram.variants.common import VariantSpec


class Variant(VariantSpec):
    lora = True
