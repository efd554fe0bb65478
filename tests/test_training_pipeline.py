"""The training pipeline end to end on model=tiny: variants, saved weights, NaN stop, resume, DDP, multirun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _training_utils import tiny_cfg
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load_file

import engram.training.pipeline as pipeline
from engram.models.inject import add_engram, causal_lm, engram_state_dict
from engram.models.loading import load_model
from engram.training.callbacks import StepStats
from engram.training.module import NonFiniteLossError
from engram.training.pipeline import run_task, train
from engram.training.variants import apply_variant, trainable_names

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def shared_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # base answers for retention are cached once for the whole test session, outside the user's cache
    monkeypatch.setenv("ENGRAM_CACHE", str(tmp_path_factory.getbasetemp() / "engram-cache"))


def _is_lora(name: str) -> bool:
    return "lora_" in name


def _is_engram(name: str) -> bool:
    return name.startswith("memories.")  # EngramModel's memories, named the same with or without peft inside


RULES = {
    "lora": lambda n: _is_lora(n),
    "engram": lambda n: _is_engram(n),
    "combined": lambda n: _is_lora(n) or _is_engram(n),
    "gated_lora": lambda n: _is_lora(n) or n.startswith("gate."),  # the adapter and its per-token gate
}


def _base_weights_unchanged(model: torch.nn.Module) -> bool:
    fresh, _ = load_model("tiny")
    lm = causal_lm(model)
    pairs = [
        (lm.model.embed_tokens.weight, fresh.model.embed_tokens.weight),
        (lm.model.layers[1].mlp.up_proj.weight, fresh.model.layers[1].mlp.up_proj.weight),
        (lm.model.norm.weight, fresh.model.norm.weight),
    ]
    return all(torch.equal(a.detach(), b.detach()) for a, b in pairs)


@pytest.mark.parametrize("variant", ["baseline", "lora", "gated_lora", "engram", "combined"])
def test_variant_trains_its_own_weights_and_writes_results(variant: str, tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path, f"variant={variant}")
    metrics, objects = train(cfg)
    model, trainer = objects["model"], objects["trainer"]
    names = trainable_names(model)

    if variant == "baseline":
        assert names == [] and trainer.global_step == 0  # frozen: evaluated as is
    else:
        assert names and all(RULES[variant](n) for n in names), [n for n in names if not RULES[variant](n)]
        assert trainer.global_step == 2
        assert _base_weights_unchanged(model)
    if variant == "combined":
        assert any(map(_is_lora, names)) and any(map(_is_engram, names))
    if variant == "gated_lora":
        assert any(map(_is_lora, names)) and any(n.startswith("gate.") for n in names)

    result = json.loads((tmp_path / "eval.json").read_text())
    for key in ("eval/exact_match", "eval/exact_match_seen", "eval/exact_match_unseen", "eval/retention",
                "eval/latency_ms", "params/trainable"):
        assert key in result["metrics"], key
    # counted here from the names (not from requires_grad, which is what count_parameters reads)
    by_name = sum(p.numel() for n, p in model.named_parameters() if variant != "baseline" and RULES[variant](n))
    assert result["metrics"]["params/trainable"] == by_name
    if variant == "lora":  # by hand: r=8 on q, k, v, o of 2 layers; hidden 64, 2 of 4 heads for k and v (32 wide)
        assert by_name == 2 * 8 * ((64 + 64) + (64 + 32) + (64 + 32) + (64 + 64)) == 7168
    assert len(result["examples"]) == 8 and {"prompt", "expected", "generated", "correct"} <= set(result["examples"][0])
    assert "retention" in (tmp_path / "eval.md").read_text()
    assert metrics["eval/exact_match"] == result["metrics"]["eval/exact_match"]

    assert (tmp_path / "engram.safetensors").is_file() == (variant in ("engram", "combined"))
    adapter = tmp_path / "lora_adapter" / "adapter_model.safetensors"
    assert adapter.is_file() == (variant in ("lora", "combined", "gated_lora"))
    if variant in ("engram", "combined"):
        assert any(k.startswith("engram/layer1/gate_mean") for k in metrics)
        saved = load_file(str(tmp_path / "engram.safetensors"))
        fresh, tok = load_model("tiny")
        init = engram_state_dict(add_engram(fresh, cfg.engram, tokenizer=tok))
        table = next(k for k in saved if k.endswith("table.weight"))
        assert not torch.equal(saved[table], init[table])  # the memory did train


def test_full_finetune_baseline_trains_everything(tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path, "variant=baseline", "variant.finetune=full")
    _, objects = train(cfg)
    model = objects["model"]
    assert all(p.requires_grad for p in model.parameters())
    assert objects["trainer"].global_step == 2 and not _base_weights_unchanged(model)
    assert (tmp_path / "model" / "config.json").is_file()


def test_nan_loss_stops_the_run_with_a_clear_message(tmp_path: Path) -> None:
    # a learning rate near float32's limit (inf itself is refused by validation) overflows every weight the first
    # step touches: the next loss is NaN
    cfg = tiny_cfg(tmp_path, "variant=engram", "optim.lr=1e37", "optim.warmup_steps=0")
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at global step 1 .*no weights were saved"):
        run_task(cfg)
    assert not (tmp_path / "engram.safetensors").exists() and not (tmp_path / "eval.json").exists()
    assert "NonFiniteLossError" in (tmp_path / "FAILED.txt").read_text()


class WeightsAtStart(Callback):
    """The trainable weights as training (re)starts, i.e. right after a checkpoint was restored."""

    def on_train_start(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
        self.weights = {f"model.{n}": p.detach().clone() for n, p in pl_module.model.named_parameters()
                        if p.requires_grad}


def test_resume_restores_the_saved_weights_and_continues_at_the_saved_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tiny_cfg(tmp_path / "a", "variant=engram", "trainer.enable_checkpointing=true", "trainer.max_epochs=5")
    train(first)
    ckpt = tmp_path / "a" / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert saved["global_step"] == 2
    assert saved["state_dict"] and all(k.startswith("model.memories.") for k in saved["state_dict"])  # trainable only

    probe = WeightsAtStart()
    original = pipeline.build_callbacks
    monkeypatch.setattr(pipeline, "build_callbacks",
                        lambda cfg, run_dir, *rest: [*original(cfg, run_dir, *rest), probe])
    second = tiny_cfg(tmp_path / "b", "variant=engram", "trainer.max_epochs=5", "trainer.max_steps=4",
                      f"ckpt_path={ckpt}")
    _, objects = train(second)
    assert probe.weights.keys() == saved["state_dict"].keys()
    assert all(torch.equal(probe.weights[k], v) for k, v in saved["state_dict"].items())  # bit-identical
    fresh, tok = load_model("tiny")
    init = {f"model.{n}": p for n, p in apply_variant(fresh, second, tok).named_parameters()}  # no-resume start
    assert all(k in init for k in saved["state_dict"])
    assert not any(torch.equal(init[k], v) for k, v in saved["state_dict"].items() if k.endswith("table.weight"))

    stats = next(c for c in objects["callbacks"] if isinstance(c, StepStats))
    assert stats.first_step == 2 and objects["trainer"].global_step == 4
    sparse_adam = objects["trainer"].optimizers[0].optimizers[1]  # CombinedOptimizer(AdamW, SparseAdam)
    assert isinstance(sparse_adam, torch.optim.SparseAdam)
    assert {int(s["step"]) for s in sparse_adam.state.values()} == {4}  # optimizer state came back too


class RankProbe(Callback):
    """Each DDP process writes its pid, world size and a checksum of its trainable weights."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def on_train_end(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
        checksum = sum(float(p.detach().double().sum()) for p in pl_module.parameters() if p.requires_grad)
        info = {"pid": os.getpid(), "world": trainer.world_size, "checksum": checksum, "step": trainer.global_step}
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(info))


def test_ddp_sim_runs_two_gloo_processes_in_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    original = pipeline.build_callbacks
    monkeypatch.setattr(pipeline, "build_callbacks",
                        lambda cfg, run_dir, *rest: [*original(cfg, run_dir, *rest), RankProbe(probe_dir)])
    cfg = tiny_cfg(tmp_path / "run", "variant=engram", "trainer=ddp_sim", "trainer.max_steps=2",
                   "trainer.enable_checkpointing=false")
    metrics, _ = train(cfg)
    ranks = [json.loads((probe_dir / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert {r["world"] for r in ranks} == {2} and {r["step"] for r in ranks} == {2}
    assert len({r["pid"] for r in ranks} | {os.getpid()}) == 3  # two worker processes besides this one
    assert ranks[0]["checksum"] == pytest.approx(ranks[1]["checksum"], rel=1e-9)  # gradients were all-reduced
    assert (tmp_path / "run" / "eval.json").is_file() and "eval/exact_match" in metrics


def test_multirun_table_sizes_gives_two_jobs(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    sweep = tmp_path / "multirun"
    cmd = [
        sys.executable, "train.py", "-m", "engram.table_size=1000,10000", "model=tiny", "trainer=debug",
        "data.num_train=16", "data.num_eval=4", "eval_max_new_tokens=4", f"hydra.sweep.dir={sweep}",
    ]
    env = {**os.environ, "ENGRAM_CACHE": str(tmp_path_factory.getbasetemp() / "engram-cache"),
           "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert jobs == ["0", "1"]
    sizes = [json.loads((sweep / j / "eval.json").read_text())["info"]["table_size"] for j in jobs]
    assert sizes == [1000, 10000]
    assert proc.stdout.count("run dir:") == 2 and "exact match" in proc.stdout  # the printed evaluation tables
