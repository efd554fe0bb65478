"""The functional API on top of `EngramModel` (engram/models/engram_model.py): add / remove memories, their
parameters and optimiser groups, and saving / loading the memories alone (engram/models/engram_file.py).

    model = add_engram(lm_or_peft_model, cfg, tokenizer)  # -> EngramModel
    save_engram(model, run_dir); load_engram(model, run_dir)
    base = remove_engram(model)                           # the model passed to add_engram, as it was

The functions taking `model` accept the EngramModel or anything holding one (e.g. a LightningModule).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engram.memory.memory import EngramMemory
from engram.memory.offload import HostTable
from engram.memory.trace import Traces
from engram.models.engram_file import (  # noqa: F401 - re-exported: the names callers import from here
    FILE_FORMAT,
    STRUCTURAL_KEYS,
    EngramLoadError,
    as_engram_config,
    read_engram_config,
)
from engram.models.engram_model import EngramModel, causal_lm, past_length  # noqa: F401


def add_engram(model: nn.Module, cfg: Any, tokenizer: Any = None) -> EngramModel:
    """`model` (LlamaForCausalLM or a PeftModel around one) wrapped with memories at `cfg.layers`. Freezes nothing.

    `tokenizer` enables vocabulary compression for hash=deepseek/span (`cfg.compress_vocab`) and gives the pad id.
    A model that already is or holds an EngramModel (or is wrapped by one) is refused.
    """
    return EngramModel(model, cfg, tokenizer)


def remove_engram(model: nn.Module) -> nn.Module:
    """Undo `add_engram`: the hooks go and the model that was wrapped comes back, as it was."""
    return find_engram_model(model).remove()


def find_engram_model(model: nn.Module) -> EngramModel:
    """The EngramModel that `model` is or holds."""
    for m in model.modules():
        if isinstance(m, EngramModel):
            return m
    raise RuntimeError("engram: the model has no Engram memories (call add_engram first and use the model it returns)")


def memory_tracing(model: nn.Module, live: bool = False) -> contextlib.AbstractContextManager[Traces]:
    """`EngramModel.tracing(live)` of the EngramModel inside `model`; for a model without memories (baseline, LoRA),
    a record that stays empty."""
    for m in model.modules():
        if isinstance(m, EngramModel):
            return m.tracing(live)
    return contextlib.nullcontext({})


def engram_memories(model: nn.Module) -> dict[int, EngramMemory]:
    """{layer index: EngramMemory} found anywhere inside `model` (works through Lightning and other wrappers)."""
    return {m.layer: m for m in model.modules() if isinstance(m, EngramMemory)}


def engram_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter of the memories inside `model` (tables, gates, projections)."""
    return [p for memory in engram_memories(model).values() for p in memory.parameters()]


def engram_param_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """{"tables": the nn.Embedding weights, "dense": every other engram parameter} (optimiser param groups)."""
    tables, dense = [], []
    for memory in engram_memories(model).values():
        if isinstance(memory.table.weight, nn.Parameter):  # offloaded tables step with HostSparseAdam instead
            tables.append(memory.table.weight)
        dense += [p for name, p in memory.named_parameters() if not name.startswith("table.")]
    return {"tables": tables, "dense": dense}


def host_tables(model: nn.Module) -> list[HostTable]:
    """The offloaded tables (engram.offload.to=host) inside `model`; they train with HostSparseAdam."""
    return [m.table for m in engram_memories(model).values() if isinstance(m.table, HostTable)]


def engram_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Engram tensors only, keyed `layers.{l}.{name}` (independent of peft / Lightning wrapping)."""
    return {
        f"layers.{layer}.{name}": t
        for layer, memory in sorted(engram_memories(model).items())
        for name, t in memory.state_dict().items()
    }


def save_engram(model: nn.Module, path: str | Path) -> Path:
    """Write the engram tensors to safetensors, with the engram config as metadata. A directory (any path not
    ending in .safetensors) gets `engram.safetensors` inside. Returns the file written."""
    return find_engram_model(model).save_engram(path)


def load_engram(model: nn.Module, path: str | Path) -> nn.Module:
    """Load tensors saved by `save_engram` into a model prepared with `add_engram` and the same config.
    Refuses (EngramLoadError naming the key) a different config, tokenizer mapping, missing keys or shapes."""
    find_engram_model(model).load_engram(path)
    return model
