"""Put Engram memories into a Llama-family causal LM (also inside a peft PeftModel), save and load them alone.

Mechanism (no global state):
  - each chosen decoder layer gets its `EngramMemory` as submodule `engram` (`model.model.layers[l].engram`) and a
    forward pre-hook that adds the memory's output to the layer's input hidden state (a residual before attention).
    The base model's parameter names do not change, so base checkpoints and LoRA adapters still load.
  - a forward pre-hook on the causal LM records the token ids (and pops the `engram_prompt_lengths` kwarg) in the
    model's `EngramContext` before any layer runs; `model.generate` is wrapped so cached decoding keeps the history
    (engram/models/generation.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers.cache_utils import Cache

from engram.atomic import atomic_write
from engram.config import ConfigError, EngramConfig, validate_engram, validate_layers
from engram.memory.budget import check_memory_budget
from engram.memory.hashing import NgramHasher, PocHasher, SpanHasher, build_token_map
from engram.memory.memory import EngramMemory
from engram.models.generation import EngramContext

FILE_FORMAT = "engram-lab/1"
# Config keys that change hashes, shapes or the forward; the rest (init, lr, sparse) only matter for training.
STRUCTURAL_KEYS = ("hash", "table_size", "heads", "max_ngram", "dim", "gate", "seed", "compress_vocab", "conv_kernel")


class EngramLoadError(ValueError):
    """An engram file does not fit the model it is loaded into; the message names the key."""


@dataclass
class _Injection:
    cfg: EngramConfig
    layers: list[int]
    context: EngramContext
    hooks: list[Any]
    pad_id: int
    token_map: str  # digest of the vocabulary compression map ("none" without one)


# ---------------------------------------------------------------- public API


def add_engram(model: nn.Module, cfg: Any, tokenizer: Any = None) -> nn.Module:
    """Add memories at `cfg.layers` of `model` (LlamaForCausalLM or a PeftModel around one). Freezes nothing.

    `tokenizer` enables vocabulary compression for hash=deepseek/span (`cfg.compress_vocab`) and gives the pad id.
    """
    ecfg = as_engram_config(cfg)
    validate_engram(ecfg)
    lm = causal_lm(model)
    if "_engram" in lm.__dict__:
        raise RuntimeError("engram: the model already has Engram memories; call remove_engram(model) first")
    decoder_layers = lm.model.layers
    layers = validate_layers(ecfg.layers, len(decoder_layers))
    ref = next(lm.parameters())
    # refuse a table that would not fit (with its optimizer state) before building primes or allocating rows
    check_memory_budget(ecfg, len(layers), int(lm.config.hidden_size),
                        ref.element_size() if ref.dtype.is_floating_point else 4)
    pad_id = _pad_id(lm, tokenizer)
    token_map = None
    if tokenizer is not None and ecfg.compress_vocab and ecfg.hash != "poc":
        token_map = build_token_map(tokenizer, vocab_size=lm.config.vocab_size)
    hasher = make_hasher(ecfg, layers, int(lm.config.vocab_size), pad_id, token_map)
    context = EngramContext(pad_id)
    dtype = ref.dtype if ref.dtype.is_floating_point else None
    hooks = []
    for layer in layers:
        with torch.random.fork_rng(devices=[]):  # the same cfg.seed gives the same memory, whatever ran before
            torch.manual_seed(int(ecfg.seed) * 1000 + layer)
            memory = EngramMemory(ecfg, layer, int(lm.config.hidden_size), hasher)
        decoder_layers[layer].add_module("engram", memory.to(device=ref.device, dtype=dtype))
        hooks.append(decoder_layers[layer].register_forward_pre_hook(_layer_hook(memory, context), with_kwargs=True))
    hooks.append(lm.register_forward_pre_hook(_model_hook(context), with_kwargs=True))
    context.wrap_generate(lm)
    digest = "none" if token_map is None else hashlib.sha256(token_map.numpy().tobytes()).hexdigest()[:16]
    lm.__dict__["_engram"] = _Injection(ecfg, layers, context, hooks, pad_id, digest)
    return model


def remove_engram(model: nn.Module) -> nn.Module:
    """Undo `add_engram`: hooks, memories and the generate wrapper go; the base model is as before."""
    lm, inj = _find_injection(model)
    for handle in inj.hooks:
        handle.remove()
    for layer in inj.layers:
        delattr(lm.model.layers[layer], "engram")
    EngramContext.unwrap_generate(lm)
    del lm.__dict__["_engram"]
    return model


def engram_memories(model: nn.Module) -> dict[int, EngramMemory]:
    """{layer index: EngramMemory} found anywhere inside `model` (works through peft / Lightning wrappers)."""
    return {m.layer: m for m in model.modules() if isinstance(m, EngramMemory)}


def engram_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for memory in engram_memories(model).values() for p in memory.parameters()]


def engram_param_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """{"tables": the nn.Embedding weights, "dense": every other engram parameter} (optimiser param groups)."""
    tables, dense = [], []
    for memory in engram_memories(model).values():
        tables.append(memory.table.weight)
        dense += [p for name, p in memory.named_parameters() if not name.startswith("table.")]
    return {"tables": tables, "dense": dense}


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
    from safetensors.torch import save_file

    _, inj = _find_injection(model)
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path / "engram.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in engram_state_dict(model).items()}
    metadata = {
        "format": FILE_FORMAT,
        "engram_config": json.dumps(asdict(inj.cfg)),
        "layers": json.dumps(inj.layers),
        "pad_id": str(inj.pad_id),
        "token_map": inj.token_map,
    }
    # temp file + rename: a kill or a full disk mid-save leaves the previous file whole
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def read_engram_config(path: str | Path) -> EngramConfig:
    """The engram config stored in a file written by `save_engram` (to rebuild the model before loading)."""
    return as_engram_config(json.loads(_read_metadata(_file(path))["engram_config"]))


def load_engram(model: nn.Module, path: str | Path) -> nn.Module:
    """Load tensors saved by `save_engram` into a model prepared with `add_engram` and the same config.
    Refuses (EngramLoadError naming the key) a different config, tokenizer mapping, missing keys or shapes."""
    from safetensors.torch import load_file

    _, inj = _find_injection(model)
    path = _file(path)
    meta = _read_metadata(path)
    saved = json.loads(meta["engram_config"])
    here = asdict(inj.cfg)
    keys = STRUCTURAL_KEYS + (("gate_bias",) if inj.cfg.gate == "context" else ())  # a constant in that gate
    for key in keys:
        if _norm(saved.get(key)) != _norm(here[key]):
            raise EngramLoadError(f"engram file {path}: engram.{key}={saved.get(key)} in the file but "
                                  f"engram.{key}={here[key]} in the model")
    for key, mine in (("layers", json.dumps(inj.layers)), ("pad_id", str(inj.pad_id)), ("token_map", inj.token_map)):
        if meta.get(key) != mine:
            hint = " (add_engram needs the same tokenizer as when saving)" if key in ("pad_id", "token_map") else ""
            raise EngramLoadError(
                f"engram file {path}: {key}={meta.get(key)} in the file but {mine} in the model{hint}"
            )
    tensors = load_file(str(path))  # safetensors: plain tensors, never unpickles
    target = engram_state_dict(model)
    for key in sorted(set(target) | set(tensors)):
        if key not in tensors:
            raise EngramLoadError(f"engram file {path}: tensor {key} is missing")
        if key not in target:
            raise EngramLoadError(f"engram file {path}: unexpected tensor {key}")
        if tensors[key].shape != target[key].shape:
            raise EngramLoadError(f"engram file {path}: tensor {key} has shape {tuple(tensors[key].shape)}, "
                                  f"the model expects {tuple(target[key].shape)}")
    with torch.no_grad():
        for key, t in target.items():
            t.copy_(tensors[key])
    return model


# ---------------------------------------------------------------- helpers


def as_engram_config(cfg: Any) -> EngramConfig:
    """EngramConfig from an EngramConfig, DictConfig or dict (unknown keys are an error naming the key)."""
    if isinstance(cfg, EngramConfig):
        return cfg
    from omegaconf import DictConfig, OmegaConf

    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    known = {f.name for f in fields(EngramConfig)}
    for key, value in plain.items():
        if key not in known:
            raise ConfigError(f"engram.{key}", value, "is not an engram config key")
    return EngramConfig(**plain)


def causal_lm(model: nn.Module) -> nn.Module:
    """The Llama-family causal LM inside `model` (a peft PeftModel is unwrapped)."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not (hasattr(lm, "model") and isinstance(getattr(lm.model, "layers", None), nn.ModuleList)):
        raise TypeError(f"engram: {type(lm).__name__} has no model.layers; only Llama-family causal LMs are supported")
    return lm


def make_hasher(cfg: EngramConfig, layers: list[int], vocab_size: int, pad_id: int, token_map: Any = None) -> Any:
    if cfg.hash == "poc":
        return PocHasher(int(_first(cfg.table_size)), cfg.heads)
    if cfg.hash == "span":
        return SpanHasher(cfg.table_size, cfg.heads, layers, cfg.seed, token_map)
    return NgramHasher(vocab_size, cfg.table_size, cfg.max_ngram, cfg.heads, layers, pad_id, cfg.seed, token_map)


def _model_hook(context: EngramContext) -> Any:
    def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        prompt_lengths = kwargs.pop("engram_prompt_lengths", None)
        ids = _arg(args, kwargs, "input_ids", 0)
        if ids is None:
            raise ValueError("engram: the model was called without input_ids; the memories hash token ids, so "
                             "inputs_embeds alone cannot be used")
        mask = _arg(args, kwargs, "attention_mask", 1)
        mask = mask if isinstance(mask, torch.Tensor) and mask.dim() == 2 else None
        context.begin_forward(ids, mask, past_length(args, kwargs, ids, mask), prompt_lengths)
        return args, kwargs

    return hook


def _layer_hook(memory: EngramMemory, context: EngramContext) -> Any:
    def hook(layer: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        h = args[0] if args else kwargs["hidden_states"]
        if context.ids is None or h.shape[:2] != (context.ids.shape[0], context.new):
            raise RuntimeError("engram: a decoder layer ran without the model's own forward, so no token ids were "
                               "recorded for it; call the causal LM (or its PeftModel), not its inner layers")
        h = h + memory(h, context.ids, context.mask, context.prompt_lengths, context.cache(memory.layer))
        if args:
            return (h, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": h}

    return hook


def past_length(args: tuple, kwargs: dict, input_ids: torch.Tensor, mask: torch.Tensor | None) -> int:
    """How many positions a forward continues, found without trusting one keyword's name (transformers 5.x renamed
    `past_key_values` to `cache`): the KV cache object wherever it arrives, else `cache_position`, else a 2-D
    attention mask longer than the new ids (generate passes the mask of past + new positions)."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, Cache):
            return int(value.get_seq_length())
    cache_position = kwargs.get("cache_position")
    if isinstance(cache_position, torch.Tensor) and cache_position.numel():
        return int(cache_position.reshape(-1)[0])
    if mask is not None and mask.shape[1] > input_ids.shape[1]:
        return int(mask.shape[1] - input_ids.shape[1])
    return 0


def _arg(args: tuple, kwargs: dict, name: str, position: int) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[position] if len(args) > position else None


def _pad_id(lm: nn.Module, tokenizer: Any) -> int:
    for candidate in (
        getattr(tokenizer, "pad_token_id", None),
        getattr(lm.config, "pad_token_id", None),
        getattr(getattr(lm, "generation_config", None), "pad_token_id", None),
        getattr(lm.config, "eos_token_id", None),
    ):
        if isinstance(candidate, list):
            candidate = candidate[0] if candidate else None
        if candidate is not None:
            return int(candidate)
    return 0


def _find_injection(model: nn.Module) -> tuple[nn.Module, _Injection]:
    for m in model.modules():
        if "_engram" in m.__dict__:
            return m, m.__dict__["_engram"]
    raise RuntimeError("engram: the model has no Engram memories (call add_engram first)")


def _first(x: Any) -> Any:
    return x[0] if isinstance(x, list | tuple) else x


def _norm(x: Any) -> Any:
    return list(x) if isinstance(x, tuple) else x


def _file(path: str | Path) -> Path:
    p = Path(path)
    return p / "engram.safetensors" if p.is_dir() else p


def _read_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    if not path.is_file():
        raise FileNotFoundError(f"engram file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:  # reads the JSON header only; nothing is unpickled
            meta = f.metadata() or {}
    except Exception as e:
        raise EngramLoadError(f"engram file {path} is not a safetensors file ({e})") from None
    if meta.get("format") != FILE_FORMAT or "engram_config" not in meta:
        raise EngramLoadError(f"engram file {path}: not written by save_engram (format={meta.get('format')})")
    return meta
