"""Greedy decoding of a model that mixes two forwards per token (GatedLoRAModel: LoRA and base), each forward with
its own KV cache. HF's generate drives one model with one cache, so the loop is written out here: greedy only, the
same output shape as HF's generate (prompt + new ids, finished rows padded, stops when every row has ended).

The cache keyword is read from the causal LM's forward signature and the returned cache is found by type, never by
one keyword's name: transformers 5.24 renamed `past_key_values` to `cache` once already (docs/reliability.md,
"Library updates").
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from transformers.cache_utils import Cache


def cache_keyword(lm: nn.Module) -> str:
    """The name under which `lm.forward` takes its KV cache (`cache` in transformers >= 5.24, `past_key_values`
    before)."""
    params = inspect.signature(lm.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def returned_cache(output: Any) -> Cache:
    """The KV cache inside a model output, whatever its field is called."""
    found = next((v for v in output.values() if isinstance(v, Cache)), None)
    if found is None:
        raise RuntimeError("gated LoRA: the model returned no KV cache (use_cache=True was ignored?)")
    return found


def _eos_ids(eos: Any) -> torch.Tensor:
    return torch.tensor([] if eos is None else [eos] if isinstance(eos, int) else list(eos), dtype=torch.long)


def greedy_mixed(model: Any, lm: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                 max_new_tokens: int = 20, use_cache: bool = True, pad_token_id: int | None = None,
                 eos_token_id: Any = None, do_sample: bool = False, num_beams: int | None = 1,
                 stopping_criteria: Iterable[Callable[..., torch.Tensor]] = (), **ignored: Any) -> torch.Tensor:
    """Greedy continuation of a left-padded batch by `model.mixed(...)` (see GatedLoRAModel.mixed). A row ends at
    eos or when one of `stopping_criteria` (HF's: (ids, scores) -> bool per row) says so. `ignored`: HF sampling
    knobs that mean nothing to greedy decoding (temperature=None, top_p=None, ...)."""
    if do_sample or (num_beams or 1) > 1:
        raise ValueError("gated LoRA: only greedy decoding is supported (do_sample=False, num_beams=1)")
    config = getattr(lm, "generation_config", None)
    eos = _eos_ids(eos_token_id if eos_token_id is not None else getattr(config, "eos_token_id", None))
    pad = pad_token_id if pad_token_id is not None else getattr(config, "pad_token_id", None)
    pad = int(pad if pad is not None else (eos[0] if len(eos) else 0))
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
    ids, keyword, caches = input_ids, cache_keyword(lm), None
    done = torch.zeros(len(ids), dtype=torch.bool, device=ids.device)
    with torch.no_grad():
        for _ in range(int(max_new_tokens)):
            positions = (mask.long().cumsum(-1) - 1).clamp(min=0)  # left padding: each row counts from its start
            inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "position_ids": positions,
                                      "use_cache": use_cache, "logits_to_keep": 1}
            if caches is not None:
                inputs.update(input_ids=ids[:, -1:], position_ids=positions[:, -1:], caches=caches,
                              cache_keyword=keyword)
            out, logits, _ = model.mixed(**inputs)
            if use_cache:
                caches = (returned_cache(out), returned_cache(out.base_output))
            token = torch.where(done, torch.full_like(done, pad, dtype=torch.long), logits[:, -1].argmax(-1))
            ids = torch.cat([ids, token[:, None]], dim=1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            done |= torch.isin(token, eos.to(token.device))
            for stop in stopping_criteria:
                done |= stop(ids, None).to(done.device)
            if bool(done.all()):
                break
    return ids
