"""gate=mlp (seed PoC): `r = proj(e)`, `g = sigmoid(MLP([h, r]) + gate_bias)`, `out = g * r`; the MLP's last bias
starts at 0, so at initialisation this is the seed's MLP whose last bias started at `gate_bias`."""

from engram.lazy import implementation

__getattr__ = implementation(__name__, "Gate", "MLPGate")  # the torch side: _mlp.py
