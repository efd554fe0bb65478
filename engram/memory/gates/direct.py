"""gate=direct: no learned gate; the row is written straight into the residual, scaled to the residual's size.

    out = keep * RMS(h) * proj(e)        (proj: identity when the rows are hidden_size wide, else a linear map)

The residual stream of a pretrained LM grows with depth (SmolLM2: RMS ~2 after the embeddings, ~25 at the last
layer), so a row of fixed size that matters at layer 1 is noise at layer 29. Scaling by RMS(h) makes a row of
entries ~1 as large as the hidden state at any depth. Selectivity comes from the address kind (fingerprint /
written): with address=hashed every kept position gets its rows. The gate is always open (its value is 1); what
enters (the memory's trace) is that times the share of heads whose rows the address let through.
"""

from engram.lazy import implementation

__getattr__ = implementation(__name__, "Gate")  # the torch side: _direct.py
