"""variant=baseline: the frozen base, evaluated as is (variant.finetune=full trains every weight instead)."""

from engram.variants.common import VariantSpec


class Variant(VariantSpec):
    full_finetune = True
