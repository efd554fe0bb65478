"""GatedLoRAModel: a peft LoRA model whose adapter is switched in per token by a learned gate.

    g      = sigmoid(MLP(h_base))                     one value in [0, 1] per position
    logits = base_logits + g · (lora_logits − base_logits)   (= g·lora + (1 − g)·base)

Choices, and why:
  - **The base's last hidden state feeds the gate** (after the final norm, what the LM head reads). The gate is
    then a probe of the frozen model's features: "does this context look like something the adapter was trained
    on", with an input that does not move while the adapter trains, and the base forward runs anyway.
  - **Logits are mixed, not probabilities.** Mixing logits is a geometric mixture of the two distributions
    (p ∝ p_lora^g · p_base^(1−g)); the output stays logits, so the loss, greedy decoding and the teacher-forced
    metrics use it unchanged, and written as base + g·(lora − base) a LoRA that changes nothing (lora_B = 0 at
    init) gives the base logits bit for bit, whatever the gate.
  - **Two forwards of one model**: the base logits come from the same PeftModel inside peft's
    `disable_adapter()` context (no second copy of the weights). The base forward runs without autograd (nothing
    in it trains), so a training step costs one extra forward: 1.42x a LoRA step on SmolLM2. Greedy decoding runs
    both forwards at every token (engram/models/mixed_generation.py): 2.02x (benchmarks/bench_gated_lora.py).
  - **The gate starts mostly closed** (output bias `gate_init_bias`, default −4: g ≈ 0.018), so a freshly added
    gated LoRA changes little even once the adapter has moved.

The wrapper owns the gate (`gate.*` parameters); each forward's output carries its gate (`lora_gate`, [B, T] at
every position, detached) for the training logs and the evaluation's gate statistics, as it carries the base's
logits: nothing of a forward is kept on the wrapper. Saved as the peft adapter
(`lora_adapter/`) plus `lora_gate.safetensors` (gate weights, its sizes as metadata) in the run dir.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import safe_open
from torch import nn

from engram.atomic import atomic_write, atomic_write_dir
from engram.models.engram_model import ADAPTER_DIR, causal_lm
from engram.models.headers import GATE_FILE
from engram.models.mixed_generation import greedy_mixed
from engram.models.wrapper import ModelWrapper


class LoRAGate(nn.Module):
    """sigmoid(W2·silu(W1·h + b1) + b2): one gate value per position. Small: hidden_size·width + 2·width + 1."""

    def __init__(self, hidden_size: int, width: int, init_bias: float) -> None:
        super().__init__()
        self.inner = nn.Linear(hidden_size, width)
        self.outer = nn.Linear(width, 1)
        with torch.no_grad():  # start closed: a small output weight, so the bias decides at first
            self.outer.weight.mul_(0.1)
            self.outer.bias.fill_(float(init_bias))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.outer(nn.functional.silu(self.inner(hidden)))).squeeze(-1)


class GatedLoRAModel(ModelWrapper):
    """`model` (a peft PeftModel with one LoRA adapter) mixed with its own base per token by a trained gate."""

    def __init__(self, model: nn.Module, width: int = 64, init_bias: float = -4.0, seed: int = 0) -> None:
        super().__init__()
        if not hasattr(model, "disable_adapter"):
            raise TypeError(f"gated LoRA: {type(model).__name__} is not a peft model (apply LoRA first)")
        lm = causal_lm(model)
        ref = next(lm.parameters())
        with torch.random.fork_rng(devices=[]):  # the same seed gives the same gate, whatever ran before
            torch.manual_seed(int(seed))
            gate = LoRAGate(int(lm.config.hidden_size), int(width), float(init_bias))
        self.base_model = model
        self.gate = gate.to(device=ref.device, dtype=ref.dtype)
        self.gate_sizes = {"hidden_size": int(lm.config.hidden_size), "width": int(width)}

    # ------------------------------------------------------------ calling the model
    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                logits_to_keep: int | torch.Tensor = 0, **kwargs: Any) -> Any:
        """The LoRA model's output with its logits mixed with the base's by the gate, the base's logits as
        `base_logits` and the gate at every position as `lora_gate` ([B, T], detached); other keywords pass through
        to both forwards; `labels` is refused: the loss of the mixture is the caller's."""
        if "labels" in kwargs:
            raise ValueError("gated LoRA: compute the loss from the returned logits (labels would score LoRA alone)")
        out, logits, _ = self.mixed(input_ids=input_ids, attention_mask=attention_mask,
                                    logits_to_keep=logits_to_keep, **kwargs)
        out.logits = logits
        return out

    def mixed(self, **inputs: Any) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """(LoRA output, mixed logits, gate at the kept positions) of one call."""
        keep = inputs.pop("logits_to_keep", 0)
        base_inputs = dict(inputs)
        lora_cache, base_cache = _split_caches(inputs, base_inputs)
        with torch.no_grad(), self.base_model.disable_adapter():  # nothing in the base trains: no activations kept
            base = self.base_model(**base_inputs, **base_cache, logits_to_keep=keep, output_hidden_states=True)
        lora = self.base_model(**inputs, **lora_cache, logits_to_keep=keep)
        gate_all = self.gate(base.hidden_states[-1])  # [B, T]: every position (cheap), for the statistics
        gate = _kept(gate_all, keep, lora.logits.shape[1]).unsqueeze(-1).to(lora.logits.dtype)
        base_logits = base.logits.to(lora.logits.dtype)
        lora.base_output = base  # its cache, for the decoding loop
        lora.base_logits = base_logits  # for the replay KL (engram/training/replay.py)
        lora.lora_gate = gate_all.detach()  # for the gate statistics (training logs, evaluation)
        return lora, base_logits + gate * (lora.logits - base_logits), gate.squeeze(-1)

    def generate(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                 **kwargs: Any) -> torch.Tensor:
        """Greedy decoding of the mixture (prompt + new ids, as HF's generate returns them); sampling and beams are
        refused. Each step runs the LoRA and the base forward, each with its own KV cache."""
        input_ids = kwargs.pop("inputs", None) if input_ids is None else input_ids
        if input_ids is None:
            raise ValueError("gated LoRA: generate() needs input_ids")
        return greedy_mixed(self, causal_lm(self.base_model), input_ids, attention_mask, **kwargs)

    # ------------------------------------------------------------ the parts
    def get_base_model(self) -> nn.Module:
        """The wrapped peft model (its adapter on; `disable_adapter()` gives the base)."""
        return self.base_model

    # ------------------------------------------------------------ saving and loading
    def save_pretrained(self, save_directory: str | Path) -> dict[str, Path]:
        """`lora_adapter/` (peft) and `lora_gate.safetensors`, each written under a temp name and renamed into place."""
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.gate.state_dict().items()}
        metadata = {"gate_sizes": json.dumps(self.gate_sizes)}
        gate_path = atomic_write(directory / GATE_FILE,
                                 lambda tmp: safetensors.torch.save_file(tensors, str(tmp), metadata=metadata))
        adapter = atomic_write_dir(directory / ADAPTER_DIR, lambda tmp: self.base_model.save_pretrained(str(tmp)))
        return {"lora": adapter, "lora_gate": gate_path}

    @classmethod
    def from_pretrained(cls, directory: str | Path, model: nn.Module) -> GatedLoRAModel:
        """The adapter and gate of a run dir onto `model` (the fresh base), in eval mode with nothing trainable."""
        from peft import PeftModel  # lazy: peft costs ~2.5 s; only LoRA variants need it

        directory = Path(directory)
        sizes = read_gate_sizes(directory / GATE_FILE)
        peft_model = PeftModel.from_pretrained(model, str(directory / ADAPTER_DIR))
        wrapped = cls(peft_model, width=sizes["width"])
        state = safetensors.torch.load_file(str(directory / GATE_FILE))
        wrapped.gate.load_state_dict({k: v.to(wrapped.gate.inner.weight.dtype) for k, v in state.items()})
        wrapped.requires_grad_(False)
        wrapped.eval()
        return wrapped


def read_gate_sizes(path: Path) -> dict[str, int]:
    """The gate's sizes from a lora_gate.safetensors header (nothing unpickled; ValueError if it is not one)."""
    with safe_open(str(path), framework="pt") as f:
        raw = (f.metadata() or {}).get("gate_sizes")
    if not raw:
        raise ValueError(f"gated LoRA: {path} has no gate_sizes metadata (not a lora_gate.safetensors)")
    sizes = json.loads(raw)
    return {"hidden_size": int(sizes["hidden_size"]), "width": int(sizes["width"])}


def _kept(values: torch.Tensor, keep: int | torch.Tensor, length: int) -> torch.Tensor:
    """`values` [B, T] at the positions HF's `logits_to_keep` keeps (an int: the last ones, 0 = all; a tensor:
    those indices)."""
    if isinstance(keep, torch.Tensor):
        return values[:, keep.to(values.device)]
    return values[:, -length:] if keep else values


def _split_caches(inputs: dict[str, Any], base_inputs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The decoding loop passes `caches=(lora cache, base cache)` and `cache_keyword`; each forward gets its own."""
    caches = inputs.pop("caches", None)
    keyword = inputs.pop("cache_keyword", None)
    base_inputs.pop("caches", None)
    base_inputs.pop("cache_keyword", None)
    if caches is None:
        return {}, {}
    return {keyword: caches[0]}, {keyword: caches[1]}
