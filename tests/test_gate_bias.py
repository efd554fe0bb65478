"""gate_bias means the same in every gate: a fixed, untrained offset on the gate's logit. Old engram files whose
MLP gate kept it inside the trained last bias (format engram-lab/1) load to the same model."""

from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch
from safetensors import safe_open

from engram import add_engram, save_engram
from engram.inputs import ENGRAM_FILE_FORMATS
from engram.memory.gates.context import ContextGate
from engram.memory.gates.mlp import MLPGate
from engram.models import load_model
from engram.models.engram_file import FILE_FORMAT, OLD_FORMATS


@pytest.mark.parametrize("gate_cls", [MLPGate, ContextGate])
def test_gate_bias_is_a_fixed_logit_offset_in_every_gate(gate_cls) -> None:
    torch.manual_seed(0)
    h, e = torch.randn(2, 5, 16), torch.randn(2, 5, 8)
    keep = torch.ones(2, 5, dtype=torch.bool)
    gates, values = {}, {}
    for bias in (0.0, -3.0):
        torch.manual_seed(1)
        gates[bias] = gate_cls(16, 8, bias)
        values[bias] = gates[bias](h, e, keep)[1]
    assert not any("gate_bias" in n for n, _ in gates[-3.0].named_parameters())  # not trained
    logit = {b: torch.logit(v.detach().double()) for b, v in values.items()}
    assert torch.allclose(logit[-3.0], logit[0.0] - 3.0, atol=1e-4)


def test_old_format_mlp_file_loads_to_the_same_model(tmp_path) -> None:
    cfg = dict(table_size=101, heads=2, dim=32, layers=[0], gate="mlp", gate_bias=-2.0, hash="deepseek")
    model, tok = load_model("tiny")
    engram = add_engram(model, cfg, tok)
    with torch.no_grad():  # a "trained" memory: every memory weight moved, the base untouched
        for p in engram.memories.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    ids = tok(["The capital of France is"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        want = engram(ids).logits
    path = save_engram(engram, tmp_path / "new.safetensors")

    # the same memory as the old code wrote it: gate_bias folded into the MLP's last bias, format engram-lab/1
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    tensors = safetensors.torch.load_file(str(path))
    old = {k: (v + cfg["gate_bias"] if k.endswith(".gate.mlp.2.bias") else v) for k, v in tensors.items()}
    meta["format"] = OLD_FORMATS[0]
    old_path = tmp_path / "old.safetensors"
    safetensors.torch.save_file(old, str(old_path), metadata=meta)

    fresh, tok2 = load_model("tiny")
    reloaded = add_engram(fresh, json.loads(meta["engram_config"]), tok2)
    reloaded.load_engram(old_path)
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, want, atol=1e-6)


def test_the_input_checker_knows_the_file_formats() -> None:
    assert set(ENGRAM_FILE_FORMATS) == {FILE_FORMAT, *OLD_FORMATS}
