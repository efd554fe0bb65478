"""variant=combined: LoRA and Engram together, each in its own optimizer parameter group."""

from engram.variants.common import VariantSpec


class Variant(VariantSpec):
    lora = True
    engram = True
