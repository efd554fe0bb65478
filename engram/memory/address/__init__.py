"""The address kinds, one module each (`engram.address=<module name>`), each exposing `Address(rows, heads, cfg)`.

An address is an `nn.Module` deciding which looked-up rows may contribute: `forward(rows [B, T, heads] (global
table rows, head offsets applied), keys [B, T, heads] (each head's full key, see engram/memory/hashing.py),
keep [B, T]) -> [B, T, heads]`, 1 where that head's row contributes and 0 where not. Its buffers (e.g. a key
stored per row) are part of the memory's state_dict, so they are saved in the engram file.

An address may also find rows by content (address=hybrid): then it has `retriever(hidden_size, row_dim) ->
nn.Module`, which the memory builds once and calls as `retriever(h [B, T, H], table, keep) -> [B, T, heads,
row_dim]`, added to the hash rows before the gate (engram/memory/memory.py).
"""
