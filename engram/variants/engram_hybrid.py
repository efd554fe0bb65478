"""variant=engram_hybrid: variant=engram with engram.address=hybrid (hash rows plus rows found by content, see
engram/memory/address/hybrid.py), its own row in the comparison; only the memory trains."""

from engram.variants.common import VariantSpec


class Variant(VariantSpec):
    engram = True
    address = "hybrid"
