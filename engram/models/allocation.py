"""`model.memory_share` (rho): the allocation study of arXiv 2601.07372 as one key. At the total parameters of
`model.experts` experts (of which `model.experts_per_token` are active per token), move the share rho of the idle
experts' parameters into the memory's table rows:

    kept experts = experts - round(rho * (experts - experts_per_token))
    engram.table_size = the most rows per head whose model is not larger than the `model.experts` MoE alone

The active parameters per token stay those of `experts_per_token` experts (plus what the memory reads and
multiplies). Counted with engram/models/accounting.py on models built on torch's meta device (no weights allocated),
so it is exact for any memory shape, gate or n-gram order. The pipeline calls `allocate` before it builds the model;
the run's .hydra/config.yaml keeps the request, eval.json the accounting of what was built (its `params/table` and
`params/idle_experts` give the rho reached).
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

_SPECIAL_IDS = {"bos_token_id": 1, "eos_token_id": 1, "pad_token_id": 0}
_VOCAB = 2  # the embedding is the same in every arm, so its size does not change the rows


def kept_experts(experts: int, per_token: int, share: float) -> int:
    """Experts left when the share `share` of the idle ones (`experts - per_token`) goes to the memory."""
    return experts - round(share * (experts - per_token))


def total_parameters(model_cfg: dict[str, Any], engram_cfg: Any | None) -> int:
    """accounting's total of a scratch model of `model_cfg`'s shape, with a memory of `engram_cfg` when given."""
    import torch  # lazy: validation imports kept_experts (engram/models/sources/scratch.py) before any torch

    from engram.models.accounting import account
    from engram.models.inject import add_engram
    from engram.models.scratch import build_scratch_model

    with torch.device("meta"):
        model = build_scratch_model(model_cfg, _VOCAB, _SPECIAL_IDS)
        if engram_cfg is not None:
            model = add_engram(model, engram_cfg)
    return account(model, 1).total


def rows_within(budget: int, model_cfg: dict[str, Any], engram_cfg: DictConfig) -> int:
    """The most rows per head whose model (`model_cfg` + the memory) has at most `budget` parameters; 0 if even
    one row per head is too many."""

    def total(rows: int) -> int:
        sized = OmegaConf.merge(engram_cfg, {"table_size": rows, "compress_vocab": False})
        return total_parameters(model_cfg, sized)

    low, smallest = 1, total(1)
    if smallest > budget:
        return 0
    per_row = max(1, total(low + 1000) - smallest) / 1000
    high = low + int((budget - smallest) / per_row) + 1000  # above the answer: the total grows with the rows
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if total(mid) <= budget else (low, mid - 1)
    return low


def allocate(cfg: DictConfig) -> DictConfig:
    """With `model.memory_share` set, the same config with `model.experts` and `engram.table_size` derived from it
    (and the share cleared, so a second call changes nothing); otherwise `cfg` unchanged. In place."""
    share = cfg.model.get("memory_share")
    if share is None:
        return cfg
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    experts, per_token = int(model_cfg["experts"]), int(model_cfg["experts_per_token"])
    kept = kept_experts(experts, per_token, float(share))
    budget = total_parameters(model_cfg, None)
    rows = rows_within(budget, {**model_cfg, "experts": kept}, cfg.engram) if share > 0 else 0
    if share > 0 and rows == 0:
        raise ValueError(f"engram: model.memory_share={share} frees {experts - kept} experts' parameters, fewer "
                         "than the memory's projections need; raise it or shrink engram.dim")
    with open_dict(cfg):
        cfg.model.experts, cfg.model.memory_share = kept, None
        if share > 0:  # 0 is the MoE alone, which validation allows only without a memory
            cfg.engram.table_size = rows
    log.info("model.memory_share=%s: %d of %d experts kept (%d active per token), engram.table_size=%d rows per "
             "head: the total parameters of the %d experts alone", share, kept, experts, per_token, rows, experts)
    return cfg
