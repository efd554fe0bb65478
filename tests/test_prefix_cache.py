"""Frozen-prefix activation cache (issue 19): the same loss, gradients and trained weights as the full forward, on
the tiny model; the cache point; refusal when a weight below it trains; the train.prefix_cache switch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _training_utils import tiny_cfg
from omegaconf import OmegaConf
from peft import LoraConfig, get_peft_model

from engram import EngramModel
from engram.config import EngramConfig
from engram.data.collate import teacher_forced_batch
from engram.data.families.exact_match import build_exact_match
from engram.data.formatting import encode_answers, encode_prompts, pad_id
from engram.models import load_model
from engram.training.module import EngramLitModule
from engram.training.pipeline import train
from engram.training.prefix_cache import PrefixCache, PrefixCacheError, build_prefix_cache, cache_depth

RECALL = dict(hash="answer", address="fingerprint", gate="direct", layers=["final"], dim=64, heads=4,
              table_size=5000, init="normal")


def tiny_batch(tok: object, n: int = 6) -> dict[str, torch.Tensor]:
    cfg = OmegaConf.create(dict(family="exact_match", num_train=n, num_eval=4, categories=None, seed=0,
                                prompt_format="chat", eval_seen_fraction=0.5))
    facts = build_exact_match(cfg)["train"][:n]
    prompts = encode_prompts(tok, [f["prompt"] for f in facts], "chat")
    answers = encode_answers(tok, [f["answer"] for f in facts], "chat")
    return teacher_forced_batch(prompts, answers, 256, pad_id(tok))


def lora_model(layers: list[int] | None, dropout: float = 0.0) -> tuple[torch.nn.Module, object]:
    model, tok = load_model("tiny")
    model.requires_grad_(False)
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, target_modules=["q_proj", "v_proj", "o_proj"],
                     layers_to_transform=layers, init_lora_weights=False)  # non-zero B: the adapter changes logits
    return get_peft_model(model, cfg), tok


def recall_model(lora_layers: list[int] | None = None) -> tuple[torch.nn.Module, object]:
    model, tok = lora_model(lora_layers) if lora_layers else load_model("tiny")
    if not lora_layers:
        model.requires_grad_(False)
    wrapped = EngramModel(model, OmegaConf.merge(OmegaConf.structured(EngramConfig), RECALL), tok)
    for p in wrapped.memories.parameters():
        p.requires_grad_(True)
    return wrapped, tok


def loss_and_grads(module: EngramLitModule, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    module.model.zero_grad(set_to_none=True)
    loss = module(batch)
    loss.backward()
    grads = {n: p.grad.to_dense().clone() for n, p in module.model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


@pytest.mark.numerics
@pytest.mark.parametrize("kind", ["lora_top", "recall_final", "combined"])
def test_cached_loss_and_gradients_equal_the_full_forward(kind: str) -> None:
    torch.manual_seed(0)
    if kind == "lora_top":
        model, tok = lora_model([1])
    else:
        model, tok = recall_model([1] if kind == "combined" else None)
    batch = tiny_batch(tok)
    model.double().train()  # float64: the cached states were computed in other batches (other summation orders)
    full = EngramLitModule(model, "engram", {"lr": 1e-3})
    cache = build_prefix_cache(model, True, 1.0)
    assert cache is not None and cache.depth == (2 if kind == "recall_final" else 1)
    cached = EngramLitModule(model, "engram", {"lr": 1e-3}, prefix_cache=cache)
    ref_loss, ref_grads = loss_and_grads(full, batch)
    for _ in range(2):  # the first call fills the cache, the second reads it
        loss, grads = loss_and_grads(cached, batch)
        # the loss itself is reduced in float32 (the module's cross_entropy on logits.float()): ~8 float32 ulps
        torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=0)
        assert grads.keys() == ref_grads.keys() and grads
        for name, g in grads.items():
            torch.testing.assert_close(g, ref_grads[name], rtol=0, atol=1e-12, msg=name)
    assert cache.hits == len(batch["input_ids"]) and cache.misses == len(batch["input_ids"])


def test_cache_point_is_the_lowest_layer_that_trains_or_holds_a_memory() -> None:
    assert cache_depth(lora_model(None)[0]) == 0  # adapters on every layer: nothing to cache
    assert cache_depth(lora_model([1])[0]) == 1
    assert cache_depth(lora_model([1], dropout=0.1)[0]) == 1  # the dropout sits in the adapter's own layer
    assert cache_depth(recall_model()[0]) == 2  # memory after the last layer: the whole decoder is frozen prefix
    model, _ = recall_model()
    model.lm.model.embed_tokens.weight.requires_grad_(True)
    assert cache_depth(model) == 0 and build_prefix_cache(model, True, 1.0) is None
    assert build_prefix_cache(recall_model()[0], False, 1.0) is None  # train.prefix_cache=false


def test_a_weight_training_below_the_cache_point_is_refused_with_a_clear_message() -> None:
    model, tok = recall_model()
    cache = PrefixCache(model)
    batch = tiny_batch(tok, 2)
    cache.hidden(batch["input_ids"], batch["attention_mask"])
    model.lm.model.layers[0].mlp.up_proj.weight.requires_grad_(True)
    with pytest.raises(PrefixCacheError, match="train.prefix_cache=false"):
        cache.hidden(batch["input_ids"], batch["attention_mask"])


def test_over_budget_examples_are_recomputed_not_stored() -> None:
    model, tok = recall_model()
    cache = PrefixCache(model, max_bytes=0)
    batch = tiny_batch(tok, 3)
    first = cache.hidden(batch["input_ids"], batch["attention_mask"])
    assert not cache.entries and torch.equal(cache.hidden(batch["input_ids"], batch["attention_mask"]), first)


@pytest.mark.numerics
@pytest.mark.parametrize("variant", ["engram", "lora"])
def test_switching_the_cache_off_trains_the_same_weights_and_evaluates_the_same(variant: str, tmp_path: Path) -> None:
    over = ["engram=recall", "engram.dim=64", "engram.table_size=5000"] if variant == "engram" else \
        ["lora.layers=[-1]", "lora.dropout=0.0"]
    results = {}
    for on in (True, False):
        # float64: Adam amplifies float32 rounding of the two paths' different summation orders to ~lr
        cfg = tiny_cfg(tmp_path / str(on), f"variant={variant}", *over, "trainer.max_epochs=2", "model.dtype=float64",
                       f"train.prefix_cache={str(on).lower()}")
        metrics, objects = train(cfg)
        weights = {n: p.detach().clone() for n, p in objects["model"].named_parameters() if p.requires_grad}
        results[on] = metrics, weights, objects["trainer"].global_step
    (m_on, w_on, steps_on), (m_off, w_off, steps_off) = results[True], results[False]
    assert steps_on == steps_off > 0 and w_on.keys() == w_off.keys() and w_on
    for name, w in w_on.items():
        torch.testing.assert_close(w, w_off[name], rtol=0, atol=1e-10, msg=name)
    for key in ("eval/exact_match", "eval/retention", "edit/locality"):
        assert m_on[key] == m_off[key]


@pytest.mark.numerics
def test_the_shared_prompt_prefix_runs_once_and_gives_the_same_states() -> None:
    model, tok = recall_model()
    model.double()  # float64: the shared prefix runs in its own forward, in other matmul shapes
    batch = tiny_batch(tok, 6)
    full = PrefixCache(model).hidden(batch["input_ids"], batch["attention_mask"])
    cache = PrefixCache(model)
    lengths = batch["attention_mask"].sum(1).tolist()
    cache.fill([row[:n].tolist() for row, n in zip(batch["input_ids"], lengths, strict=True)], batch_size=4)
    assert cache.shared is not None and len(cache.shared) >= 2  # the chat template's opening
    assert cache.misses == 6 and len(cache.entries) == 6
    torch.testing.assert_close(cache.hidden(batch["input_ids"], batch["attention_mask"]), full, rtol=0, atol=1e-12)
    assert cache.hits == 6


def test_states_computed_before_the_trainer_converts_the_model_are_recomputed_in_its_new_dtype() -> None:
    """The pipeline fills the cache before Lightning applies trainer.precision (64-true converts the model to
    float64): the steps must then see float64 states, as the full forward computes them, not the float32 ones."""
    model, tok = recall_model()
    batch = tiny_batch(tok)
    cache = build_prefix_cache(model, True, 1.0)
    assert cache is not None
    pairs = zip(batch["input_ids"], batch["attention_mask"], strict=True)
    cache.fill([ids[mask.bool()].tolist() for ids, mask in pairs], progress=False)
    stored = len(cache.entries)
    assert stored and next(iter(cache.entries.values())).dtype == torch.float32
    model.double()
    ref = EngramLitModule(model, "engram", {"lr": 1e-3})(batch)
    loss = EngramLitModule(model, "engram", {"lr": 1e-3}, prefix_cache=cache)(batch)
    assert cache.misses == 2 * stored  # every entry computed again, in float64
    assert all(state.dtype == torch.float64 for state in cache.entries.values())
    torch.testing.assert_close(loss, ref, rtol=1e-7, atol=1e-7)  # (float32 states: the float64 layers raise)
