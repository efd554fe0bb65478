"""The gate kinds, one module each (`engram.gate=<module name>`), each exposing `Gate(hidden_size, mem_dim, cfg)`.

A gate maps `(h [B, T, H], e [B, T, E], keep [B, T], cache: dict | None)` to the residual `out [B, T, H]` (zero
where `keep` is False) and keeps the last forward's gate values (detached, only where `keep`) in `last_gate` for
statistics. `cache` (cached decoding) is a per-layer dict the gate may read and rewrite.

`gate_bias` means the same in every gate: a fixed offset (not trained) added to the gate's logit before the
sigmoid. -5 makes a fresh gate nearly closed (sigmoid(-5) = 0.007), 0 half open; training can still open or shut
the gate through its trained weights.
"""
