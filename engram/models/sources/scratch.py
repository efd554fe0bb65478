"""model=scratch: a small Mistral-shaped decoder trained from scratch on the data family's own tokenizer
(engram/models/scratch.py), with `model.attention_window` as real sliding-window attention (null = full).

Every base weight trains in every variant (`from_scratch`): there is nothing pretrained to keep frozen, so a memory
trains together with the model it is attached to. `model.path` (set for a run dir's trained weights) loads them
instead of building a fresh model."""

from __future__ import annotations

from typing import Any

from engram.config.rules import check as rule
from engram.config.rules import check_decoder_shape, finite, is_int
from engram.models.allocation import kept_experts
from engram.models.scratch import build_scratch_model, load_scratch_model, scratch_tokenizer

MAX_EXPERTS = 256
from_scratch = True  # engram/training/variants.py trains every base weight; LoRA variants are refused


def check(m: Any) -> None:
    check_decoder_shape(m, "scratch")
    window = m.attention_window
    rule(window is None or (isinstance(window, int) and not isinstance(window, bool) and window >= 1),
         "model.attention_window", window, "must be null (full attention) or an integer >= 1")
    experts = m.experts
    rule(is_int(experts) and 0 <= experts <= MAX_EXPERTS, "model.experts", experts,
         f"must be an integer in [0, {MAX_EXPERTS}] (0: a dense MLP)")
    if experts:
        rule(is_int(m.experts_per_token) and 1 <= m.experts_per_token <= experts, "model.experts_per_token",
             m.experts_per_token, f"must be an integer in [1, model.experts={experts}]")
        rule(m.router_aux_loss >= 0, "model.router_aux_loss", m.router_aux_loss, "must be >= 0")
    share = m.memory_share
    if share is not None:
        rule(finite(share) and 0 <= share <= 1, "model.memory_share", share, "must be a number in [0, 1] or null")
        rule(experts > 0, "model.memory_share", share, "moves idle experts into the memory: set model.experts > 0")
        idle = experts - m.experts_per_token
        rule(share == 0 or kept_experts(experts, m.experts_per_token, share) < experts, "model.memory_share", share,
             f"moves no expert: {share} of the {idle} idle ones rounds to 0")


class Source:
    @staticmethod
    def shape(cfg: dict[str, Any]) -> tuple[int, int]:
        return int(cfg.get("num_layers", 4)), int(cfg.get("hidden_size", 128))

    @staticmethod
    def load(cfg: dict[str, Any]) -> tuple[Any, Any]:
        if not cfg.get("data"):
            raise ValueError("model=scratch builds its vocabulary from the data config: load_model(cfg.model, "
                             "data=cfg.data)")
        tokenizer = scratch_tokenizer(cfg["data"])
        if cfg.get("path"):  # trained weights (a run dir's model/, engram/models/engram_model.py run_model_config)
            return load_scratch_model(cfg["path"]), tokenizer
        ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
               "pad_token_id": tokenizer.pad_token_id}
        return build_scratch_model(cfg, len(tokenizer), ids), tokenizer
