"""The hash kinds, one module each (`engram.hash=<module name>`), each exposing a class `Hash`, built by name from
`layers`, `vocab_size`, `pad_id`, `token_map` and the config keys its constructor names (sections.py's `build`).

The interface is the `Hash` protocol in engram/protocols.py; the shared helpers are in engram/memory/hashing.py;
engram/registry.py lists the kinds.
Each kind module is what config validation reads (torch-free); the torch code of `hash=<name>` is `_<name>.py`.
"""
