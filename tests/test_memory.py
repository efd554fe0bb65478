"""EngramMemory and gates on the tiny model: near no-op when closed, wired in when open, statistics."""

import math

import pytest
import torch

from engram import add_engram
from engram.config import EngramConfig
from engram.evaluation.gate_stats import collect_gate_stats, gate_histograms, reset_slot_usage
from engram.memory import ContextGate, EngramMemory, PocHasher
from engram.models import load_model
from engram.models.inject import engram_memories


def small(**kw):
    base = dict(table_size=300, heads=4, dim=32, max_ngram=3, layers="all", seed=0)
    return {**base, **kw}


def ids_batch(seed=0, shape=(3, 14)):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(4, 2048, shape, generator=g)


@pytest.mark.parametrize("hash_,gate", [("poc", "mlp"), ("deepseek", "context"), ("span", "context"),
                                        ("deepseek", "mlp"), ("poc", "context")])
def test_memory_closed_gate_is_near_noop_and_open_gate_changes_logits(hash_, gate):
    model, tok = load_model("tiny")
    ids = ids_batch()
    with torch.no_grad():
        base = model(ids).logits
        closed = add_engram(model, small(hash=hash_, gate=gate, gate_bias=-5.0), tokenizer=tok)(ids).logits
    assert (closed - base).abs().max() < 1e-2

    model, tok = load_model("tiny")
    model = add_engram(model, small(hash=hash_, gate=gate, gate_bias=8.0, init_std=1.0), tokenizer=tok)
    with torch.no_grad(), model.tracing() as traces:
        opened = model(ids).logits
    assert (opened - base).abs().max() > 0.1
    stats = collect_gate_stats(model, traces)
    assert stats["engram/layer0/gate_open_frac"] > 0.5


def test_memory_gate_values_are_kept_detached_for_statistics():
    model, tok = load_model("tiny")
    model = add_engram(model, small(hash="deepseek", gate="context", gate_bias=-5.0, layers=[1]), tokenizer=tok)
    ids = ids_batch()
    mask = torch.ones_like(ids)
    mask[0, 10:] = 0  # right padding: no memory, no gate value there
    with model.tracing() as traces:
        model(ids, attention_mask=mask).logits.sum().backward()
    kept = traces[1].kept()
    assert kept.requires_grad is False and kept.grad_fn is None and traces[1].live is None  # not asked for
    assert kept.numel() == int(mask.sum())
    stats = collect_gate_stats(model, traces)
    assert set(stats) == {f"engram/layer1/{k}" for k in
                          ("gate_mean", "gate_std", "gate_open_frac", "slot_utilisation", "collision_rate")}
    assert 0 < stats["engram/layer1/gate_mean"] < 0.5 and stats["engram/layer1/gate_std"] >= 0
    assert stats["engram/layer1/gate_open_frac"] == 0.0
    hist = gate_histograms(traces)["engram/layer1/gate_hist"]
    assert hist.device.type == "cpu" and hist.dim() == 1 and torch.equal(hist, kept.cpu())


def test_memory_slot_utilisation_counts_rows_since_reset():
    model, tok = load_model("tiny")
    model = add_engram(model, small(hash="poc", gate="mlp", table_size=5000, heads=2, layers=[0]), tokenizer=tok)
    memory = engram_memories(model)[0]
    assert memory.slot_utilisation() == 0.0
    assert math.isnan(collect_gate_stats(model, {})["engram/layer0/collision_rate"])  # no traced forward
    ids = torch.tensor([[5, 6, 7, 5]])
    model(ids)
    # poc: one shared table, rows (id * p) % T for p in (17, 31): 3 distinct ids -> 6 rows
    want = {(i * p) % 5000 for i in (5, 6, 7) for p in (17, 31)}
    assert memory.slot_utilisation() == pytest.approx(len(want) / 5000)
    assert set(memory.hits.nonzero().flatten().tolist()) == want
    model(torch.tensor([[8]]))
    assert memory.slot_utilisation() == pytest.approx((len(want) + 2) / 5000)  # accumulates
    reset_slot_usage(model)
    assert memory.slot_utilisation() == 0.0


def test_memory_collision_rate_of_the_last_batch():
    cfg = EngramConfig(hash="poc", gate="mlp", table_size=10, heads=1, dim=8, sparse=False)
    memory = EngramMemory(cfg, 0, 16, PocHasher(10, 1))
    ids = torch.tensor([[1, 11, 2, 3, 3]])  # 1*17 % 10 == 11*17 % 10: two keys share one slot
    _, trace = memory(torch.zeros(1, 5, 16), ids, torch.ones_like(ids), torch.tensor([5]))
    assert trace.collision_rate() == pytest.approx(1 - 3 / 4)
    _, trace = memory(torch.zeros(1, 3, 16), ids[:, 2:], torch.ones(1, 3), torch.tensor([3]))
    assert trace.collision_rate() == 0.0


def test_memory_heads_concatenate_for_deepseek_and_tables_are_sparse():
    model, tok = load_model("tiny")
    model = add_engram(model, small(hash="deepseek", gate="context", layers=[1], sparse=True), tokenizer=tok)
    memory = engram_memories(model)[1]
    sizes = memory.hasher.head_sizes(1)
    assert len(sizes) == 2 * 4 and memory.table.weight.shape == (sum(sizes), 32 // 4)
    assert memory.offsets.tolist() == [sum(sizes[:i]) for i in range(len(sizes))]
    assert memory.table.sparse
    assert memory.gate.value_proj.in_features == 2 * 32  # (max_ngram - 1) orders x dim
    assert torch.count_nonzero(memory.gate.conv.weight) == 0  # conv starts as a no-op
    assert abs(memory.table.weight.std().item() - 0.02) < 0.002  # init_std


@pytest.mark.numerics
def test_memory_context_gate_conv_with_cache_equals_full_sequence():
    torch.manual_seed(0)
    gate = ContextGate(16, 8, gate_bias=0.0, conv_kernel=4, max_ngram=3)
    torch.nn.init.normal_(gate.conv.weight, std=0.5)
    gate.double()  # float64: the cached steps convolve over other slices than the full sequence does
    h, e = torch.randn(2, 20, 16, dtype=torch.float64), torch.randn(2, 20, 8, dtype=torch.float64)
    keep = torch.ones(2, 20, dtype=torch.bool)
    full = gate(h, e, keep)[0]
    cache: dict = {}
    parts = [gate(h[:, :7], e[:, :7], keep[:, :7], cache)[0]]
    parts += [gate(h[:, t : t + 1], e[:, t : t + 1], keep[:, t : t + 1], cache)[0] for t in range(7, 20)]
    torch.testing.assert_close(torch.cat(parts, 1), full, rtol=0, atol=1e-12)
    with torch.no_grad():
        gate.conv.weight.zero_()  # the same gate without its conv term: v alone
        without_conv = gate(h, e, keep)[0]
    moved = (full - without_conv).abs().amax(-1)  # per position
    assert float(moved.min()) > 0.1  # the conv term is there, at every position


def test_memory_init_zeros_and_prepopulate_start_from_zero_rows():
    for init in ("zeros", "prepopulate"):  # prepopulate: zero rows that engram/training/writing.py writes into
        model, tok = load_model("tiny")
        model = add_engram(model, small(hash="poc", gate="mlp", init=init, layers=[0]), tokenizer=tok)
        assert torch.count_nonzero(engram_memories(model)[0].table.weight) == 0


@pytest.mark.numerics
def test_memory_context_gate_matches_the_paper_formula():
    """alpha = sigmoid(signed_sqrt(<RMSNorm(h), RMSNorm(W_k e)> / sqrt(d)) + bias), v = alpha W_v e,
    out = v + SiLU(causal dilated depthwise conv1d(RMSNorm(v))) — written here with F.conv1d as the demo does."""
    import torch.nn.functional as F

    torch.manual_seed(1)
    gate = ContextGate(16, 8, gate_bias=-1.0, conv_kernel=4, max_ngram=3)
    torch.nn.init.normal_(gate.conv.weight)
    gate.double()  # float64: F.conv1d and the module's conv may sum in different orders
    h, e = torch.randn(2, 11, 16, dtype=torch.float64), torch.randn(2, 11, 8, dtype=torch.float64)
    out, returned_alpha = gate(h, e, torch.ones(2, 11, dtype=torch.bool))
    score = (gate.key_norm(gate.key_proj(e)) * gate.query_norm(h)).sum(-1) / 4.0
    alpha = torch.sigmoid(score.abs().clamp_min(1e-6).sqrt() * score.sign() - 1.0)
    torch.testing.assert_close(returned_alpha, alpha, rtol=0, atol=1e-12)  # the gate value it reports
    v = alpha.unsqueeze(-1) * gate.value_proj(e)
    y = F.conv1d(gate.conv_norm(v).transpose(1, 2), gate.conv.weight, padding=9, dilation=3, groups=16)
    torch.testing.assert_close(out, v + F.silu(y[..., :11].transpose(1, 2)), rtol=0, atol=1e-12)
