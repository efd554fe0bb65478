"""The hash kinds, one module each (`engram.hash=<module name>`), each exposing a class `Hash`.

The interface is documented in engram/memory/hashing.py (the shared helpers); engram/registry.py lists the kinds.
"""
