"""variant=engram: frozen base + Engram memory at engram.layers; only the memory trains."""

from engram.variants.common import VariantSpec


class Variant(VariantSpec):
    engram = True
