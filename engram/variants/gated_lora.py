"""variant=gated_lora: LoRA whose logits are mixed with the frozen base's per token by a learned gate
g = sigmoid(MLP(h_base)) (engram/models/gated_lora.py); the adapter and the gate train."""

from engram.variants.common import VariantSpec


class Variant(VariantSpec):
    lora = True
    gated = True
