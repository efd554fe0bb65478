"""gate=context (DeepSeek paper): `alpha = sigmoid(signed_sqrt(<RMSNorm(h), RMSNorm(W_k e)> / sqrt(H)) + gate_bias)`,
`v = alpha * W_v e`, `out = v + SiLU(causal depthwise conv1d(RMSNorm(v)))` with kernel `conv_kernel`, dilation
`max_ngram`, zero-initialised (so it starts as the identity on v)."""

from engram.lazy import implementation

__getattr__ = implementation(__name__, "Gate", "ContextGate")  # the torch side: _context.py
