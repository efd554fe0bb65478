"""The gate kinds, one module each (`engram.gate=<module name>`), each exposing `Gate(hidden_size, mem_dim, cfg)`.

The interface is the `Gate` protocol in engram/protocols.py (an nn.Module mapping `(h, e, keep, cache)` to the
residual and keeping `last_gate`; what `gate_bias` means in every gate); `common.GateBase` records the gate values.
"""
