"""What a variant declares (torch-free), and the one lookup that answers every question about a variant.

Unknown names, one rule: a name a config gives is checked by config validation (`variant.name`, `variants`), so
`variant_spec(name)` meeting an unknown one is a bug and raises KeyError. A name read back from a run dir is
history, not a choice: `variant_spec(name, recorded=True)` answers an undeclared one (renamed since, a plugin not
loaded, "?" for a dir without config) as `Undeclared`, which wraps nothing, so old runs stay readable.
"""

from __future__ import annotations

from engram import registry

WRAPPERS = ("lora", "gate", "engram")  # what may go around the base model, innermost first


class VariantSpec:
    lora: bool = False  # a peft LoRA adapter (lora.*); only the adapter trains
    engram: bool = False  # an EngramModel (engram.*); the memory trains, in its own optimizer groups
    full_finetune: bool = False  # variant.finetune=full may train every base weight (a variant with no wrapper)
    gated: bool = False  # with lora: a GatedLoRAModel mixes base and LoRA logits per token (variant.gate_*)
    address: str | None = None  # with engram: the engram.address the variant fixes (engram_hybrid: hybrid)

    @classmethod
    def wrappers(cls) -> tuple[str, ...]:
        """The wrappers around the base model, innermost first: "lora" (peft), then "gate" (GatedLoRAModel) or
        "engram" (EngramModel). ValueError for a declaration no model can be built from."""
        if cls.gated and (not cls.lora or cls.engram):
            raise ValueError(f"variant {cls.__module__}: a gate needs a LoRA adapter and no memory")
        return tuple(w for w, on in zip(WRAPPERS, (cls.lora, cls.gated, cls.engram), strict=True) if on)

    @classmethod
    def outer(cls) -> str | None:
        """The outermost wrapper (None: the bare base model): the one that saves and loads the trained weights."""
        wrappers = cls.wrappers()
        return wrappers[-1] if wrappers else None


class Undeclared(VariantSpec):
    """A recorded variant name no module declares today: it wraps nothing."""


def variant_spec(name: str | None, *, recorded: bool = False) -> type[VariantSpec]:
    """The declaration of variant `name` (engram/variants/<name>.py or a plugin's). Unknown name: KeyError naming
    the known ones, or `Undeclared` when `recorded` (a name read from a run dir; see the module docstring)."""
    if recorded and name not in registry.names("variant"):
        return Undeclared
    return registry.get("variant", str(name))
