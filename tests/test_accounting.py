"""engram/models/accounting.py: total and active parameters and FLOPs per token, counted by hand for a dense decoder,
an MoE decoder (transformers' Mixtral, model=scratch model.experts) and a memory; a scratch MoE run trains with its
router's load-balancing loss and reports the accounting in eval.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _training_utils import tiny_cfg
from omegaconf import OmegaConf
from test_scratch_model import SCRATCH

from engram.models.accounting import account
from engram.models.inject import add_engram
from engram.models.scratch import build_scratch_model
from engram.training.pipeline import train

IDS = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
VOCAB, HIDDEN, LAYERS, MLP, CONTEXT = 300, 64, 2, 128, 64


def decoder(**extra: object) -> torch.nn.Module:
    shape = {"hidden_size": HIDDEN, "num_layers": LAYERS, "num_heads": 4, "intermediate_size": MLP,
             "attention_window": None, **extra}
    return build_scratch_model(shape, VOCAB, IDS)


ATTENTION = 4 * HIDDEN * HIDDEN  # q, k, v, o (as many key/value heads as heads)
EXPERT = 3 * HIDDEN * MLP  # gate, up and down projections of one MLP
NORMS = 2 * HIDDEN  # per layer
EMBEDDING = VOCAB * HIDDEN


def test_a_dense_decoder_by_hand() -> None:
    a = account(decoder(), CONTEXT)
    assert a.total == EMBEDDING + LAYERS * (ATTENTION + EXPERT + NORMS) + HIDDEN
    assert a.active == a.total - EMBEDDING + HIDDEN  # one embedding row per token
    attended = (CONTEXT + 1) / 2  # causal: position i attends to i positions, averaged over the block
    assert a.flops_per_token == round(2 * (LAYERS * (ATTENTION + EXPERT) + EMBEDDING)  # the tied head multiplies
                                      + 4 * LAYERS * HIDDEN * attended)


def test_a_sliding_window_caps_the_positions_attended() -> None:
    full, windowed = account(decoder(), CONTEXT), account(decoder(attention_window=8), CONTEXT)
    attended = (8 * 9 / 2 + (CONTEXT - 8) * 8) / CONTEXT
    saved = 4 * LAYERS * HIDDEN * ((CONTEXT + 1) / 2 - attended)
    assert full.flops_per_token - windowed.flops_per_token == round(saved)


@pytest.mark.parametrize("per_token", [1, 2])
def test_an_moe_decoder_counts_all_experts_in_total_and_k_of_them_active(per_token: int) -> None:
    model = decoder(experts=4, experts_per_token=per_token)
    assert type(model).__name__ == "MixtralForCausalLM"
    router = 4 * HIDDEN
    a, dense = account(model, CONTEXT), account(decoder(), CONTEXT)
    assert a.total == dense.total + LAYERS * (3 * EXPERT + router)
    assert a.active == dense.active + LAYERS * ((per_token - 1) * EXPERT + router)
    assert a.flops_per_token == dense.flops_per_token + 2 * LAYERS * ((per_token - 1) * EXPERT + router)


def test_a_memory_reads_one_row_per_head_and_its_rows_cost_no_multiplies(tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path, "variant=engram", "engram=deepseek", "engram.table_size=1000", "engram.layers=[1]")
    plain = decoder()
    before = account(plain, CONTEXT)
    model = add_engram(plain, cfg.engram)
    memory = next(m for m in model.modules() if type(m).__name__ == "EngramMemory")
    table = memory.table.weight
    heads, row = memory.offsets.numel(), table.shape[1]
    rest = sum(p.numel() for n, p in memory.named_parameters() if not n.startswith("table."))
    matrices = sum(p.numel() for n, p in memory.named_parameters() if not n.startswith("table.") and p.dim() >= 2)
    after = account(model, CONTEXT)
    assert after.total == before.total + table.numel() + rest
    assert after.active == before.active + heads * row + rest
    assert after.flops_per_token == before.flops_per_token + 2 * matrices  # projections, gate and conv; no rows


def test_a_scratch_moe_run_trains_its_router_and_reports_the_accounting(tmp_path: Path) -> None:
    from engram.models.engram_model import EngramModel

    cfg = tiny_cfg(tmp_path, *SCRATCH, "variant=engram", "model.experts=4", "model.experts_per_token=1")
    _, objects = train(cfg)
    assert objects["module"].router_aux_weight == 0.01  # model.router_aux_loss's default
    assert float(objects["trainer"].logged_metrics["train/router_aux"]) > 0  # the load-balancing loss trained
    metrics = json.loads((tmp_path / "eval.json").read_text())["metrics"]
    assert 0 < metrics["params/active"] < metrics["params/total"] and metrics["flops/token"] > 0
    assert metrics["params/total"] == account(objects["model"], int(cfg.data.max_length)).total
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / ".hydra" / "config.yaml")
    assert type(EngramModel.from_pretrained(tmp_path).lm).__name__ == "MixtralForCausalLM"  # reloads as trained
