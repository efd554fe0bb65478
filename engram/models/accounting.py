"""What a model costs per token: its parameters, the parameters one token uses, and forward FLOPs per token.

The paper compares Engram with MoE at equal total parameters and equal active FLOPs per token (arXiv 2601.07372);
this is that accounting for any model here (a dense or MoE decoder, with or without memories):

- **total**: every parameter, and the rows of an offloaded table (host arrays, not parameters);
- **active**: what one token reads or multiplies by: an MoE layer's router and `experts_per_token / experts` of its
  experts (transformers keeps a layer's experts in parameters named `...experts...` whose first dimension is the
  expert), one row of the input embedding, and per memory one row per head of its table; every other parameter;
- **FLOPs per token** (one forward): 2 per active weight of a matrix product (every parameter with two or more
  dimensions but the embedding rows and table rows, which are read, not multiplied; plus the LM head, even when
  it shares the embedding's weights) and attention's 4 x hidden x (positions attended) per layer, averaged over the
  positions of a `context`-token block (a position attends to itself and the ones before it, at most the
  sliding window). Norms, activations and softmax are left out, as in the usual 2N estimate (Kaplan et al. 2020).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from engram import registry
from engram.memory.memory import EngramMemory
from engram.models.engram_model import causal_lm


@dataclass(frozen=True)
class Accounting:
    total: int  # parameters (and offloaded table rows)
    active: int  # parameters one token uses
    flops_per_token: int  # forward FLOPs per token, at the context length given
    table: int = 0  # memory table rows' parameters (the memory's share of the sparse parameters)
    idle_experts: int = 0  # expert parameters a token does not use (the MoE's share)

    def metrics(self) -> dict[str, float]:
        """eval.json's `params/total`, `params/active`, `flops/token`, `params/table` and `params/idle_experts`."""
        return {"params/total": float(self.total), "params/active": float(self.active),
                "flops/token": float(self.flops_per_token), "params/table": float(self.table),
                "params/idle_experts": float(self.idle_experts)}

    @property
    def memory_share(self) -> float | None:
        """rho of the paper's allocation study: the table's share of the parameters a token does not use (table
        rows + idle experts); None for a model with neither."""
        sparse = self.table + self.idle_experts
        return self.table / sparse if sparse else None

    def line(self) -> str:
        """The run header's line: `params 1.23 M total, 0.45 M active per token; 0.91 MFLOPs per token`."""
        return (f"params {self.total / 1e6:.2f} M total, {self.active / 1e6:.2f} M active per token; "
                f"{self.flops_per_token / 1e6:.2f} MFLOPs per token (forward)")


def account(model: nn.Module, context: int) -> Accounting:
    """The accounting of `model` (any wrapper around a transformers causal LM) for blocks of `context` tokens."""
    lm = causal_lm(model)
    config = lm.config
    experts = int(getattr(config, "num_local_experts", 0) or getattr(config, "num_experts", 0) or 0)
    per_token = int(getattr(config, "num_experts_per_tok", 0) or 0)
    embedding = lm.get_input_embeddings().weight
    tables = {id(m.table): m for m in model.modules() if isinstance(m, EngramMemory)}
    table_params = {id(p) for m in tables.values() for p in m.table.parameters()}
    total = active = matmul = table = idle = 0
    for name, p in model.named_parameters():
        n = p.numel()
        total += n
        if p is embedding:
            active += embedding.shape[-1]
        elif id(p) in table_params:
            continue  # below: one row per head
        elif experts and ".experts." in f".{name}." and p.dim() >= 2 and p.shape[0] == experts:
            used = n * per_token // experts
            active, matmul, idle = active + used, matmul + used, idle + n - used
        else:
            active += n
            matmul += n if p.dim() >= 2 else 0
    for memory in tables.values():
        rows, dim = _table_shape(memory.table)
        if not any(True for _ in memory.table.parameters()):  # offloaded: host arrays, not parameters
            total += rows * dim
        table += rows * dim
        active += memory.offsets.numel() * dim  # each head reads one row
    head = lm.get_output_embeddings()
    if head is not None and head.weight is embedding:  # a tied head multiplies by the embedding's weights
        matmul += embedding.numel()
    layers, hidden = int(config.num_hidden_layers), int(config.hidden_size)
    attended = _mean_attended(int(context), getattr(config, "sliding_window", None))
    flops = 2 * matmul + 4 * layers * hidden * attended
    return Accounting(total, active, int(round(flops)), table, idle)


def sequence_length(data: Any) -> int:
    """The tokens of one sequence of the run's data (the context FLOPs are counted at): `data.block_size` for a
    language-model family (data=text), else `data.max_length`."""
    text = registry.attribute("family", str(data.family), "language_model", False)
    return int(data.block_size if text else data.max_length)


def _mean_attended(context: int, window: int | None) -> float:
    """Positions a token attends to, averaged over a block of `context` (itself and the ones before, at most
    `window`)."""
    w = context if not window else min(int(window), context)
    # positions 1..w attend to 1..w tokens, the remaining context - w attend to w each
    return (w * (w + 1) / 2 + (context - w) * w) / context


def _table_shape(table: nn.Module) -> tuple[int, int]:
    weight = getattr(table, "weight", None)
    if isinstance(weight, nn.Parameter) or hasattr(weight, "shape"):
        return int(weight.shape[0]), int(weight.shape[-1])
    return int(table.rows), int(table.dim)  # an offloaded table (engram/memory/offload.py)

