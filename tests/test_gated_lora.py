"""variant=gated_lora (engram/models/gated_lora.py): exact base logits while LoRA's B is zero, a gate in [0, 1] that
starts closed, greedy decoding of the mixture over two caches, gate statistics in the training logs and eval.json,
and a run dir that evaluate.py run_dir= scores again from its adapter + gate."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from engram.config import register_configs
from engram.evaluation.evaluate import reevaluate_run, write_comparison
from engram.models.gated_lora import GatedLoRAModel
from engram.models.loading import load_model
from engram.tracking.run_dirs import read_run
from engram.training.pipeline import train
from engram.training.variants import apply_variant
from tests._training_utils import tiny_cfg

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    """(fresh gated LoRA model, tokenizer, the plain base model's logits, input ids, attention mask)."""
    register_configs()
    # float64: the greedy test compares cached with uncached decoding (other summation orders, a float32 near-tie)
    cfg = tiny_cfg(tmp_path_factory.mktemp("cfg"), "variant=gated_lora", "model.dtype=float64")
    model, tok = load_model(cfg.model)
    ids = torch.randint(3, 200, (3, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # left padding in one row
    with torch.no_grad():
        base = model(input_ids=ids, attention_mask=mask).logits
    return apply_variant(model, cfg, tok).eval(), tok, base, ids, mask  # eval: no LoRA dropout


def lora_b(model: GatedLoRAModel) -> list[torch.nn.Parameter]:
    return [p for n, p in model.named_parameters() if "lora_B" in n]


def test_fresh_gated_lora_gives_the_base_logits_exactly(tiny_pair):
    model, _, base, ids, mask = tiny_pair
    assert lora_b(model) and all(float(p.detach().abs().sum()) == 0 for p in lora_b(model))  # peft's B starts at zero
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask)
    assert torch.equal(out.logits, base)  # base + g·(lora − base) with lora == base, bit for bit
    gate = out.lora_gate
    assert not hasattr(model, "last_gate")  # the output carries the gate; nothing of a forward stays on the model
    assert gate.shape == ids.shape and float(gate.min()) >= 0 and float(gate.max()) < 0.05  # starts closed


def test_a_closed_gate_lets_little_of_a_moved_lora_through_and_an_open_one_all(tiny_pair):
    model, _, base, ids, mask = tiny_pair
    saved = [p.detach().clone() for p in lora_b(model)]
    try:
        with torch.no_grad():
            for p in lora_b(model):
                p.normal_(0, 0.5)
            out = model(input_ids=ids, attention_mask=mask)
            mixed = out.logits
            with model.base_model.disable_adapter():
                assert torch.allclose(model.base_model(input_ids=ids, attention_mask=mask).logits, base)
            lora = model.base_model(input_ids=ids, attention_mask=mask).logits
            assert not torch.allclose(lora, base)
            g = out.lora_gate.unsqueeze(-1)
            assert torch.allclose(mixed, base + g * (lora - base), atol=1e-5)
            assert float((mixed - base).abs().max()) < 0.05 * float((lora - base).abs().max())
            bias = model.gate.outer.bias.clone()
            model.gate.outer.bias.fill_(40.0)  # wide open: the LoRA model alone
            assert torch.allclose(model(input_ids=ids, attention_mask=mask).logits, lora, atol=1e-5)
            model.gate.outer.bias.fill_(-40.0)  # shut: the base alone
            shut = model(input_ids=ids, attention_mask=mask)
            assert torch.allclose(shut.logits, base, atol=1e-5)
            assert float(shut.lora_gate.min()) >= 0 and float(shut.lora_gate.max()) <= 1e-9
            model.gate.outer.bias.copy_(bias)
    finally:
        with torch.no_grad():
            for p, s in zip(lora_b(model), saved, strict=True):
                p.copy_(s)


@pytest.mark.numerics
def test_greedy_decoding_cached_equals_uncached_and_a_fresh_gate_decodes_as_the_base(tiny_pair):
    model, tok, _, ids, mask = tiny_pair
    kw = {"max_new_tokens": 6, "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id}
    model.eval()
    cached = model.generate(input_ids=ids, attention_mask=mask, use_cache=True, **kw)
    uncached = model.generate(input_ids=ids, attention_mask=mask, use_cache=False, **kw)
    with torch.no_grad(), model.base_model.disable_adapter():
        base = model.base_model.generate(input_ids=ids, attention_mask=mask, do_sample=False, **kw)
    assert torch.equal(cached, uncached) and torch.equal(cached, base)
    with pytest.raises(ValueError, match="greedy"):
        model.generate(input_ids=ids, attention_mask=mask, do_sample=True, **kw)


@pytest.fixture(scope="module")
def gated_run(tmp_path_factory):
    """A tiny gated_lora run on data=entity with the CSV logger (a few steps, so the adapter moves)."""
    register_configs()
    run_dir = tmp_path_factory.mktemp("gated")
    cfg = tiny_cfg(run_dir, "variant=gated_lora", "data=entity", "logger=csv", "trainer.max_epochs=2",
                   "trainer.max_steps=6", "optim.lr=0.02", "optim.warmup_steps=0")
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")  # as train.py's Hydra run would
    metrics, _ = train(cfg)
    return run_dir, metrics


def test_gate_statistics_are_logged_in_training_and_stored_in_eval_json(gated_run):
    run_dir, metrics = gated_run
    rows = list(csv.DictReader(next(run_dir.rglob("metrics.csv")).open()))
    steps = [(float(r["train/gate_answer_step"]), float(r["train/gate_prompt_step"]))
             for r in rows if r.get("train/gate_answer_step")]
    assert len(steps) >= 6 and all(0 <= a <= 1 and 0 <= p <= 1 for a, p in steps)
    saved = json.loads((run_dir / "eval.json").read_text())["metrics"]
    keys = ("gate/answer_seen", "gate/prompt_seen", "gate/answer_unseen", "gate/prompt_unseen", "gate/general")
    assert all(0 <= saved[k] <= 1 for k in keys)
    assert saved["eval/retention"] >= 0 and "edit/generalization" in saved  # retention + paraphrases, as any variant
    assert (run_dir / "lora_gate_tokens.png").stat().st_size > 5_000
    assert (run_dir / "lora_gate.safetensors").is_file() and (run_dir / "lora_adapter").is_dir()


def test_the_run_dir_is_scored_again_from_its_adapter_and_gate(gated_run, tmp_path):
    run_dir, _ = gated_run
    again = reevaluate_run(run_dir, tmp_path / "again")
    before = json.loads((run_dir / "eval.json").read_text())
    assert [r["generated"] for r in again.result["examples"]] == [r["generated"] for r in before["examples"]]
    for key in ("gate/answer_seen", "gate/general", "edit/efficacy_tf"):
        assert again.metrics[key] == pytest.approx(before["metrics"][key], abs=1e-6)
    from safetensors.torch import load_file

    model, _ = load_model("tiny")
    reloaded = GatedLoRAModel.from_pretrained(run_dir, model)
    saved = load_file(str(run_dir / "lora_gate.safetensors"))
    assert all(torch.equal(reloaded.gate.state_dict()[k], v) for k, v in saved.items())
    assert not all(p.requires_grad for p in reloaded.parameters())


def test_evaluate_py_run_dir_and_a_run_dir_without_its_gate(gated_run, tmp_path):
    run_dir, _ = gated_run
    proc = subprocess.run([sys.executable, "evaluate.py", f"run_dir={run_dir}", f"output_dir={tmp_path / 'ev'}",
                           "logger=none", f"hydra.run.dir={tmp_path / 'h'}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "gate/answer_seen" in json.loads((tmp_path / "ev" / "eval.json").read_text())["metrics"]
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(run_dir), str(broken)], check=True)
    (broken / "lora_gate.safetensors").unlink()
    proc = subprocess.run([sys.executable, "evaluate.py", f"run_dir={broken}", f"hydra.run.dir={tmp_path / 'h2'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "lora_gate.safetensors" in lines[0], proc.stderr


def test_comparison_puts_gated_lora_right_after_lora(gated_run, tmp_path):
    run_dir, _ = gated_run
    rows = write_comparison([read_run(run_dir)], tmp_path / "cmp", check_split=False)["rows"]
    assert rows[0]["variant"] == "gated_lora"
    from engram.config import ROW_ORDER
    assert ROW_ORDER.index("gated_lora") == ROW_ORDER.index("lora") + 1


def test_user_prefs_trains_a_memory_on_the_tiny_model(tmp_path):
    register_configs()
    metrics, _ = train(tiny_cfg(tmp_path, "data=user_prefs"))
    assert metrics["eval/num_examples"] == 8 and "edit/generalization" in metrics


def test_bad_gate_setting_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "train.py", "variant=gated_lora", "variant.gate_width=0",
                           f"hydra.run.dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("config error: variant.gate_width=0")


def test_a_checkpoint_holds_the_adapter_and_the_gate(tmp_path):
    register_configs()
    cfg = tiny_cfg(tmp_path, "variant=gated_lora", "trainer.enable_checkpointing=true")
    train(cfg)
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert any(k.startswith("model.gate.") for k in saved) and any("lora_B" in k for k in saved)
    assert all(k.startswith("model.gate.") or "lora_" in k for k in saved)  # trainable weights only


def test_replay_kl_is_zero_for_a_fresh_gated_lora_and_trains_with_it(tiny_pair, tmp_path):
    """train.replay_ratio: KL(base || mixture) on general prompts, 0 while LoRA's B is zero; a run logs it."""
    from engram.training.replay import replay_kl

    model, _, _, ids, mask = tiny_pair
    kl = replay_kl(model, {"input_ids": ids, "attention_mask": mask, "prompt_lengths": mask.sum(1)})
    assert float(kl) == 0.0
    metrics, _ = train(tiny_cfg(tmp_path, "variant=gated_lora", "train.replay_ratio=0.5"))
    assert 0 <= metrics["train/replay_kl"] < float("inf")
