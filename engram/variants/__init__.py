"""The variant kinds, one module each (`variant=<module name>`), each exposing a class `Variant` that says what the
variant wraps around the base model and so what trains (see engram/variants/common.py). Torch-free declarations:
config validation and engram.cli read them; engram/training/variants.py does the wrapping."""
