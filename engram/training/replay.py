"""Retention-aware training: replay batches scored against the frozen base model, and the gate-sparsity penalty.

- `ReplaySource`: every training step draws `per_step` generated general prompts (engram/data/replay.py), chosen by
  (seed, step), so a resumed run draws the same ones. Only the prompts are fed (chat-formatted, as generation sees
  them); no answers are needed.
- `replay_kl`: KL(base || model) of the next-token distributions at every real position of those prompts, where
  "base" is the same model with the memories switched off (and LoRA adapters disabled): the memory is pushed to
  change nothing there. For variant=gated_lora the base is the one the gate mixes in: the gate is pushed to stay
  shut there (or the adapter to agree with the base).
- `gate_penalty`: the mean memory entering (gate x share of heads the address let through) at positions that are
  not answer positions (train.replay prompts included), for engram.gate_l1, read from the forward's memory traces
  recorded with their graph (`EngramModel.tracing(live=True)`).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engram.data.collate import pad
from engram.data.formatting import encode_prompts, pad_id
from engram.data.replay import replay_prompts
from engram.memory.trace import MemoryTrace
from engram.models.engram_model import EngramModel
from engram.models.gated_lora import GatedLoRAModel


class ReplaySource:
    def __init__(self, tokenizer: Any, count: int, per_step: int, seed: int, prompt_format: str) -> None:
        self.prompt_ids = encode_prompts(tokenizer, replay_prompts(count, seed), prompt_format)
        self.per_step, self.seed, self.pad_id = int(per_step), int(seed), pad_id(tokenizer)

    def batch(self, step: int, device: torch.device) -> dict[str, torch.Tensor]:
        picked = random.Random(f"{self.seed}:{step}").sample(self.prompt_ids, min(self.per_step, len(self.prompt_ids)))
        ids = pad(picked, self.pad_id)
        return {"input_ids": ids.to(device), "attention_mask": pad([[1] * len(p) for p in picked], 0).to(device),
                "prompt_lengths": torch.tensor([len(p) for p in picked], device=device)}


def replay_kl(model: EngramModel | GatedLoRAModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean KL(base || model) per real position of `batch` (the memories' or the gated adapter's contribution on
    general prompts)."""
    if isinstance(model, GatedLoRAModel):  # one call gives both: the mixture and the base it mixes in
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        base, now = F.log_softmax(out.base_logits.float(), -1), F.log_softmax(out.logits.float(), -1)
    else:
        with torch.no_grad(), model.memories_off(), _adapters_off(model.base_model):
            base = F.log_softmax(model(**batch).logits.float(), -1)
        now = F.log_softmax(model(**batch).logits.float(), -1)
    kl = F.kl_div(now, base, log_target=True, reduction="none").sum(-1)  # KL(base || now) per position
    mask = batch["attention_mask"].to(kl.dtype)
    return (kl * mask).sum() / mask.sum().clamp_min(1)


def gate_penalty(traces: Mapping[int, MemoryTrace], off_answer: torch.Tensor) -> torch.Tensor | None:
    """Mean memory entering at `off_answer` positions ([B, T] bool) of a training forward traced with `live=True`,
    over the memories whose gate trains (`MemoryTrace.live`); None when none does."""
    values = [t.live[off_answer[:, -t.live.shape[1]:]] for t in traces.values() if t.live is not None]
    if not values:
        return None
    return torch.cat([v.reshape(-1) for v in values]).float().mean()


def off_answer_positions(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """[B, T]: real positions before the one predicting the first answer token."""
    pos = torch.arange(batch["input_ids"].shape[1], device=batch["input_ids"].device)
    return batch["attention_mask"].bool() & (pos < batch["prompt_lengths"].unsqueeze(-1) - 1)


def _adapters_off(model: nn.Module) -> contextlib.AbstractContextManager:
    disable = getattr(model, "disable_adapter", None)  # a peft PeftModel: the frozen base without LoRA
    return disable() if callable(disable) else contextlib.nullcontext()
