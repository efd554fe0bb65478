"""model=scratch: a small decoder built from config and trained from scratch on a data family's own vocabulary.

The architecture is transformers' Mistral (a Llama-shaped decoder whose `sliding_window` config is applied by the
library's own mask builder, `create_sliding_window_causal_mask`, for eager and sdpa attention alike), or with
`model.experts` > 0 transformers' Mixtral: the same decoder whose MLP is a mixture of `model.experts` experts, each
token routed to `model.experts_per_token` of them by a learned router (the library's own MoE block and
load-balancing loss, weighted by `model.router_aux_loss`). With
`model.attention_window = W` every position attends to itself and the W - 1 positions before it, in every layer;
`null` is full causal attention. Nothing here patches the library; tests/test_scratch_model.py checks that a
token beyond the window cannot change the last position's logits and one inside it does.
"""

from __future__ import annotations

from typing import Any

from engram import registry

MAX_POSITIONS = 32_768  # RoPE positions; the scaling benchmark goes to 16k tokens
ATTENTION = "sdpa"  # eager gives the same logits (tested); sdpa is faster on CPU


def scratch_tokenizer(data_cfg: Any) -> Any:
    """The data family's own tokenizer (e.g. long_recall's one-token-per-word vocabulary)."""
    from omegaconf import OmegaConf  # a run dir's saved data section arrives as a plain dict (run_model_config)

    data_cfg = OmegaConf.create(data_cfg) if isinstance(data_cfg, dict) else data_cfg
    family = data_cfg["family"]
    build = registry.attribute("family", family, "tokenizer")
    if build is None:
        raise ValueError(f"data={family} has no tokenizer of its own; model=scratch needs one "
                         "(data=long_recall or data=text)")
    return build(data_cfg)


def build_scratch_model(cfg: dict[str, Any], vocab_size: int, special_ids: dict[str, int | None],
                        attention: str = ATTENTION) -> Any:
    """A randomly initialised MistralForCausalLM of `cfg`'s shape (model.hidden_size, num_layers, num_heads,
    intermediate_size, attention_window, seed), a MixtralForCausalLM with `model.experts` > 0 (each expert an MLP of
    intermediate_size); the same seed gives the same weights."""
    # lazy: torch ~1.9 s + transformers ~1.0 s; validation imports the source module
    import torch
    from transformers import MistralConfig, MistralForCausalLM, MixtralConfig, MixtralForCausalLM

    heads = int(cfg.get("num_heads", 4))
    window = cfg.get("attention_window")
    experts = int(cfg.get("experts") or 0)
    moe = {"num_local_experts": experts, "num_experts_per_tok": int(cfg.get("experts_per_token", 2)),
           "router_aux_loss_coef": float(cfg.get("router_aux_loss", 0.01))}
    config_class, model_class = (MixtralConfig, MixtralForCausalLM) if experts else (MistralConfig, MistralForCausalLM)
    config = config_class(
        vocab_size=vocab_size,
        hidden_size=int(cfg.get("hidden_size", 128)),
        intermediate_size=int(cfg.get("intermediate_size", 512)),
        num_hidden_layers=int(cfg.get("num_layers", 4)),
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=int(cfg.get("hidden_size", 128)) // heads,
        max_position_embeddings=MAX_POSITIONS,
        sliding_window=None if window is None else int(window),
        tie_word_embeddings=True,
        **(moe if experts else {}),
        **special_ids,
    )
    config._attn_implementation = attention
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg.get("seed", 0)))
        model = model_class(config)
    model.generation_config.pad_token_id = special_ids.get("pad_token_id")
    return model.eval()


def load_scratch_model(path: str) -> Any:
    """A trained scratch model saved by save_pretrained (a run dir's model/: Mistral or Mixtral), in eval mode."""
    from transformers import AutoModelForCausalLM  # lazy: see build_scratch_model

    return AutoModelForCausalLM.from_pretrained(path, attn_implementation=ATTENTION).eval()
