"""EngramModel: a Llama-family causal LM (or a peft PeftModel around one) with Engram memories, peft-style.

The wrapper owns everything the memories need; nothing is stored on, or replaced in, the wrapped model:
  - `memories`: nn.ModuleDict {"layer index": EngramMemory}, so the memories' parameters are named
    `memories.{l}.…` however the LM is wrapped (peft inside, Lightning outside);
  - `context`: the token-id history the memories hash (engram/models/generation.py);
  - the handles of two kinds of forward pre-hooks (PyTorch's public hook API), removed again by `remove()`:
      * one on the causal LM records the ids of every forward into `context` before any layer runs (on the inner
        model: HF's generate loop calls its forward at every step, never the wrapper's);
      * one per chosen decoder layer adds its memory's output to the layer's input (a residual before attention).
`forward` and `generate` take `prompt_lengths` (where each prompt ends; hash=span needs it) and hand it to the
context. The base model's own parameter names do not change, so base checkpoints and LoRA adapters still load.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn
from transformers.cache_utils import Cache

from engram import registry
from engram.atomic import atomic_write_dir
from engram.config import EngramConfig, build, validate_engram, validate_layers
from engram.config.renamed import load_saved
from engram.config.rules import from_scratch
from engram.data.formatting import PROMPT_FORMATS, format_prompt
from engram.memory.budget import check_memory_budget
from engram.memory.hashing import build_token_map
from engram.memory.memory import EngramMemory
from engram.memory.trace import Traces
from engram.models.engram_file import (
    EngramSpec,
    as_engram_config,
    engram_file,
    read_engram_config,
    read_engram_file,
    write_engram_file,
)
from engram.models.generation import EngramContext
from engram.models.loading import load_model
from engram.models.question_judge import judge_for
from engram.models.wrapper import ModelWrapper

ADAPTER_DIR = "lora_adapter"  # where save_pretrained puts a peft adapter, as the training pipeline does
ALREADY_INJECTED = "engram: the model already has Engram memories; call remove_engram(model) first"


class EngramModel(ModelWrapper):
    """`model` with Engram memories at `cfg.layers` (built here, seeded by `cfg.seed`). Freezes nothing."""

    def __init__(self, model: nn.Module, cfg: Any, tokenizer: Any = None) -> None:
        super().__init__()
        ecfg = as_engram_config(cfg)
        validate_engram(ecfg)
        # one set of memories per model: refuse a model that is or holds an EngramModel, or is wrapped by one
        if any(isinstance(m, EngramModel) for m in model.modules()):
            raise RuntimeError(ALREADY_INJECTED)
        lm = causal_lm(model)
        if _has_engram_hooks(lm):
            raise RuntimeError(ALREADY_INJECTED)
        layers = validate_layers(ecfg.layers, len(lm.model.layers))
        ref = next(lm.parameters())
        # refuse a table that would not fit (with its optimizer state) before building primes or allocating rows
        check_memory_budget(ecfg, len(layers), int(lm.config.hidden_size),
                            ref.element_size() if ref.dtype.is_floating_point else 4)
        pad_id = _pad_id(lm, tokenizer)
        hash_kind = registry.get("hash", ecfg.hash)
        token_map = None
        if tokenizer is not None and ecfg.compress_vocab and getattr(hash_kind, "uses_token_map", True):
            token_map = build_token_map(tokenizer, vocab_size=lm.config.vocab_size)
        hasher = build("hash", ecfg.hash, ecfg, layers=layers, vocab_size=int(lm.config.vocab_size), pad_id=pad_id,
                       token_map=token_map)
        if getattr(hasher, "reads_words", False):  # hash=question reads the prompt's words (a judge: the text)
            if tokenizer is None:
                raise ValueError(f"engram.hash={ecfg.hash} reads the prompt's words: add_engram needs the tokenizer")
            hasher.read_words_with(tokenizer, format_templates(tokenizer), judge_for(ecfg, lm, tokenizer))
        dtype = ref.dtype if ref.dtype.is_floating_point else None

        self.base_model = model
        self.memories = nn.ModuleDict()
        for layer in layers:
            with torch.random.fork_rng(devices=[]):  # the same cfg.seed gives the same memory, whatever ran before
                torch.manual_seed(int(ecfg.seed) * 1000 + layer)
                memory = EngramMemory(ecfg, layer, int(lm.config.hidden_size), hasher)
            self.memories[str(layer)] = memory.to(device=ref.device, dtype=dtype)
        digest = "none" if token_map is None else hashlib.sha256(token_map.numpy().tobytes()).hexdigest()[:16]
        self.spec = EngramSpec(ecfg, layers, pad_id, digest)
        self.context = EngramContext(pad_id)
        self._hooks = [
            _memory_site(lm, layer).register_forward_pre_hook(_AddMemory(self.memories[str(layer)], self.context),
                                                            with_kwargs=True)
            for layer in layers
        ]
        self._hooks.append(lm.register_forward_pre_hook(_RecordIds(self.context), with_kwargs=True))

    # ------------------------------------------------------------ calling the model
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        prompt_lengths: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        """The wrapped model's forward (labels, logits_to_keep, caches... pass through). `prompt_lengths` [B]:
        where each prompt ends (default: after the last real token, i.e. everything is prompt)."""
        self._check_attached()
        with self.context.call(prompt_lengths):
            return self.base_model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def generate(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        prompt_lengths: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """The wrapped model's generate, with a fresh id history that knows where the prompt ends (the ids passed
        in, or `prompt_lengths` per row). Beam search with use_cache=True is not supported (it reorders the cache)."""
        self._check_attached()
        input_ids = kwargs.pop("inputs", None) if input_ids is None else input_ids
        if input_ids is None:
            raise ValueError("engram: generate() needs input_ids (the memories hash token ids)")
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
        with self.context.generation(input_ids.shape[1], prompt_lengths):
            return self.base_model.generate(input_ids=input_ids, **kwargs)

    def prefetch(self, batch: Mapping[str, torch.Tensor]) -> None:
        """engram.offload.to=host: start gathering, on a worker thread, the table rows a training batch (input_ids,
        attention_mask, prompt_lengths) will look up, so its forward finds them ready (engram/memory/prefetch.py).
        The data loader calls this as it hands the batch out; a no-op for in-memory tables."""
        ids, prompt_lengths = batch["input_ids"], batch.get("prompt_lengths")
        if prompt_lengths is None:
            return
        mask = batch.get("attention_mask")
        mask = torch.ones_like(ids, dtype=torch.bool) if mask is None else mask.bool()
        ids = torch.where(mask, ids, torch.full_like(ids, self.context.pad_id))  # as the id hook records them
        for layer in self.spec.layers:
            self.memory(layer).prefetch(ids, mask, prompt_lengths)

    # ------------------------------------------------------------ the parts
    def get_base_model(self) -> nn.Module:
        """The wrapped model (the causal LM, or the PeftModel around it), with the memories' hooks on it."""
        return self.base_model

    @property
    def lm(self) -> nn.Module:
        """The causal LM whose decoder layers get the memories."""
        return causal_lm(self.base_model)

    @property
    def layers(self) -> list[int]:
        """The layers that have a memory, resolved against the model (`cfg.layers`; "final" = num_layers)."""
        return list(self.spec.layers)

    @property
    def engram_config(self) -> EngramConfig:
        """The memories' config, typed (what `save_engram` stores beside the tensors)."""
        return self.spec.cfg

    def memory(self, layer: int) -> EngramMemory:
        """The EngramMemory at `layer` (one of `layers`)."""
        return self.memories[str(int(layer))]  # type: ignore[return-value]

    def memories_off(self) -> contextlib.AbstractContextManager[None]:
        """`with model.memories_off():` the knock-out: the memories add nothing, the model computes as its base
        (LoRA, if any, stays on): do the facts live in the tables?"""
        return self.context.knocked_out()

    def tracing(self, live: bool = False) -> contextlib.AbstractContextManager[Traces]:
        """`with model.tracing() as traces:` {memory layer: MemoryTrace} of the latest forward inside; none is kept
        outside. `live`: the traces keep the memory entering with its graph (`MemoryTrace.live`, for a loss on it)."""
        return self.context.traces.record(live)

    def remove(self) -> nn.Module:
        """Take the hooks off and return the wrapped model as it was before; this wrapper is unusable after."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        self.context.reset()
        return self.base_model

    # ------------------------------------------------------------ saving and loading
    def engram_state_dict(self) -> dict[str, torch.Tensor]:
        """The memories' tensors keyed `layers.{l}.{name}` (the engram.safetensors keys)."""
        return {
            f"layers.{layer}.{name}": t
            for layer in sorted(self.spec.layers)
            for name, t in self.memory(layer).state_dict().items()
        }

    def save_engram(self, path: str | Path) -> Path:
        """The memories alone, to `path` (a .safetensors file, or a directory that gets engram.safetensors)."""
        return write_engram_file(path, self.engram_state_dict(), self.spec)

    def load_engram(self, path: str | Path) -> EngramModel:
        """Tensors saved by `save_engram` from a model of the same config and tokenizer (else EngramLoadError)."""
        target = self.engram_state_dict()
        tensors = read_engram_file(path, self.spec, target)
        with torch.no_grad():
            for key, t in target.items():
                t.copy_(tensors[key])
        return self

    def save_pretrained(self, save_directory: str | Path) -> dict[str, Path]:
        """engram.safetensors (+ lora_adapter/ for a PeftModel), each renamed into place; never the frozen base."""
        directory = Path(save_directory)
        written = {"engram": self.save_engram(directory)}
        if _is_peft(self.base_model):
            written["lora"] = atomic_write_dir(directory / ADAPTER_DIR,
                                               lambda tmp: self.base_model.save_pretrained(str(tmp)))
        return written

    @classmethod
    def from_pretrained(
        cls, path: str | Path, model: nn.Module | None = None, tokenizer: Any = None, *,
        adapter: bool | None = None, is_trainable: bool = False,
    ) -> EngramModel:
        """Base model + LoRA adapter + memory in one call.

        `path`: a training run dir (`.hydra/config.yaml`, `engram.safetensors`, `lora_adapter/` for
        variant=combined), a directory written by `save_pretrained`, or an engram.safetensors file.
        `model`, `tokenizer`: the base to put the weights on; None loads the base model the run dir's config names
        (`model:` in .hydra/config.yaml). `adapter`: put `lora_adapter/` on first (peft); None means "when `path`
        is a directory that has one and `model` is not a PeftModel already". The memory is rebuilt from the
        config stored in the file. `is_trainable=False` (as in peft): eval mode, nothing requires grad.
        """
        path = Path(path)
        directory = path if path.is_dir() else path.parent
        if model is None:
            model, tokenizer = load_model(run_model_config(directory))
        if adapter is None:
            adapter = path.is_dir() and (path / ADAPTER_DIR).is_dir() and not _is_peft(model)
        if adapter:
            from peft import PeftModel  # lazy: peft costs ~2.5 s beyond torch; only a LoRA adapter needs it

            model = PeftModel.from_pretrained(model, str(directory / ADAPTER_DIR), is_trainable=is_trainable)
        file = engram_file(path)
        wrapped = cls(model, read_engram_config(file), tokenizer).load_engram(file)
        if not is_trainable:
            wrapped.requires_grad_(False)
            wrapped.eval()
        return wrapped

    def _check_attached(self) -> None:
        if not self._hooks:
            raise RuntimeError("engram: this EngramModel was removed (remove_engram); use the model it returned")


def load_run(run_dir: str | Path, **kwargs: Any) -> tuple[EngramModel, Any]:
    """(EngramModel, tokenizer) of a training run dir: its base model, adapter and memory (see from_pretrained)."""
    model, tokenizer = load_model(run_model_config(Path(run_dir)))
    return EngramModel.from_pretrained(run_dir, model, tokenizer, **kwargs), tokenizer


BASE_WEIGHTS_DIR = "model"  # a run dir's trained base weights (variant.finetune=full, model=scratch)


def run_model_config(run_dir: Path) -> Any:
    """The `model:` section of a run dir's .hydra/config.yaml (what load_model needs to rebuild the base); for a
    model trained from scratch, pointed at the run's trained weights (`model/`) and given its data section."""
    cfg_file = run_dir / ".hydra" / "config.yaml"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"engram: {run_dir} has no .hydra/config.yaml naming its base model; "
                                "pass the base model (model=..., tokenizer=...)")
    cfg = load_saved(cfg_file)  # an older run's keys in their new spelling
    if "model" not in cfg:
        raise ValueError(f"engram: {cfg_file} has no model: section")
    if from_scratch(str(cfg.model.get("name"))):  # its vocabulary is the data's, its trained weights are the run's
        trained = run_dir / BASE_WEIGHTS_DIR
        if not (trained / "config.json").is_file():
            raise FileNotFoundError(f"engram: {run_dir} trained model={cfg.model.name} but has no "
                                    f"{BASE_WEIGHTS_DIR}/ with its weights")
        return OmegaConf.merge(cfg.model, {"path": str(trained), "data": cfg.get("data")})
    return cfg.model


# ---------------------------------------------------------------- hooks


class _RecordIds:
    """Forward pre-hook on the causal LM: every forward's ids go into the context before any layer runs."""

    def __init__(self, context: EngramContext) -> None:
        self.context = context

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        ids = _arg(args, kwargs, "input_ids", 0)
        if ids is None:
            raise ValueError("engram: the model was called without input_ids; the memories hash token ids, so "
                             "inputs_embeds alone cannot be used")
        mask = _arg(args, kwargs, "attention_mask", 1)
        mask = mask if isinstance(mask, torch.Tensor) and mask.dim() == 2 else None
        self.context.begin_forward(ids, mask, past_length(args, kwargs, ids, mask), self.context.call_prompt_lengths)


class _AddMemory:
    """Forward pre-hook on a decoder layer: hidden state + memory output (from the recorded ids)."""

    def __init__(self, memory: EngramMemory, context: EngramContext) -> None:
        self.memory, self.context = memory, context

    def __call__(self, layer: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        context = self.context
        if not context.memories_on:
            return args, kwargs
        h = args[0] if args else kwargs["hidden_states"]
        if context.ids is None or h.shape[:2] != (context.ids.shape[0], context.new):
            raise RuntimeError("engram: a decoder layer ran without the model's own forward, so no token ids were "
                               "recorded for it; call the causal LM (or its PeftModel), not its inner layers")
        out, trace = self.memory(h, context.ids, context.mask, context.prompt_lengths, context.cache(self.memory.layer))
        context.traces.add(self.memory.layer, trace)
        h = h + out
        if args:
            return (h, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": h}


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


# ---------------------------------------------------------------- helpers


def causal_lm(model: nn.Module) -> nn.Module:
    """The Llama-family causal LM inside `model` (EngramModel and peft PeftModel wrappers are unwrapped)."""
    lm = model
    while hasattr(lm, "get_base_model") and lm.get_base_model() is not lm:
        lm = lm.get_base_model()
    if not (hasattr(lm, "model") and isinstance(getattr(lm.model, "layers", None), nn.ModuleList)):
        raise TypeError(f"engram: {type(lm).__name__} has no model.layers; only Llama-family causal LMs are supported")
    return lm


def _memory_site(lm: nn.Module, layer: int) -> nn.Module:
    """The module whose input gets memory `layer`: decoder layer `layer`, or the final norm for layer ==
    num_layers ("final": after the last decoder layer, so only the norm and the LM head read the memory)."""
    decoder_layers = lm.model.layers
    return decoder_layers[layer] if layer < len(decoder_layers) else lm.model.norm


def _has_engram_hooks(lm: nn.Module) -> bool:
    # an EngramModel may wrap this LM from outside (it is not among lm.modules()); its id hook is on the LM
    return any(isinstance(hook, _RecordIds) for hook in lm._forward_pre_hooks.values())


def _is_peft(model: nn.Module) -> bool:
    peft = sys.modules.get("peft")  # not imported: nothing can be a PeftModel (and importing it costs a second)
    return peft is not None and isinstance(model, peft.PeftModel)


def _arg(args: tuple, kwargs: dict, name: str, position: int) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[position] if len(args) > position else None


def format_templates(tokenizer: Any) -> list[str]:
    """The text every prompt format puts around an empty question (chat only with a chat template)."""
    texts = []
    for prompt_format in PROMPT_FORMATS:
        try:
            texts.append(format_prompt(tokenizer, "", prompt_format))
        except ValueError:  # no chat template
            continue
    return texts


def _pad_id(lm: nn.Module, tokenizer: Any) -> int:
    for candidate in (
        getattr(tokenizer, "pad_token_id", None),
        getattr(lm.config, "pad_token_id", None),
        getattr(getattr(lm, "generation_config", None), "pad_token_id", None),
        getattr(lm.config, "eos_token_id", None),
    ):
        candidate = (candidate[0] if candidate else None) if isinstance(candidate, list) else candidate
        if candidate is not None:
            return int(candidate)
    return 0

