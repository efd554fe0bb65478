"""Cached generation keeps the id history: greedy use_cache=True == use_cache=False with a memory that matters."""

import pytest
import torch

from engram import add_engram
from engram.models import load_model
from engram.models.inject import engram_memories

PROMPTS = ["def add(a, b):", "The capital of France is", "x"]

pytestmark = pytest.mark.numerics  # compares two code paths' floats: see .ci/run


def lively(model):
    """Larger random weights: the default tiny model mostly repeats its last token, which would hide a memory
    that lost the history after the first step."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and "embed" not in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model


def open_memory(model, tok, **kw):
    base = dict(table_size=257, heads=2, dim=32, max_ngram=3, layers="all", seed=1, gate_bias=1.0, init_std=0.5)
    cfg = {**base, **kw}
    torch.manual_seed(0)  # the rows and gates come from the global RNG, whose state differs from run to run
    model = add_engram(model, cfg, tokenizer=tok)
    with torch.no_grad():
        for memory in engram_memories(model).values():
            if hasattr(memory.gate, "conv"):  # make the short conv matter, so its cache is exercised
                torch.nn.init.normal_(memory.gate.conv.weight, std=0.5)
    return model


def left_padded(tok):
    tok.padding_side = "left"
    batch = tok(PROMPTS, return_tensors="pt", padding=True)
    lengths = batch["attention_mask"].sum(1)
    assert len(set(lengths.tolist())) == 3 and (batch["attention_mask"][:, 0] == 0).any()  # mixed lengths
    return batch


def greedy(model, batch, use_cache, n=10):
    out = model.generate(**batch, max_new_tokens=n, do_sample=False, use_cache=use_cache, pad_token_id=3)
    return out[:, batch["input_ids"].shape[1] :]


@pytest.mark.parametrize("hash_,gate", [("poc", "mlp"), ("deepseek", "context"), ("deepseek", "mlp"),
                                        ("span", "context"), ("span", "mlp")])
def test_generation_cached_equals_uncached(hash_, gate):
    # float64: the cache sums in another order than the full forward; a float32 near-tie could flip a greedy token
    model, tok = load_model("tiny", dtype="float64")
    lively(model)
    batch = left_padded(tok)
    plain = greedy(model, batch, use_cache=True)
    model = open_memory(model, tok, hash=hash_, gate=gate)
    cached = greedy(model, batch, use_cache=True)
    uncached = greedy(model, batch, use_cache=False)
    assert torch.equal(cached, uncached)
    assert not torch.equal(cached, plain)  # the memory really changes what is generated
    assert min(len(set(r)) for r in cached.tolist()) > 1  # and not one repeated token


def test_generation_cached_equals_uncached_with_the_hybrid_address():
    """address=hybrid reads the hidden state of each new position only (no history), so caching changes nothing."""
    model, tok = load_model("tiny", dtype="float64")
    lively(model)
    batch = left_padded(tok)
    model = open_memory(model, tok, hash="deepseek", gate="context", address="hybrid",
                        hybrid={"topk": 4, "key_dim": 16})
    assert all(memory.retrieval is not None for memory in engram_memories(model).values())
    assert torch.equal(greedy(model, batch, use_cache=True), greedy(model, batch, use_cache=False))


def test_generation_history_resets_per_call_and_follows_the_batch():
    model, tok = load_model("tiny")
    model = open_memory(model, tok, hash="deepseek", gate="context")
    batch = left_padded(tok)
    first = greedy(model, batch, use_cache=True)
    tok.padding_side = "left"
    single = tok(PROMPTS[1:2], return_tensors="pt")
    greedy(model, single, use_cache=True)  # another batch size in between
    assert torch.equal(greedy(model, batch, use_cache=True), first)
    assert engram_memories(model)  # still injected after generate returns
    ctx = model.context
    assert ctx.ids is None and ctx.generate_prompt_len is None  # history cleared after each call


def test_generation_span_memory_starts_at_the_last_prompt_position():
    model, tok = load_model("tiny")
    model = open_memory(model, tok, hash="span", gate="mlp", layers=[0])
    batch = left_padded(tok)
    with model.tracing() as traces:
        model.generate(**batch, max_new_tokens=1, do_sample=False, pad_token_id=3)
    # first step: exactly one position per row (the last prompt token) got memory
    assert traces[0].kept().numel() == len(PROMPTS)


def test_generation_manual_cached_loop_without_history_fails_clearly():
    model, tok = load_model("tiny")
    model = open_memory(model, tok, hash="deepseek", gate="mlp")
    ids = tok(PROMPTS[:1], return_tensors="pt")["input_ids"]
    out = model(ids, use_cache=True)
    nxt = out.logits[:, -1:].argmax(-1)
    model(nxt, past_key_values=out.past_key_values, use_cache=True)  # continues the history: fine
    with pytest.raises(RuntimeError, match="id history"):
        model(torch.cat([nxt, nxt], 0), past_key_values=out.past_key_values, use_cache=True)


def test_past_length_found_whatever_the_cache_keyword_is_called():
    from transformers.cache_utils import DynamicCache

    from engram.models.inject import past_length  # defined in engram.models.engram_model

    model, tok = load_model("tiny")
    ids = tok(PROMPTS[:1], return_tensors="pt")["input_ids"]
    cache = model(ids, use_cache=True).past_key_values
    n = ids.shape[1]
    new = ids[:, :1]
    assert past_length((), {"past_key_values": cache}, new, None) == n  # transformers < 5.x name
    assert past_length((), {"cache": cache}, new, None) == n  # 5.x name
    assert past_length((new, None, None, cache), {}, new, None) == n  # positional
    assert past_length((), {"cache": DynamicCache()}, ids, None) == 0  # prefill: an empty cache
    assert past_length((), {"cache_position": torch.arange(5, 6)}, new, None) == 5
    assert past_length((), {}, new, torch.ones(1, n + 1)) == n  # generate's mask covers past + new positions
    assert past_length((), {}, ids, torch.ones_like(ids)) == 0


def test_evaluation_stops_when_cached_and_uncached_decoding_differ(monkeypatch):
    """The guard that keeps a broken id history (e.g. after a library rename) from scoring wrong tokens."""
    import engram.models.engram_model as engram_model
    from engram.evaluation.generate_eval import CachedGenerationError, check_cached_generation

    model, tok = load_model("tiny")
    lively(model)
    model = open_memory(model, tok, hash="deepseek", gate="context")
    batch = left_padded(tok)
    check_cached_generation(model, tok, batch["input_ids"], batch["attention_mask"], 8)  # healthy: passes
    monkeypatch.setattr(engram_model, "past_length", lambda *a, **k: 0)  # every decoding step forgets the history
    with pytest.raises(CachedGenerationError, match="cached and uncached greedy decoding differ"):
        check_cached_generation(model, tok, batch["input_ids"], batch["attention_mask"], 8)
