"""The gate kinds, one module each (`engram.gate=<module name>`), each exposing `Gate`: an nn.Module class built
by name from `hidden_size`, `mem_dim` and the config keys its constructor names (engram/config/sections.py's `build`).

The interface is the `Gate` protocol in engram/protocols.py (an nn.Module mapping `(h, e, keep, cache)` to the
residual and the gate's value per position; what `gate_bias` means in every gate). A gate keeps no record of its
forwards: the memory puts the returned values in its `MemoryTrace` (engram/memory/trace.py).
Each kind module is what config validation reads (torch-free); the torch code of `gate=<name>` is `_<name>.py`.
"""
