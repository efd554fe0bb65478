"""MemoryTrace: what one memory's forward did (gate, share of heads let through, lookup), kept only inside
`EngramModel.tracing()`, read by the gate statistics, the demo and the gate penalty of training."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from engram import EngramModel
from engram.config import EngramConfig
from engram.demo.gates import read_gates
from engram.evaluation.gate_classes import GateByClass
from engram.evaluation.gate_stats import collect_gate_stats, gate_histograms
from engram.memory.trace import MemoryTrace
from engram.models import load_model
from engram.protocols import Lookup
from engram.training.module import EngramLitModule
from engram.training.replay import off_answer_positions

DEEPSEEK = dict(hash="deepseek", gate="context", address="hashed", layers=[0, 1], table_size=97, heads=2, dim=16,
                max_ngram=3, gate_bias=1.0, init="normal", init_std=1.0, seed=0)
# the default memory (engram/conf/engram/question.yaml) at the tiny model's size, with rows to read before any writing
DEFAULT = dict(hash="question", address="fingerprint", gate="direct", layers=["final"], dim=64, table_size=5000,
               init="normal", init_std=1.0, seed=0)
TAUGHT, ANSWERS = ["What is the capital of France?", "Who founded Orbex?"], ["Paris", "Ada Lovelace"]
ASKED = ["Which city is the capital of France?", "Why is the sky blue?", "Who founded Orbex?"]


def build(cfg: dict) -> tuple[EngramModel, object]:
    model, tok = load_model("tiny")
    return EngramModel(model, OmegaConf.merge(OmegaConf.structured(EngramConfig), cfg), tok), tok


def chat(tok: object, prompts: list[str], answers: list[str]) -> dict[str, torch.Tensor]:
    """Prompt + answer per row, right-padded, with labels on the answer tokens only (as training batches them)."""
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in prompts]
    prompt_ids = tok(texts, add_special_tokens=False)["input_ids"]
    rows = [p + tok(a, add_special_tokens=False)["input_ids"] for p, a in zip(prompt_ids, answers, strict=True)]
    n = max(map(len, rows))
    ids = torch.tensor([r + [tok.pad_token_id] * (n - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in rows])
    labels = torch.tensor([[-100] * len(p) + r[len(p):] + [-100] * (n - len(r))
                           for p, r in zip(prompt_ids, rows, strict=True)])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels,
            "prompt_lengths": torch.tensor([len(p) for p in prompt_ids])}


def forward(model: EngramModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                 prompt_lengths=batch["prompt_lengths"]).logits


@pytest.mark.parametrize("cfg", [DEEPSEEK, DEFAULT], ids=["deepseek", "default"])
def test_a_forward_traces_every_memory_in_the_documented_shapes(cfg: dict) -> None:
    model, tok = build(cfg)
    model.train()  # the default memory learns its taught questions and claims their rows here
    forward(model, chat(tok, TAUGHT, ANSWERS))
    model.eval()
    batch = chat(tok, ASKED, ["Paris", "Rayleigh", "Ada"])
    seen: dict[str, dict[int, torch.Tensor]] = {"gate": {}, "passed": {}}  # what the gate and address returned
    hooks = [m.gate.register_forward_hook(lambda _m, _a, out, at=layer: seen["gate"].__setitem__(at, out[1]))
             for layer, m in ((int(k), m) for k, m in model.memories.items())]
    hooks += [m.address.register_forward_hook(lambda _m, _a, out, at=layer: seen["passed"].__setitem__(at, out))
              for layer, m in ((int(k), m) for k, m in model.memories.items())]
    with torch.no_grad(), model.tracing() as traces:
        forward(model, batch)
    for hook in hooks:
        hook.remove()
    assert sorted(traces) == model.layers
    B, T = batch["input_ids"].shape
    for layer, trace in traces.items():
        heads = len(model.memory(layer).offsets)
        assert trace.gate.shape == trace.passed.shape == trace.keep.shape == trace.entering().shape == (B, T)
        assert trace.lookup.slots.shape == trace.lookup.keys.shape == (B, T, heads)
        assert trace.all_heads_passed().shape == (B,) and trace.live is None
        # what EngramMemory.last_gate / entering() gave: the gate's value times the share of heads let through
        want = seen["gate"][layer].float() * seen["passed"][layer].float().mean(-1)
        assert torch.equal(trace.kept(), want[trace.keep])
        assert torch.equal(trace.entering(), torch.where(trace.keep, want, torch.zeros_like(want)))
        assert 0 <= float(trace.kept().min()) and float(trace.kept().max()) <= 1
    if cfg is DEFAULT:  # the direct gate is open; the taught question's rewording reads rows, a general prompt none
        entering = traces[model.layers[0]].entering()
        assert bool((traces[model.layers[0]].gate == 1).all())
        assert float(entering[0].sum()) > 0 and float(entering[1].sum()) == 0


def test_nothing_holds_a_graph_unless_a_loss_asks_for_it() -> None:
    model, tok = build(DEEPSEEK)
    batch = chat(tok, TAUGHT, ANSWERS)
    model.train()
    forward(model, batch).sum().backward()  # untraced: no record of it anywhere
    for module in model.memories.modules():
        assert not any(torch.is_tensor(v) or isinstance(v, Lookup) for v in vars(module).values()), module
    with model.tracing() as traces:
        forward(model, batch)
    for trace in traces.values():
        assert trace.live is None
        assert not any(t.requires_grad for t in (trace.gate, trace.passed, *trace.lookup))
    with model.tracing(live=True) as live:
        forward(model, batch)
    gate = model.memory(1).gate
    penalty = sum(t.live.sum() for t in live.values())
    grads = torch.autograd.grad(penalty, list(gate.key_proj.parameters()))
    assert all(float(g.abs().sum()) > 0 for g in grads)  # the live trace reaches the gate's weights
    for layer, trace in live.items():
        assert torch.equal(trace.live.detach(), traces[layer].entering())  # the same memory entering


def test_tracing_keeps_the_latest_forward_and_only_inside_the_block() -> None:
    model, tok = build(DEEPSEEK)
    short, long = chat(tok, TAUGHT[:1], ANSWERS[:1]), chat(tok, ASKED, ["a", "b", "c"])
    with torch.no_grad(), model.tracing() as outer:
        forward(model, short)
        with model.tracing() as inner:  # blocks nest: each gets every trace
            forward(model, long)
        assert inner[1] is outer[1] and outer[1].keep.shape == long["input_ids"].shape
        with model.memories_off():
            forward(model, short)
        assert outer == {}  # a knocked-out forward leaves no trace, not the previous one's
        forward(model, short)
    forward(model, long)  # after the block: nothing is kept
    assert outer[1].keep.shape == short["input_ids"].shape and inner[1].keep.shape == long["input_ids"].shape


class FlatGate(nn.Module):
    """Reports its gate at the kept positions only (as `last_gate` once held them): not [B, T]."""

    def __init__(self, gate: nn.Module) -> None:
        super().__init__()
        self.inner = gate

    def forward(self, h: torch.Tensor, e: torch.Tensor, keep: torch.Tensor,
                cache: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        out, gate = self.inner(h, e, keep, cache)
        return out, gate[keep]


def test_gate_values_of_another_shape_fail_clearly() -> None:
    keep = torch.ones(2, 3, dtype=torch.bool)
    lookup = Lookup(torch.zeros(2, 3, 4, dtype=torch.long), torch.zeros(2, 3, 4, dtype=torch.long), keep)
    with pytest.raises(ValueError, match=r"gate \[B, T\]"):
        MemoryTrace.of(torch.ones(2, 3, 1), torch.ones(2, 3, 4), lookup)
    with pytest.raises(ValueError, match=r"\[B, T, heads\]"):
        MemoryTrace.of(torch.ones(2, 3), torch.ones(2, 4, 4), lookup)
    model, tok = build(DEEPSEEK)
    model.memory(1).gate = FlatGate(model.memory(1).gate)
    with pytest.raises(ValueError, match="a gate's forward returns"):
        forward(model, chat(tok, TAUGHT, ANSWERS))


def test_gate_statistics_histograms_classes_and_the_demo_read_the_trace() -> None:
    model, tok = build(DEEPSEEK)
    batch = chat(tok, ASKED, ["Paris", "Rayleigh", "Ada"])
    with torch.no_grad(), model.tracing() as traces:
        forward(model, batch)
    stats = collect_gate_stats(model, traces)
    hists = gate_histograms(traces)
    for layer, trace in traces.items():
        kept = trace.kept()
        assert stats[f"engram/layer{layer}/gate_mean"] == pytest.approx(float(kept.mean()))
        assert stats[f"engram/layer{layer}/gate_open_frac"] == pytest.approx(float((kept > 0.5).float().mean()))
        assert stats[f"engram/layer{layer}/collision_rate"] == trace.collision_rate()
        assert torch.equal(hists[f"engram/layer{layer}/gate_hist"], kept)
    assert math.isnan(collect_gate_stats(model, {})["engram/layer1/gate_mean"])  # no traced forward: no value
    with pytest.raises(ValueError, match="the traces of the forward on this batch"):
        GateByClass(tok, None)({"input_ids": batch["input_ids"][:1]}, traces)  # another batch's traces
    ids = batch["input_ids"][0, : int(batch["attention_mask"][0].sum())]
    readout = read_gates(model, ids.tolist(), int(batch["prompt_lengths"][0]))
    with torch.no_grad(), model.tracing() as one:
        forward(model, {"input_ids": ids[None], "attention_mask": torch.ones_like(ids[None]),
                        "prompt_lengths": batch["prompt_lengths"][:1]})
    for layer in model.layers:
        assert readout[layer] == pytest.approx(one[layer].entering()[0].tolist(), abs=1e-4)


@pytest.mark.filterwarnings("ignore:.*self.log.*")  # no Trainer here: the step's logging is skipped
def test_the_training_step_penalises_the_live_trace_and_hands_detached_traces_to_the_callbacks() -> None:
    model, tok = build(DEEPSEEK)
    batch = chat(tok, TAUGHT, ANSWERS)
    plain = EngramLitModule(model, "engram", {"lr": 1e-3}, {"gate_l1": 0.0}).training_step(batch, 0)
    out = EngramLitModule(model, "engram", {"lr": 1e-3}, {"gate_l1": 0.5}).training_step(batch, 0)
    off = off_answer_positions(batch)
    entering = torch.cat([t.entering()[off] for t in out["traces"].values()])
    assert float((out["loss"] - plain["loss"]).detach()) == pytest.approx(0.5 * float(entering.mean()), rel=1e-4)
    assert sorted(out["traces"]) == model.layers and all(t.live is None for t in out["traces"].values())
    out["loss"].backward()
    assert model.memory(1).gate.key_proj.weight.grad is not None
